# shellcheck shell=bash
# Shared by the bench/*_peers.sh scripts that run their servers side by
# side (sourced, not run). The script defines cmd_of NAME (the server's
# command line, which reads $PORT), ROOT, SRV_CPU, and sets LOG (the
# prefix of build/LOG-NAME.log) and SS (t: TCP servers that listen; u: UDP
# ones that bind). start_server NAME picks a free port from NEXT_PORT,
# starts it pinned to $SRV_CPU and waits until it listens: PID[NAME] and
# PORTS[NAME]. Every process started so is stopped by its PID on exit.
# Also free_port, fds and children, for the scripts that watch a server.
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
  PORT=$(free_port "$NEXT_PORT"); NEXT_PORT=$((PORT + 1))
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
free_port() {  # the first port from $1 up that no socket of $SS's kind (default t) uses
  local p=$1
  while ss -H"${SS:-t}"an "( sport = :$p )" | grep -q .; do p=$((p + 1)); done
  echo "$p"
}
fds() { find "/proc/$1/fd" -mindepth 1 2>/dev/null | wc -l; }  # descriptors pid $1 has open
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . | sort -n; }  # its child pids
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
