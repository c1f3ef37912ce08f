#!/usr/bin/env bash
# Builds the tcp_takeover N-API addon (native/build/Release/tcp_takeover.node).
# Idempotent: silent and quick when the addon is newer than its sources.
# Never downloads Node headers: uses the local ones (nodedir, default /usr).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
native="$root/native"
out="$native/build/Release/tcp_takeover.node"

fail() {
  echo "build-native: $*" >&2
  exit 1
}

[[ "$(uname -s)" == "Linux" ]] || fail "the tcp_takeover addon is Linux only (TCP_REPAIR, AF_PACKET); this is $(uname -s)"

# Up to date: the .node is newer than every source and than the Node binary.
if [[ -f "$out" ]]; then
  newer="$(find "$native/binding.gyp" "$native/addon" -newer "$out" -print -quit 2>/dev/null || true)"
  if [[ -z "$newer" && ! "$(command -v node)" -nt "$out" ]]; then
    exit 0
  fi
fi

node_gyp="$root/node_modules/.bin/node-gyp"
[[ -x "$node_gyp" ]] || fail "node-gyp not found at $node_gyp: run npm install first"
[[ -d "$root/node_modules/node-addon-api" ]] || fail "node-addon-api is not installed: run npm install first"
command -v make >/dev/null || fail "make not found (apt-get install build-essential)"
command -v g++ >/dev/null || fail "g++ not found (apt-get install build-essential)"
command -v python3 >/dev/null || fail "python3 not found (node-gyp needs it)"

nodedir="${NODE_GYP_NODEDIR:-/usr}"
node_version="$(node -p process.versions.node)"
[[ -f "$nodedir/include/node/node_api.h" ]] ||
  fail "Node headers not found in $nodedir/include/node (set NODE_GYP_NODEDIR to a Node install with headers for $node_version)"

log="$(mktemp "${TMPDIR:-/tmp}/build-native.XXXXXX.log")"
trap 'rm -f "$log"' EXIT
action=rebuild
[[ -f "$native/build/config.gypi" && -f "$native/build/Makefile" ]] && action=build
if ! "$node_gyp" "$action" -C "$native" --nodedir="$nodedir" -j max >"$log" 2>&1; then
  # A stale configuration (other Node, moved tree) can break an incremental build: retry from scratch once.
  if [[ "$action" == build ]] && "$node_gyp" rebuild -C "$native" --nodedir="$nodedir" -j max >"$log" 2>&1; then
    :
  else
    grep -vE '^gyp (info|http)' "$log" >&2 || true
    fail "node-gyp $action failed (full log above)"
  fi
fi
[[ -f "$out" ]] || fail "node-gyp reported success but $out is missing"
# make does not touch the output when nothing changed: mark it fresh for the check above.
touch "$out"
echo "build-native: built $out"
