#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, type-checks, runs
# unit, integration, fuzz and browser tests (real processes, real sockets, real Chromium).
# The fuzz tests run FUZZ_RUNS cases per target (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== type-check"
npx --no-install tsc -p tsconfig.json

shopt -s nullglob
unit=(test/unit/*.test.ts)
integration=(test/integration/*.test.ts)
fuzz=(test/fuzz/*.test.ts)
browser=(test/browser/*.test.ts)

# Files run one at a time: the browser and media tests need both cores to themselves.
echo "== tests: ${#unit[@]} unit, ${#integration[@]} integration, ${#fuzz[@]} fuzz, ${#browser[@]} browser files"
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${unit[@]}" "${integration[@]}" "${fuzz[@]}" "${browser[@]}"
