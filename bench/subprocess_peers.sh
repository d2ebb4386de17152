#!/bin/sh
# Subprocess spawn+wait of /bin/true per second: lasync beside Python
# asyncio (its default loop) and uvloop, in one run. Each round runs the
# three in turn (so the machine's noise falls on all alike) for each
# concurrency of CONCS; the medians of REPEAT rounds and the ratios
# lasync/asyncio and lasync/uvloop are printed.
#
#   bench/subprocess_peers.sh          (from the checkout, after make)
#   COUNT=2000 CONCS="1 8" REPEAT=5 PYTHON=/usr/bin/python3 bench/subprocess_peers.sh
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=${COUNT:-2000}
CONCS=${CONCS:-"1 8"}
REPEAT=${REPEAT:-3}
PYTHON=${PYTHON:-/usr/bin/python3}
LUA=${LUA:-lua5.4}
export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH_5_4="$ROOT/build/?.so;;"
UVLOOP=uvloop
"$PYTHON" -c 'import uvloop' 2>/dev/null || { echo "subprocess_peers: no uvloop for $PYTHON (n/a)" >&2; UVLOOP=; }

# The median of the numbers on stdin.
median() { sort -n | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

TMP=$(mktemp -d -t lasync-spawn-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for conc in $CONCS; do
  r=1
  while [ "$r" -le "$REPEAT" ]; do
    "$LUA" "$ROOT/bench/spawn/spawn_lasync.lua" "$COUNT" "$conc" >>"$TMP/lasync.$conc"
    "$PYTHON" "$ROOT/bench/spawn/spawn_asyncio.py" asyncio "$COUNT" "$conc" >>"$TMP/asyncio.$conc"
    [ -z "$UVLOOP" ] || "$PYTHON" "$ROOT/bench/spawn/spawn_asyncio.py" uvloop "$COUNT" "$conc" >>"$TMP/uvloop.$conc"
    r=$((r + 1))
  done
done

printf '%-6s %12s %12s %12s %10s %10s\n' conc lasync/s asyncio/s uvloop/s vs-asyncio vs-uvloop
for conc in $CONCS; do
  l=$(cut -d' ' -f2 "$TMP/lasync.$conc" | median)
  a=$(cut -d' ' -f2 "$TMP/asyncio.$conc" | median)
  u=n/a
  [ -z "$UVLOOP" ] || u=$(cut -d' ' -f2 "$TMP/uvloop.$conc" | median)
  ra=$(awk -v l="$l" -v a="$a" 'BEGIN {printf "%.2fx", l / a}')
  ru=n/a
  [ "$u" = n/a ] || ru=$(awk -v l="$l" -v u="$u" 'BEGIN {printf "%.2fx", l / u}')
  printf '%-6s %12s %12s %12s %10s %10s\n' "$conc" "$l" "$a" "$u" "$ra" "$ru"
done
echo "subprocess_peers: COUNT=$COUNT REPEAT=$REPEAT, medians; $($PYTHON -V 2>&1)" >&2
