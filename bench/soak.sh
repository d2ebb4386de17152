#!/bin/bash
# The soak of `make soak` (issue 16): one `lasync serve --workers 2`
# serving bench/soak_server.lua (echo on serve's port; TLS echo, HTTP and
# WebSocket from its on_start) under bench/soak_client.lua's mixed load for
# SOAK_S seconds (default 600), all on 127.0.0.1. The client samples every
# 10 s and judges RSS, corruption and lost requests; this script then
# checks that each worker's descriptors return to their idle count, that
# the log has no handler traceback and no worker died, and that the server
# stops cleanly. Prints a summary; exit status 1 on any failure. Every
# process started here is stopped by its PID on exit.
#
#   bench/soak.sh              (from the checkout, after make; or make soak)
#   SOAK_S=60                  (seconds of load, at least 40; RSS is judged
#                              from 60 s on, or from a quarter of the run
#                              when it is shorter than four minutes)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOAK_S=${SOAK_S:-600}
# The RSS rule compares windows of a quarter of a short run, each of which
# must hold a reading after a collection (one every 10 s).
if ! [ "$SOAK_S" -ge 40 ] 2>/dev/null; then
  echo "soak: SOAK_S=$SOAK_S: at least 40 seconds expected" >&2
  exit 2
fi
# The server's limits, which the slow peers respect and the over-slow
# ones must meet: one read call, output without progress, HTTP head/body.
export SOAK_READ_TIMEOUT=${SOAK_READ_TIMEOUT:-5} SOAK_WRITE_TIMEOUT=${SOAK_WRITE_TIMEOUT:-5}
export SOAK_HTTP_TIMEOUT=${SOAK_HTTP_TIMEOUT:-10}
LOG=${SOAK_LOG:-$ROOT/build/soak-server.log}
# shellcheck source=bench/peers_lib.sh
. "$ROOT/bench/peers_lib.sh"

export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH_5_4="$ROOT/build/?.so;;"
export LASYNC_BUILD=build
TLS_DIR=$ROOT/spec/fixtures/tls
export SOAK_CERT=$TLS_DIR/server.pem SOAK_KEY=$TLS_DIR/server.key SOAK_CA=$TLS_DIR/ca.pem

SOAK_ECHO_PORT=$(free_port 19100)
SOAK_TLS_PORT=$(free_port $((SOAK_ECHO_PORT + 1)))
SOAK_HTTP_PORT=$(free_port $((SOAK_TLS_PORT + 1)))
export SOAK_ECHO_PORT SOAK_TLS_PORT SOAK_HTTP_PORT

listeners() { ss -Hltn "( sport = :$1 )" | wc -l; }

mkdir -p "$ROOT/build"
"$ROOT/scripts/lasync" serve "$ROOT/bench/soak_server.lua" --workers 2 \
  --listen "127.0.0.1:$SOAK_ECHO_PORT" --read-timeout "$SOAK_READ_TIMEOUT" \
  --write-timeout "$SOAK_WRITE_TIMEOUT" --idle-timeout 10 --grace 5 2>"$LOG" &
PID[serve]=$!
MASTER=${PID[serve]}
for _ in $(seq 100); do
  [ "$(listeners "$SOAK_ECHO_PORT")" -ge 1 ] && [ "$(listeners "$SOAK_TLS_PORT")" -ge 2 ] \
    && [ "$(listeners "$SOAK_HTTP_PORT")" -ge 2 ] && break
  kill -0 "$MASTER" 2>/dev/null || break
  sleep 0.1
done
if [ "$(listeners "$SOAK_HTTP_PORT")" -lt 2 ]; then say "the server did not start, see $LOG"; exit 1; fi
sleep 1  # settle: the idle count is taken with every server listening
declare -A IDLE
for w in $(children "$MASTER"); do IDLE[$w]=$(fds "$w"); done
say "soak: ${SOAK_S} s; workers $(children "$MASTER" | tr '\n' ' ')(idle descriptors: ${IDLE[*]}); ports echo $SOAK_ECHO_PORT, TLS $SOAK_TLS_PORT, HTTP+WS $SOAK_HTTP_PORT; log $LOG"

"$ROOT/scripts/lasync" run "$ROOT/bench/soak_client.lua" "$MASTER" "$SOAK_S"
client_rc=$?

# Descriptors: once the client is gone every connection of the workers
# closes (an idle HTTP one within its timeout); wait for that.
fd_ok=1 fd_text=
for _ in $(seq $((SOAK_HTTP_TIMEOUT * 2 + 10))); do
  fd_ok=1 fd_text=
  for w in "${!IDLE[@]}"; do
    n=$(fds "$w")
    fd_text="$fd_text worker $w: $n (idle ${IDLE[$w]});"
    [ "$n" = "${IDLE[$w]}" ] || fd_ok=0
  done
  [ $fd_ok = 1 ] && break
  sleep 1
done

# Workers that died during the load (the stop below ends them too).
deaths=$(grep -Ec 'worker [0-9]+ \(pid [0-9]+\) (exited|was killed)' "$LOG")
kill "$MASTER"
for _ in $(seq 300); do kill -0 "$MASTER" 2>/dev/null || break; sleep 0.1; done
kill -9 "$MASTER" 2>/dev/null
wait "$MASTER"
serve_rc=$?
unset "PID[serve]"
tracebacks=$(grep -c 'Unhandled error' "$LOG")
peer_lines=$(grep -c 'closed: ' "$LOG")

verdict() { [ "$1" = 0 ] && echo pass || echo FAIL; }  # of a count of failures
echo "soak summary ($(date -u +%F), ${SOAK_S} s):"
echo "  client (RSS, bytes, requests): $(verdict "$client_rc") (exit $client_rc)"
echo "  descriptors back to idle: $(verdict $((1 - fd_ok))) ($fd_text )"
echo "  no handler traceback in the log: $(verdict "$tracebacks") ($tracebacks; $peer_lines one-line peer errors)"
echo "  no worker died: $(verdict "$deaths") ($deaths)"
echo "  server stopped cleanly: $(verdict "$serve_rc") (exit $serve_rc)"
[ $client_rc = 0 ] && [ $fd_ok = 1 ] && [ "$tracebacks" = 0 ] && [ "$deaths" = 0 ] && [ "$serve_rc" = 0 ]
