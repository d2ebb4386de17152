#!/bin/sh
# Instructions per operation of bench/core.lua figures, counted by callgrind:
# a noise-free measure for comparing builds on a noisy machine. The count of
# a run with N operations minus that of a run with 1000 (start-up, loading)
# divided by the difference.
#   bench/icount.sh switch handoff spawn          (from the repository root)
#   N=50000 bench/icount.sh call_soon             (default N: 100000)
# Figures: switch handoff spawn call_soon timers echo raw_switch raw_spawn
# (echo: per 1 KiB message, a round trip through a server in the process).
# Set KEEP=dir to keep the callgrind files for callgrind_annotate.
set -eu
N=${N:-100000}
LUA=${LUA:-lua5.4}
export LUA_PATH_5_4="./lua/?.lua;./lua/?/init.lua;;"
export LUA_CPATH_5_4="./build/?.so;;"

instructions() {  # figure, count, output file
  valgrind --tool=callgrind --callgrind-out-file="$3" \
    "$LUA" bench/core.lua one "$1" "$2" 2>&1 | sed -n 's/.*Collected : //p'
}

for key in "$@"; do
  out=/dev/null
  [ -n "${KEEP:-}" ] && out="$KEEP/$key.callgrind"
  small=$(instructions "$key" 1000 /dev/null)
  big=$(instructions "$key" "$N" "$out")
  ops=$((N - 1000))
  case $key in switch|handoff) ops=$((2 * ops)) ;; esac  # 2 per iteration
  echo "$key	$(( (big - small) / ops )) instructions/op"
done
