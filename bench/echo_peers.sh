#!/bin/sh
# lasync's echo server (bench/echo_server.lua) beside the peers of issue 4,
# in one run of the peers' benchmark suite (a separate checkout, given by
# path), echo and memory parts.
# The shared bench writes its results beside itself, so it runs from a
# scratch copy; the summary is printed and kept in $OUT (default: a fresh
# folder under /tmp). REPEAT, DUR, ... are passed on to run.sh.
#
#   bench/echo_peers.sh [SHARED_BENCH]     (from the checkout, after make)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${1:-${SHARED_BENCH:-}}
OUT=${OUT:-$(mktemp -d -t lasync-echo-bench.XXXXXX)}
[ -n "$SHARED" ] || { echo "echo_peers: say where the peers' suite is: make bench-echo SHARED_BENCH=DIR" >&2; exit 1; }
[ -x "$SHARED/run.sh" ] || { echo "echo_peers: no run.sh in $SHARED" >&2; exit 1; }

# The peers' packages (Debian 12; Node.js is not from apt): installed when
# root and missing, otherwise their rows fail and the run goes on.
PKGS="build-essential libevent-dev lua5.4 lua-luv lua-cqueues python3-uvloop"
MISSING=$(for p in $PKGS; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"
done)
if [ -n "$MISSING" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "echo_peers: installing" $MISSING >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $MISSING </dev/null >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 &&
        apt-get install -y --no-install-recommends $MISSING </dev/null >/dev/null 2>&1; } ||
      echo "echo_peers: could not install" $MISSING >&2
  else
    echo "echo_peers: missing" $MISSING "(their rows will fail)" >&2
  fi
fi
command -v node >/dev/null 2>&1 || echo "echo_peers: no node (node-net fails)" >&2
mkdir -p "$OUT" && rm -rf "$OUT/bench"
cp -r "$SHARED" "$OUT/bench"
rm -rf "$OUT/bench/results" "$OUT/bench/servers.local.conf"
LP="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
CP="$ROOT/build/?.so;;"
export ONLY='^(c-libevent-raw|py-uvloop|node-net|lua-luv|lua-luv-coro|lua-cqueues|lasync)$'
export EXTRA="echo lasync env LUA_PATH_5_4='$LP' LUA_CPATH_5_4='$CP' \$LUA $ROOT/bench/echo_server.lua \$PORT"
"$OUT/bench/run.sh" echo mem
echo "echo_peers: results in $(ls -d "$OUT"/bench/results/*)" >&2
