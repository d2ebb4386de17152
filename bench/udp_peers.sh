#!/bin/bash
# UDP echo (bench/udp/) of lasync beside a C libevent echo and Python's
# asyncio create_datagram_endpoint on uvloop, in one run (issue 13):
# datagrams per second of echo, CLIENTS clients (default 10) with WINDOW
# SIZE-byte datagrams (default 8 of 64 B) in flight each (bench/udp/udpload.c,
# a C client that batches its own system calls, so that the servers are
# what is measured: with one in flight each, it was the bottleneck).
# lasync runs twice: as it is (recvmmsg batches of 32) and with batches of
# 1 (core._datagram_batch), to show what the batching is worth.
# Every server is pinned to CPU $SRV_CPU, the load client to $LOAD_CPU,
# everything on 127.0.0.1, bounded in time; every process started here is
# stopped by its PID.
#
#   bench/udp_peers.sh          (from the checkout, after make; or make bench-udp)
#   REPEAT=3 DUR=5 WARM=1 CLIENTS=10 SIZE=64 WINDOW=8   (the defaults)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPEAT=${REPEAT:-3} DUR=${DUR:-5} WARM=${WARM:-1}
CLIENTS=${CLIENTS:-10} SIZE=${SIZE:-64} WINDOW=${WINDOW:-8}
SRV_CPU=${SRV_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
PY=${PY:-/usr/bin/python3} LUA=${LUA:-lua5.4}
LOAD=$ROOT/build/udpload C_ECHO=$ROOT/build/udp_echo_libevent
# shellcheck source=bench/peers_lib.sh
. "$ROOT/bench/peers_lib.sh"

mkdir -p "$ROOT/build"
cc -O2 -Wall -o "$LOAD" "$ROOT/bench/udp/udpload.c" || exit 1
# shellcheck disable=SC2046
cc -O2 -Wall -o "$C_ECHO" "$ROOT/bench/udp/echo_libevent.c" $(pkg-config --cflags --libs libevent_core) || exit 1
"$PY" -c 'import uvloop' 2>/dev/null || say "no python3-uvloop: the Python echo runs on plain asyncio"

export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH_5_4="$ROOT/build/?.so;;"
export LASYNC_BUILD=build
NAMES="c-libevent asyncio-uvloop lasync lasync-batch1"
cmd_of() {
  case $1 in
    c-libevent) echo "$C_ECHO $PORT" ;;
    asyncio-uvloop) echo "$PY $ROOT/bench/udp/echo_uvloop.py $PORT" ;;
    lasync) echo "$LUA $ROOT/scripts/lasync run $ROOT/bench/udp/echo_lasync.lua $PORT" ;;
    lasync-batch1) echo "$LUA $ROOT/scripts/lasync run $ROOT/bench/udp/echo_lasync.lua $PORT 1" ;;
  esac
}

declare -A RATE
LOG=udp SS=u NEXT_PORT=20700

RUN=''
for name in $NAMES; do start_server "$name" && RUN="$RUN $name"; done
# the servers take turns within each round, so that the machine's noise
# falls on all of them alike
declare -A RUNS
for _ in $(seq "$REPEAT"); do
  for name in $RUN; do
    out=$(taskset -c "$LOAD_CPU" "$LOAD" "${PORTS[$name]}" "$CLIENTS" "$SIZE" "$DUR" "$WARM" "$WINDOW")
    say "$name: $out"
    RUNS[$name]="${RUNS[$name]:-} $(grep -o 'rate=[0-9]*' <<<"$out" | cut -d= -f2)"
  done
done
for name in $RUN; do RATE[$name]=$(tr ' ' '\n' <<<"${RUNS[$name]}" | grep . | median); done
stop_all

ratio() {  # a b: a / b, or n/a
  if [ -n "$1" ] && [ -n "$2" ] && [ "$2" != 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
  else echo n/a; fi
}
echo
echo "UDP echo, datagrams/s (median of $REPEAT runs of ${DUR} s; $CLIENTS clients, ${SIZE} B, $WINDOW in flight each)"
for name in $NAMES; do printf '%-22s %12s\n' "$name" "${RATE[$name]:-n/a}"; done
printf '%-22s %12s\n' "lasync / c-libevent" "$(ratio "${RATE[lasync]:-}" "${RATE[c-libevent]:-}")"
printf '%-22s %12s\n' "lasync / asyncio-uvloop" "$(ratio "${RATE[lasync]:-}" "${RATE[asyncio-uvloop]:-}")"
printf '%-22s %12s\n' "lasync / lasync-batch1" "$(ratio "${RATE[lasync]:-}" "${RATE[lasync-batch1]:-}")"
