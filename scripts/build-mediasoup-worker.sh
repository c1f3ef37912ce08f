#!/usr/bin/env bash
# Builds mediasoup's worker (the C++ media process) offline, from the sources inside the npm
# package, against Debian bookworm's libraries, and caches it outside the clone by version:
#   /var/cache/hot-standby-mcu/mediasoup-worker/<version>/mediasoup-worker
# where mcu/src/media/mediasoup-worker.ts looks for it (unless MEDIASOUP_WORKER_BIN is set).
# Idempotent: a second run checks the cached binary and exits in well under a second.
# Why each step exists: native/mediasoup-worker/README.md.
#
# MEDIASOUP_WORKER_BIN set: a worker built elsewhere; it is only checked, never built.
# MEDIASOUP_WORKER_JOBS: parallel compile jobs (default: every core; the compile runs at nice 10).
# MEDIASOUP_WORKER_CACHE_BASE: another cache folder than the shared one (a branch that changes the
# recipe builds beside the other clones' worker instead of replacing it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
recipe_dir="$root/native/mediasoup-worker"
package_dir="$root/node_modules/mediasoup"
cache_base="${MEDIASOUP_WORKER_CACHE_BASE:-/var/cache/hot-standby-mcu/mediasoup-worker}"
# Debian packages the build needs (bookworm names).
packages=(meson ninja-build pkg-config g++ libabsl-dev libflatbuffers-dev flatbuffers-compiler
  libsrtp2-dev libusrsctp-dev libuv1-dev libssl-dev)

say() { echo "build-mediasoup-worker: $*"; }
fail() {
  echo "build-mediasoup-worker: $*" >&2
  exit 1
}

# mediasoup's worker exits with 41 when started without the MEDIASOUP_VERSION its Node layer
# sets (worker/src/main.cpp): proof that the binary and its shared libraries load and run.
worker_runs() {
  local status=0
  env -i "$1" </dev/null >/dev/null 2>&1 || status=$?
  [[ "$status" -eq 41 ]]
}

explain_not_running() {
  local bin="$1" missing
  missing="$(ldd "$bin" 2>/dev/null | grep 'not found' || true)"
  if [[ -n "$missing" ]]; then
    echo "shared libraries missing (reinstall the Debian packages: ${packages[*]}):" >&2
    echo "$missing" >&2
  fi
}

[[ "$(uname -s)" == "Linux" ]] || fail "only Linux is supported (this is $(uname -s))"
[[ -f "$package_dir/package.json" && -d "$package_dir/worker/src" ]] ||
  fail "mediasoup's sources are not in $package_dir: run npm ci first"
version="$(node -p "require(process.argv[1]).version" "$package_dir/package.json")"

if [[ -n "${MEDIASOUP_WORKER_BIN:-}" ]]; then
  [[ -x "$MEDIASOUP_WORKER_BIN" ]] || fail "MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN is not an executable file (unset it to build mediasoup-worker $version into $cache_base/$version)"
  if ! worker_runs "$MEDIASOUP_WORKER_BIN"; then
    explain_not_running "$MEDIASOUP_WORKER_BIN"
    fail "MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN does not run as a mediasoup worker (unset it to build one)"
  fi
  say "using MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN (not built here)"
  exit 0
fi

cache_dir="$cache_base/$version"
bin="$cache_dir/mediasoup-worker"
stamp="$cache_dir/mediasoup-worker.stamp"

# mediasoup's release set-up (worker/tasks.py) with downloads off and liburing (a download too) off.
meson_options=(--wrap-mode=nodownload --buildtype=release -Db_ndebug=true -Dms_disable_liburing=true)

# mediasoup 3.15.8's DTLS BIO callback (worker/src/RTC/DtlsTransport.cpp, onSslBioOut) answers
# 1 after every BIO_ctrl() but a plain BIO_CB_RETURN, so BIO_get_ktls_send() on its memory BIO
# says "kernel TLS": Debian's OpenSSL is built with kTLS and then allocates no record write
# buffer, and the first DTLS record written (a ClientHello, or the ServerHello after reading
# one) is a NULL write: the worker dies with SIGSEGV in SSL_read/SSL_do_handshake at every DTLS
# handshake. mediasoup's own OpenSSL is built without kTLS, so upstream never sees it. The fix
# in the copy: the callback returns OpenSSL's own result for every completed operation.
dtls_bio_callback_old='long resultOfcallback = (operationType == BIO_CB_RETURN) ? static_cast<long>(ret) : 1;'
dtls_bio_callback_new='long resultOfcallback = ((operationType & BIO_CB_RETURN) != 0) ? static_cast<long>(ret) : 1;'

# The recipe: the meson options, the source fix above and the project's meson stubs and compat
# header. A change to any of them rebuilds the worker of the same version (other edits of this
# script do not).
recipe_hash() {
  (
    cd "$recipe_dir"
    {
      echo "$version ${meson_options[*]}"
      echo "$dtls_bio_callback_new"
      find subprojects -type f -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
  )
}
recipe="$(recipe_hash)"

# A cached worker counts only if its stamp (written after it, see install below) names this
# version and recipe and its checksum, and it runs: a partial or corrupted copy is rebuilt.
cached_ok() {
  [[ -x "$bin" && -f "$stamp" ]] || return 1
  grep -qx "version=$version" "$stamp" || return 1
  grep -qx "recipe=$recipe" "$stamp" || return 1
  grep -qx "sha256=$(sha256sum "$bin" | cut -d' ' -f1)" "$stamp" || return 1
  worker_runs "$bin"
}

if cached_ok; then
  say "mediasoup-worker $version is cached: $bin"
  exit 0
fi

if ! mkdir -p "$cache_dir" 2>/dev/null || [[ ! -w "$cache_dir" ]]; then
  fail "cannot write $cache_dir: run as root (bash scripts/setup.sh does), or set MEDIASOUP_WORKER_BIN to a worker built elsewhere"
fi
# One build at a time per version (several clones on one host share the cache).
exec 9>"$cache_dir/.lock"
if ! flock -n 9; then
  say "another build of mediasoup-worker $version is running: waiting for it"
  flock 9
  if cached_ok; then
    say "mediasoup-worker $version is cached: $bin"
    exit 0
  fi
fi
if [[ -e "$bin" || -e "$stamp" ]]; then
  say "the cached worker in $cache_dir is stale or damaged: rebuilding it"
fi

# --- Debian packages ---------------------------------------------------------------------------
missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if [[ "${#missing[@]}" -gt 0 ]]; then
  say "apt-get install ${missing[*]}"
  [[ "$(id -u)" -eq 0 ]] || fail "need root to install ${missing[*]} (apt-get install --no-install-recommends ${missing[*]})"
  apt-get update -q >/dev/null || fail "apt-get update failed (needed to install ${missing[*]})"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null ||
    fail "apt-get install failed for: ${missing[*]}"
fi
for tool in meson ninja pkg-config flatc g++; do
  command -v "$tool" >/dev/null || fail "$tool not found after installing ${packages[*]}"
done

# --- Build in a temporary copy of mediasoup's worker sources ------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/mediasoup-worker-$version.XXXXXX")"
log="$work/build.log"
kept_log="${TMPDIR:-/tmp}/mediasoup-worker-$version-build.log"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP

# Runs one build step with its output in the log; a failure names the step, shows the end of
# the log and keeps it, and names the Debian package behind a dependency meson did not find.
step() {
  local name="$1"
  shift
  echo "== $name: $*" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    cp "$log" "$kept_log"
    [[ -f "$work/build/meson-logs/meson-log.txt" ]] && cat "$work/build/meson-logs/meson-log.txt" >>"$kept_log"
    echo "---- last lines of the build log (all of it: $kept_log)" >&2
    tail -n 40 "$log" >&2
    local dep
    for dep in $(grep -oE 'Dependency "[^"]+" not found' "$log" | cut -d'"' -f2 | sort -u); do
      echo "meson did not find $dep: Debian package $(debian_package_of "$dep")" >&2
    done
    fail "step '$name' failed (mediasoup-worker $version)"
  fi
}

debian_package_of() {
  case "$1" in
    absl_*) echo libabsl-dev ;;
    flatbuffers) echo libflatbuffers-dev ;;
    libsrtp2) echo libsrtp2-dev ;;
    usrsctp) echo libusrsctp-dev ;;
    libuv) echo libuv1-dev ;;
    openssl | libssl | libcrypto) echo libssl-dev ;;
    *) echo "unknown (pkg-config module $1)" ;;
  esac
}

started="$(date +%s)"
jobs="${MEDIASOUP_WORKER_JOBS:-$(nproc)}"
say "building mediasoup-worker $version from its sources ($jobs jobs: several minutes)"
cp -a "$package_dir/worker" "$work/worker"
src="$work/worker"

# The seven subprojects worker/meson.build reads are downloads (.wrap files): replaced by the
# project's stubs over Debian's libraries (liburing and wingetopt are never used here).
rm -f "$src"/subprojects/*.wrap
cp -a "$recipe_dir/subprojects/." "$src/subprojects/"
# Debian bookworm has meson 1.0.1; the worker asks for >= 1.1.0 and builds with 1.0.1.
grep -q "meson_version: '>= 1.1.0'" "$src/meson.build" ||
  fail "worker/meson.build of mediasoup $version no longer asks for meson >= 1.1.0: review native/mediasoup-worker/README.md"
sed -i "s/meson_version: '>= 1.1.0'/meson_version: '>= 1.0.0'/" "$src/meson.build"
# The DTLS BIO callback fix (see dtls_bio_callback_old above).
grep -qF "$dtls_bio_callback_old" "$src/src/RTC/DtlsTransport.cpp" ||
  fail "worker/src/RTC/DtlsTransport.cpp of mediasoup $version no longer has the DTLS BIO callback this script fixes: review native/mediasoup-worker/README.md"
OLD="$dtls_bio_callback_old" NEW="$dtls_bio_callback_new" perl -pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/' "$src/src/RTC/DtlsTransport.cpp"
grep -qF "$dtls_bio_callback_new" "$src/src/RTC/DtlsTransport.cpp" || fail "the DTLS BIO callback fix did not apply to worker/src/RTC/DtlsTransport.cpp"

step "meson setup" meson setup "${meson_options[@]}" "$work/build" "$src"
# The FBS headers first: on a clean tree ninja can start on sources including FBS/message.h
# before the generator has run.
step "flatc (FBS headers)" nice -n 10 ninja -C "$work/build" -j "$jobs" fbs/FBS
step "compile mediasoup-worker" nice -n 10 ninja -C "$work/build" -j "$jobs" mediasoup-worker
built="$work/build/mediasoup-worker"
[[ -f "$built" ]] || fail "ninja reported success but $built is missing"
if ! worker_runs "$built"; then
  explain_not_running "$built"
  fail "the built mediasoup-worker does not run (expected its exit status 41 without MEDIASOUP_VERSION)"
fi

# --- Install: the binary, then its stamp, each by rename ----------------------------------------
tmp_bin="$cache_dir/.mediasoup-worker.$$"
tmp_stamp="$cache_dir/.mediasoup-worker.stamp.$$"
cp "$built" "$tmp_bin"
chmod 755 "$tmp_bin"
{
  echo "version=$version"
  echo "recipe=$recipe"
  echo "sha256=$(sha256sum "$tmp_bin" | cut -d' ' -f1)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(($(date +%s) - started)) s with $jobs jobs"
} >"$tmp_stamp"
rm -f "$stamp"
mv -f "$tmp_bin" "$bin"
mv -f "$tmp_stamp" "$stamp"
cached_ok || fail "the installed worker $bin does not verify"
say "built mediasoup-worker $version in $(($(date +%s) - started)) s: $bin ($(du -h "$bin" | cut -f1))"
