#!/usr/bin/env bash
# Everything the demo and the tests need on a fresh Debian machine (Node 20, root):
# npm packages, Debian's Chromium for the browser tests, nftables, etcd-server (the witness),
# the demo page bundle, the native addon and the mediasoup worker. Idempotent and quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -L node_modules ]; then
  # A worktree sharing another checkout's packages through a symlink: npm ci would empty that
  # checkout's node_modules (it did once, under the other engineers' running tests). Leave it.
  [ -d node_modules/ ] || { echo "node_modules links to a missing directory: $(readlink node_modules)" >&2; exit 1; }
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci"
  # mediasoup's postinstall downloads a prebuilt worker or pip-installs meson (no internet here).
  # npm 11 skips it (package.json: allowScripts); MEDIASOUP_WORKER_BIN makes it skip itself on
  # older npm. The worker is built below, by scripts/build-mediasoup-worker.sh.
  MEDIASOUP_WORKER_BIN="${MEDIASOUP_WORKER_BIN:-built-by-scripts/build-mediasoup-worker.sh}" npm ci --no-audit --no-fund
fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nft >/dev/null || missing+=(nftables)
# The witness (etcd) of the witness tests and the lab's witness host.
command -v etcd >/dev/null || missing+=(etcd-server)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "need root to install ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

echo "== build demo page"
node scripts/build-client.mjs

echo "== build native addon (TCP_REPAIR, capture)"
bash scripts/build-native.sh

echo "== mediasoup worker (built once per version, then cached)"
bash scripts/build-mediasoup-worker.sh
