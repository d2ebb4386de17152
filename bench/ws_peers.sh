#!/bin/bash
# WebSocket echo (bench/ws/) of lasync beside Python's websockets (on
# uvloop) and Node's ws, in one run (issue 12): messages per second of
# text echo over 1 and 100 connections, 64 B and 16 KiB messages, one
# message in flight per connection (bench/ws/wsload.c, a C client), and
# RSS per idle WebSocket connection (MEM_CONNS of them, held open).
# Every server is pinned to CPU $SRV_CPU, the load client to $LOAD_CPU,
# everything on 127.0.0.1, bounded in time; every process started here is
# stopped by its PID. Node's ws comes from the npm registry into
# $NODE_DIR (default build/bench-node) when missing.
#
#   bench/ws_peers.sh          (from the checkout, after make; or make bench-ws)
#   REPEAT=3 DUR=5 WARM=1 MEM_CONNS=10000 MEM_HOLD=6  (the defaults; MEM_CONNS=0: no memory part)
#   CASES='1:64 1:16384 100:64 100:16384'            (connections:message bytes)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPEAT=${REPEAT:-3} DUR=${DUR:-5} WARM=${WARM:-1}
MEM_CONNS=${MEM_CONNS:-10000} MEM_HOLD=${MEM_HOLD:-6}
SRV_CPU=${SRV_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
PY=${PY:-/usr/bin/python3} LUA=${LUA:-lua5.4} NODE=${NODE:-node}
NODE_DIR=${NODE_DIR:-$ROOT/build/bench-node}
LOAD=$ROOT/build/wsload
# shellcheck source=bench/peers_lib.sh
. "$ROOT/bench/peers_lib.sh"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

mkdir -p "$ROOT/build"
cc -O2 -Wall -o "$LOAD" "$ROOT/bench/ws/wsload.c" || exit 1
if [ ! -d "$NODE_DIR/node_modules/ws" ]; then
  say "installing ws from the npm registry into $NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund ws >/dev/null 2>&1 \
    || say "could not install ws (node-ws figures n/a)"
fi
"$PY" -c 'import uvloop' 2>/dev/null || say "no python3-uvloop: websockets runs on plain asyncio"

export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH_5_4="$ROOT/build/?.so;;"
export LASYNC_BUILD=build NODE_PATH="$NODE_DIR/node_modules"
NAMES="lasync websockets-uvloop node-ws"
cmd_of() {
  case $1 in
    lasync) echo "$LUA $ROOT/scripts/lasync serve $ROOT/bench/ws/echo_lasync.lua --http --quiet --listen 127.0.0.1:$PORT" ;;
    websockets-uvloop) echo "$PY $ROOT/bench/ws/echo_websockets.py $PORT" ;;
    node-ws) echo "$NODE $ROOT/bench/ws/echo_node.js $PORT" ;;
  esac
}

declare -A RATE MEM
LOG=ws SS=t NEXT_PORT=20600
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }

RUN=''
for name in $NAMES; do
  [ "$name" = node-ws ] && [ ! -d "$NODE_DIR/node_modules/ws" ] && continue
  start_server "$name" && RUN="$RUN $name"
done
CASES=${CASES:-1:64 1:16384 100:64 100:16384}  # connections:bytes
# the servers take turns within each round, so that the machine's noise
# falls on all of them alike
declare -A RUNS
for c in $CASES; do
  conns=${c%%:*} size=${c##*:}
  for _ in $(seq "$REPEAT"); do
    for name in $RUN; do
      out=$(taskset -c "$LOAD_CPU" "$LOAD" "${PORTS[$name]}" "$conns" "$size" "$DUR" "$WARM")
      say "$name conns=$conns size=$size: $out"
      RUNS[$name:$c]="${RUNS[$name:$c]:-} $(grep -o 'rate=[0-9]*' <<<"$out" | cut -d= -f2)"
    done
  done
  for name in $RUN; do RATE[$name:$c]=$(tr ' ' '\n' <<<"${RUNS[$name:$c]}" | grep . | median); done
done
# memory: RSS growth over MEM_CONNS idle WebSockets (after the load above)
[ "$MEM_CONNS" -gt 0 ] || RUN_MEM='' 
for name in ${RUN_MEM-$RUN}; do
  pid=${PID[$name]} port=${PORTS[$name]}
  before=$(rss_kb "$pid")
  taskset -c "$LOAD_CPU" "$LOAD" --idle "$port" "$MEM_CONNS" "$MEM_HOLD" >"$ROOT/build/ws-idle.out" &
  load=$!
  for _ in $(seq 900); do grep -q ready "$ROOT/build/ws-idle.out" && break; sleep 0.1; done
  sleep 2
  after=$(rss_kb "$pid")
  say "$name idle: $(cat "$ROOT/build/ws-idle.out") rss ${before} kB -> ${after} kB"
  ready=$(grep -o 'ready=[0-9]*' "$ROOT/build/ws-idle.out" | cut -d= -f2)
  [ -n "$ready" ] && [ "$ready" -gt 0 ] && MEM[$name]=$(( (after - before) * 1024 / ready ))
  wait "$load"
done
stop_all

echo
echo "WebSocket echo, messages/s (median of $REPEAT runs of ${DUR} s; one message in flight per connection)"
printf '%-20s' "server"; for c in $CASES; do printf '%16s' "c=${c%%:*} ${c##*:}B"; done; echo
for name in $NAMES; do
  printf '%-20s' "$name"; for c in $CASES; do printf '%16s' "${RATE[$name:$c]:-n/a}"; done; echo
done
for peer in websockets-uvloop node-ws; do
  printf '%-20s' "lasync / $peer"
  for c in $CASES; do
    a=${RATE[lasync:$c]:-} b=${RATE[$peer:$c]:-}
    if [ -n "$a" ] && [ -n "$b" ] && [ "$b" != 0 ]; then printf '%16s' "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }')"
    else printf '%16s' n/a; fi
  done; echo
done
echo
echo "RSS per idle WebSocket connection ($MEM_CONNS connections), bytes"
for name in $NAMES; do printf '%-20s %s\n' "$name" "${MEM[$name]:-n/a}"; done
m=${MEM[lasync]:-}
if [ -n "$m" ]; then
  if [ "$m" -le 3072 ]; then echo "lasync: $m B per idle WebSocket: PASS (at most 3 KiB)"
  else echo "lasync: $m B per idle WebSocket: FAIL (target: at most 3 KiB)"; fi
fi
