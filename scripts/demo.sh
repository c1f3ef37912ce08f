#!/usr/bin/env bash
# Starts the demo on this host: an MCU on port ${PORT:-3000}. Open http://localhost:${PORT:-3000}/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== demo: open http://localhost:${PORT:-3000}/?room=demo&name=YourName&autojoin=1"
exec node --import tsx mcu/src/main.ts
