#!/bin/bash
# Instructions per command of examples/redis_server.lua (under `lasync
# serve`) and of redis-server, each under callgrind, for the tests of
# bench/resp_peers.sh: a measure the machine's noise does not move, beside
# that script's requests per second. For each test: a warm-up of WARM
# commands, the counters zeroed (callgrind_control -z), N commands from
# redis-benchmark -c CLIENTS -P PIPE, a dump (callgrind_control -d); the
# dump's total over N. Both are single-threaded, so the counts are the
# servers' whole work but the kernel's.
#
#   bench/resp_icount.sh     (from the checkout, after make; make bench-resp runs it too)
#   N=100000 WARM=2000 CLIENTS=50 PIPE=16   (the defaults)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-100000} WARM=${WARM:-2000} CLIENTS=${CLIENTS:-50} PIPE=${PIPE:-16}
SRV_CPU=${SRV_CPU:-0}
TESTS="ping_mbulk set get incr mset"
# shellcheck source=bench/peers_lib.sh
. "$ROOT/bench/peers_lib.sh"
mkdir -p "$ROOT/build/resp-icount"
for c in redis-benchmark valgrind callgrind_control; do
  command -v $c >/dev/null || { say "no $c: apt-get install redis-tools valgrind"; exit 1; }
done

cmd_of() {
  local cg="valgrind --tool=callgrind --callgrind-out-file=$ROOT/build/resp-icount/$1"
  case $1 in
    redis) echo "$cg redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no" ;;
    lasync) echo "$cg lua5.4 $ROOT/scripts/lasync serve $ROOT/examples/redis_server.lua --listen 127.0.0.1:$PORT" ;;
  esac
}

bench() {  # name test n
  redis-benchmark -p "${PORTS[$1]}" -q -n "$3" -c "$CLIENTS" -P "$PIPE" -t "$2" >/dev/null 2>&1
}

# name test: the instructions per command of N commands of test.
count() {
  local pid=${PID[$1]} dump
  bench "$1" "$2" "$WARM"
  callgrind_control -z "$pid" >/dev/null 2>&1
  bench "$1" "$2" "$N"
  callgrind_control -d "$pid" >/dev/null 2>&1
  dump=$(ls -t "$ROOT/build/resp-icount/$1".* | head -1)
  awk -v n="$N" '/^(summary|totals):/ { print int($2 / n); exit }' "$dump"
}

declare -A IC
LOG=resp-icount SS=t NEXT_PORT=20900
for s in redis lasync; do
  rm -f "$ROOT/build/resp-icount/$s".*
  # under valgrind the server takes seconds to listen: wait up to a minute
  for _ in 1 2 3 4 5 6; do start_server "$s" && break; done
  [ -n "${PID[$s]:-}" ] || exit 1
  for t in $TESTS; do IC[$s/$t]=$(count "$s" "$t"); done
  stop_pid "${PID[$s]}"; unset "PID[$s]"
done

echo
echo "instructions per command, redis-benchmark -n $N -c $CLIENTS -P $PIPE (callgrind)"
printf '%-12s %12s %12s %22s\n' test redis-server lasync "redis-server / lasync"
for t in $TESTS; do
  a=${IC[lasync/$t]:-0} b=${IC[redis/$t]:-0}
  printf '%-12s %12s %12s %22s\n' "$t" "$b" "$a" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%.2fx", b / a; else print "n/a" }')"
done
