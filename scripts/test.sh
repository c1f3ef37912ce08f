#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, type-checks, runs
# unit, integration and browser tests (real processes, real sockets, real Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== type-check"
npx --no-install tsc -p tsconfig.json

shopt -s nullglob
unit=(test/unit/*.test.ts)
integration=(test/integration/*.test.ts)
browser=(test/browser/*.test.ts)

# Files run one at a time: the browser and media tests need both cores to themselves.
echo "== tests: ${#unit[@]} unit, ${#integration[@]} integration, ${#browser[@]} browser files"
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${unit[@]}" "${integration[@]}" "${browser[@]}"
