# shellcheck shell=bash
# Shared by the bench/*_peers.sh scripts that run their servers side by
# side (sourced, not run). The script defines cmd_of NAME (the server's
# command line, which reads $PORT), ROOT, SRV_CPU, and sets LOG (the
# prefix of build/LOG-NAME.log) and SS (t: TCP servers that listen; u: UDP
# ones that bind). start_server NAME picks a free port from NEXT_PORT,
# starts it pinned to $SRV_CPU and waits until it listens: PID[NAME] and
# PORTS[NAME]. Every process started so is stopped by its PID on exit.
declare -A PID PORTS
say() { echo "[$(date +%T)] $*" >&2; }
stop_pid() {  # pid: TERM, up to 5 s, then KILL
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
stop_all() { for n in "${!PID[@]}"; do stop_pid "${PID[$n]}"; done; }
trap stop_all EXIT
trap 'exit 130' INT TERM
start_server() {  # name: every server runs at once, each on $SRV_CPU
  local bound=-Hltn
  [ "$SS" = u ] && bound=-Huan
  while ss -H"${SS}"an "( sport = :$NEXT_PORT )" | grep -q .; do NEXT_PORT=$((NEXT_PORT + 1)); done
  PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
  # shellcheck disable=SC2046
  taskset -c "$SRV_CPU" $(cmd_of "$1") >/dev/null 2>"$ROOT/build/$LOG-$1.log" &
  # shellcheck disable=SC2034  # PORTS: for the sourcing script
  PID[$1]=$! PORTS[$1]=$PORT
  for _ in $(seq 100); do
    ss "$bound" "( sport = :$PORT )" | grep -q . && return 0
    kill -0 "${PID[$1]}" 2>/dev/null || break; sleep 0.1
  done
  say "$1 did not start, see build/$LOG-$1.log"; stop_pid "${PID[$1]}"; unset "PID[$1]"; return 1
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
