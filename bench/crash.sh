#!/usr/bin/env bash
# make crash: `lasync serve --workers 4 bench/crash_echo.lua` under the load
# of bench/crash_client.lua (long-lived connections checked byte for byte,
# plus connection churn) for CRASH_S seconds (default 60), while one worker
# is killed by SIGKILL every KILL_EVERY s (5) and the master gets a SIGHUP
# every HUP_EVERY s (15). Prints the client's summary and the criteria;
# exits 1 when one fails:
#   - the master restarted each killed worker (WORKERS serve at the end);
#   - no long-lived connection of a worker that kept running was lost, no
#     byte came back wrong;
#   - new connections never failed for longer than MAX_GAP s (1, the
#     restart time: 0.1 s, doubling while workers die young, plus start-up);
#   - every new connection that failed had been taken by a worker that is
#     gone (its greeting named it): none was reset or refused in the
#     accept queue;
#   - no new connection that started from 0.5 s before a SIGHUP to
#     HUP_QUIET s (2) after it failed, unless a kill was as near: a reload
#     drops nothing.
# Env: CRASH_S, WORKERS (4), LONG (32), CHURN (200 a second, BURST 20 at
# once), KILL_EVERY, HUP_EVERY, MAX_GAP, HUP_QUIET, CRASH_WORK_MS (the CPU
# cost of a line, bench/crash_echo.lua), PORT (the first to try, 18600).
# Its logs: build/crash-serve.log, build/crash-client.out.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
CRASH_S=${CRASH_S:-60} WORKERS=${WORKERS:-4} LONG=${LONG:-32} CHURN=${CHURN:-200} BURST=${BURST:-20}
KILL_EVERY=${KILL_EVERY:-5} HUP_EVERY=${HUP_EVERY:-15} MAX_GAP=${MAX_GAP:-1} HUP_QUIET=${HUP_QUIET:-2}
LUA=${LUA:-lua5.4}
export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH_5_4="$ROOT/build/?.so;;"
export LASYNC_BUILD=build LASYNC_LUA="$LUA"
# shellcheck source=bench/peers_lib.sh
. "$ROOT/bench/peers_lib.sh"
mkdir -p build
OUTF=build/crash-client.out LOGF=build/crash-serve.log  # start_server: build/$LOG-serve.log

# shellcheck disable=SC2317  # called through start_server
cmd_of() { echo "$LUA scripts/lasync serve bench/crash_echo.lua --workers $WORKERS --grace 2 --listen 127.0.0.1:$PORT"; }
SS=t NEXT_PORT=${PORT:-18600} LOG=crash SRV_CPU=${SRV_CPU:-0-1}
start_server serve || exit 2
MASTER=${PID[serve]}
for _ in $(seq 100); do
  [ "$(grep -c 'listening on' "$LOGF")" -ge "$WORKERS" ] && break; sleep 0.1
done
say "serving on port $PORT (master $MASTER); ${CRASH_S}s of load, kill -9 every ${KILL_EVERY}s, SIGHUP every ${HUP_EVERY}s"

"$LUA" bench/crash_client.lua "$PORT" "$CRASH_S" "$LONG" "$CHURN" "$BURST" >"$OUTF" &
PID[client]=$!
START=$(date +%s.%N)
calc() { awk "BEGIN { print ($1) }"; }  # a number, or 1/0 for a comparison
elapsed() { calc "$(date +%s.%N) - $START"; }
KILLS=() HUPS=() next_kill=$KILL_EVERY next_hup=$HUP_EVERY
for t in $(seq 1 "$((CRASH_S - 1))"); do
  sleep "$(calc "$START + $t - $(date +%s.%N)")" 2>/dev/null
  if [ "$t" -ge "$next_hup" ]; then
    HUPS+=("$(elapsed)"); kill -HUP "$MASTER"; next_hup=$((next_hup + HUP_EVERY))
    say "SIGHUP at ${HUPS[-1]}"
    # no kill while the old generation drains: it is not restarted
    [ "$next_kill" -le "$t" ] && next_kill=$((next_kill + KILL_EVERY))
  elif [ "$t" -ge "$next_kill" ]; then
    # shellcheck disable=SC2207
    ws=($(children "$MASTER"))
    if [ "${#ws[@]}" -gt 0 ]; then
      v=${ws[$((RANDOM % ${#ws[@]}))]}
      KILLS+=("$(elapsed)"); kill -KILL "$v"
      say "kill -9 $v at ${KILLS[-1]}"
    fi
    next_kill=$((next_kill + KILL_EVERY))
  fi
done
wait "${PID[client]}"; unset "PID[client]"
sleep 1
alive=$(children "$MASTER" | wc -w)
restarted=$(grep -c 'restarting worker' "$LOGF")
stop_pid "$MASTER"; unset "PID[serve]"

summary=$(grep '^summary' "$OUTF")
echo "$summary"
val() { echo "$summary" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
status=0
check() {  # ok? what
  if [ "$1" = 1 ]; then echo "PASS $2"; else echo "FAIL $2"; status=1; fi
}
check "$([ "$alive" -eq "$WORKERS" ] && [ "$restarted" -ge "${#KILLS[@]}" ] && echo 1)" \
  "${#KILLS[@]} workers killed, $restarted restarts, $alive of $WORKERS serve at the end"
check "$([ "$(val lost_alive)" = 0 ] && [ "$(val corrupt)" = 0 ] && echo 1)" \
  "long-lived: $(val msgs) lines echoed, $(val lost_dead) lost with their dead worker, $(val lost_alive) lost on a live one, $(val corrupt) corrupt"
check "$(calc "$(val gap) <= $MAX_GAP")" \
  "churn: $(val attempts) connections, $(val failed) failed, longest refusal $(val gap) s (at most $MAX_GAP)"
check "$([ "$(val failed)" = "$(val churn_dead)" ] && echo 1)" \
  "churn: $(val churn_dead) failed with the gone worker that had taken them, $(($(val failed) - $(val churn_dead))) reset or refused before a worker took them"
# What started from 0.5 s before a signal to HUP_QUIET s after it is near it.
near() { calc "$1 >= $2 - 0.5 && $1 < $2 + $HUP_QUIET"; }
# failures near a SIGHUP, unless a kill was as near
hup_fails=0
while read -r _ t _; do
  for h in "${HUPS[@]}"; do
    [ "$(near "$t" "$h")" = 1 ] || continue
    near_kill=0
    for k in "${KILLS[@]}"; do
      [ "$(near "$t" "$k")" = 1 ] && near_kill=1
    done
    [ "$near_kill" = 0 ] && hup_fails=$((hup_fails + 1))
  done
done < <(grep '^fail ' "$OUTF")
check "$([ "$hup_fails" = 0 ] && echo 1)" "${#HUPS[@]} SIGHUPs: $hup_fails new connections failed after them"
grep '^fail ' "$OUTF" | awk '{ print $3 }' | sort | uniq -c | sed 's/^/  failures: /'
exit $status
