#!/bin/bash
# lua-redis (Debian's) GET/SET round trips per second against one
# redis-server, over three socket layers in one run (issue 14):
# lasync.socket from $TASKS tasks (install(), a connection each), copas
# (Debian's lua-copas: copas.wrap sockets + copas.addthread, $TASKS
# threads) and plain blocking LuaSocket with one connection. One op is
# one SET or one GET answered (bench/redis/client.lua). redis-server is
# pinned to CPU $SRV_CPU, the client to $LOAD_CPU; 127.0.0.1 only,
# bounded in time; every process started here is stopped by its PID.
#
#   bench/redis_peers.sh        (from the checkout, after make; or make bench-redis)
#   REPEAT=3 DUR=5 TASKS=50     (the defaults: median of REPEAT runs of DUR s each)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPEAT=${REPEAT:-3} DUR=${DUR:-5} TASKS=${TASKS:-50}
SRV_CPU=${SRV_CPU:-0} LOAD_CPU=${LOAD_CPU:-1} LUA=${LUA:-lua5.4}
# shellcheck source=bench/peers_lib.sh
. "$ROOT/bench/peers_lib.sh"
mkdir -p "$ROOT/build"
export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH_5_4="$ROOT/build/?.so;;"

cmd_of() { echo "redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no"; }
LOG=redis SS=t NEXT_PORT=20700
start_server redis || exit 1
MODES="lasync copas blocking"
[ -f /usr/share/lua/5.2/copas.lua ] || { say "no lua-copas: copas figures n/a"; MODES="lasync blocking"; }

declare -A RUNS RATE
for _ in $(seq "$REPEAT"); do
  for m in $MODES; do  # taking turns: the machine's noise falls on all alike
    out=$(timeout $((DUR + 30)) taskset -c "$LOAD_CPU" "$LUA" "$ROOT/bench/redis/client.lua" \
          "$m" "${PORTS[redis]}" "$DUR" "$TASKS")
    say "$m: $out"
    RUNS[$m]="${RUNS[$m]:-} $(grep -o 'rate=[0-9]*' <<<"$out" | cut -d= -f2)"
  done
done
stop_all
for m in $MODES; do RATE[$m]=$(tr ' ' '\n' <<<"${RUNS[$m]}" | grep . | median); done

ratio() {
  local a=${RATE[$1]:-} b=${RATE[$2]:-}
  if [ -n "$a" ] && [ -n "$b" ] && [ "$b" != 0 ]; then awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }'
  else echo n/a; fi
}
echo
echo "lua-redis GET/SET ops/s against redis-server (median of $REPEAT runs of ${DUR} s)"
printf '%-34s %s\n' "lasync.socket, $TASKS tasks" "${RATE[lasync]:-n/a}"
printf '%-34s %s\n' "copas, $TASKS threads" "${RATE[copas]:-n/a}"
printf '%-34s %s\n' "blocking LuaSocket, 1 connection" "${RATE[blocking]:-n/a}"
printf '%-34s %s\n' "lasync / copas" "$(ratio lasync copas)"
printf '%-34s %s\n' "lasync / blocking" "$(ratio lasync blocking)"
r=$(ratio lasync copas)
case $r in
  n/a) ;;
  *) if awk -v r="${r%x}" 'BEGIN { exit !(r > 1) }'; then echo "lasync ahead of copas: PASS"
     else echo "lasync ahead of copas: FAIL ($r)"; fi ;;
esac
