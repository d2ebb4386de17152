#!/bin/bash
# redis-benchmark (Debian's redis-tools) against examples/redis_server.lua
# under `lasync serve` and against redis-server, in one run (issue 16):
# requests per second of each test, pipelined (-P $PIPE) and not, and the
# ratio lasync / redis-server. Both servers are pinned to CPU $SRV_CPU
# (started together, benched in turns), redis-benchmark to $LOAD_CPU;
# 127.0.0.1 only; every process started here is stopped by its PID.
#
#   bench/resp_peers.sh       (from the checkout, after make; or make bench-resp)
#   N=100000 CLIENTS=50 PIPE=16 REPEAT=3   (the defaults: medians of REPEAT runs)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-100000} CLIENTS=${CLIENTS:-50} PIPE=${PIPE:-16} REPEAT=${REPEAT:-3}
SRV_CPU=${SRV_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
TESTS=ping,set,get,incr,mset
# shellcheck source=bench/peers_lib.sh
. "$ROOT/bench/peers_lib.sh"
mkdir -p "$ROOT/build"
command -v redis-benchmark >/dev/null || { say "no redis-benchmark: apt-get install redis-tools"; exit 1; }

cmd_of() {
  case $1 in
    redis) echo "redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no" ;;
    lasync) echo "$ROOT/scripts/lasync serve $ROOT/examples/redis_server.lua --listen 127.0.0.1:$PORT" ;;
  esac
}
LOG=resp SS=t NEXT_PORT=20800
start_server redis || exit 1
start_server lasync || exit 1

# name P: "TEST rate" lines of one redis-benchmark run (P: its -P).
bench_one() {
  taskset -c "$LOAD_CPU" redis-benchmark -p "${PORTS[$1]}" -q -n "$N" -c "$CLIENTS" -P "$2" \
    -t "$TESTS" 2>/dev/null | tr '\r' '\n' |
    sed -n 's/^\([A-Z_]*\)[^:]*: \([0-9.]*\) requests per second.*/\1 \2/p'
}

declare -A RUNS
for _ in $(seq "$REPEAT"); do
  for p in "$PIPE" 1; do
    for s in redis lasync; do  # taking turns: the machine's noise falls on both
      while read -r test rate; do
        RUNS[$s/$p/$test]="${RUNS[$s/$p/$test]:-} $rate"
      done < <(bench_one "$s" "$p")
    done
  done
done
stop_all

med() { tr ' ' '\n' <<<"${RUNS[$1]:-}" | grep . | median; }
for p in "$PIPE" 1; do
  echo
  echo "redis-benchmark -n $N -c $CLIENTS -P $p, requests/s (median of $REPEAT)"
  printf '%-12s %12s %12s %8s\n' test redis-server lasync ratio
  for test in PING_INLINE PING_MBULK SET GET INCR MSET; do
    a=$(med "lasync/$p/$test") b=$(med "redis/$p/$test")
    r=$(awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
    printf '%-12s %12s %12s %8s\n' "$test" "${b:-n/a}" "${a:-n/a}" "$r"
  done
done
