#!/usr/bin/env bash
# The demo on this host: a primary MCU and a hot standby (re-protected after every failover),
# over HTTPS with a self-signed certificate made on the first run (kept in the state directory,
# outside the repository) unless MCU_TLS_CERT/MCU_TLS_KEY name a certificate of yours or
# MCU_DEMO_SELF_SIGNED=0. The supervisor prints the URLs and the certificate's fingerprint.
# kill -9 the primary to see a failover; kill -HUP the supervisor to reload the certificate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${MCU_TLS_CERT:-}${MCU_TLS_KEY:-}" ] && [ "${MCU_DEMO_SELF_SIGNED:-1}" != 0 ]; then
  state="${MCU_DEMO_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/hot-standby-mcu}"
  node --import tsx scripts/demo/demo-certificate.ts "$state/tls"
  export MCU_TLS_CERT="$state/tls/cert.pem" MCU_TLS_KEY="$state/tls/key.pem"
fi
exec node --import tsx standby/src/supervisor/supervisor-main.ts
