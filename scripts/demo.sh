#!/usr/bin/env bash
# The demo on this host: a primary MCU and a hot standby (re-protected after every failover).
# Open http://localhost:${PORT:-3000}/ ; kill -9 the primary to see a failover.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== demo: open http://localhost:${PORT:-3000}/?room=demo&name=YourName&autojoin=1"
exec node --import tsx standby/src/supervisor/supervisor-main.ts
