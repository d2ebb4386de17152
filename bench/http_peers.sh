#!/bin/bash
# lasync's HTTP server (examples/http_hello.lua under `lasync serve --http`)
# and client (lasync.http's get) beside their peers, in one session (issue 11).
# The peers' suite (a separate checkout, given by path) writes its results
# beside itself, so it runs from a scratch copy in $OUT (default: a fresh
# folder under /tmp). Every server is pinned to CPU $SRV_CPU, every load
# generator to CPU $LOAD_CPU, everything on 127.0.0.1, bounded in time, and
# every process started here is stopped by its PID.
#
#   bench/http_peers.sh [SHARED_BENCH]          (from the checkout, after make)
#   PARTS='http pipe mem client' REPEAT=3 DUR=5  (the defaults)
#
#   http    the suite's `./run.sh http` (wrk -t1 -c100) with a lasync row
#   pipe    wrk -t1 -c100 -s bench/http/pipeline.lua (16 requests per write)
#           for lasync, nginx-lua and nginx
#   mem     RSS per idle keep-alive connection: bench/http/idle.lua opens
#           MEM_CONNS connections, one request each, and holds them
#   client  requests/s of lasync.http.get over keep-alive to the suite's
#           nginx row, beside aiohttp's and lua-http's clients (one
#           connection, and CLIENT_CONC of them); the client runs on
#           $SRV_CPU, nginx on $LOAD_CPU
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${1:-${SHARED_BENCH:-}}
OUT=${OUT:-$(mktemp -d -t lasync-http-bench.XXXXXX)}
PARTS=${PARTS:-http pipe mem client}
REPEAT=${REPEAT:-3} DUR=${DUR:-5} WARM=${WARM:-1}
MEM_CONNS=${MEM_CONNS:-10000} MEM_HOLD=${MEM_HOLD:-20} CLIENT_CONC=${CLIENT_CONC:-10}
SRV_CPU=${SRV_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
export PY=${PY:-/usr/bin/python3} LUA=${LUA:-lua5.4} NODE=${NODE:-node}
[ -n "$SHARED" ] || { echo "http_peers: say where the peers' suite is: make bench-http SHARED_BENCH=DIR" >&2; exit 1; }
[ -x "$SHARED/run.sh" ] || { echo "http_peers: no run.sh in $SHARED" >&2; exit 1; }

mkdir -p "$OUT" && rm -rf "$OUT/bench"
cp -r "$SHARED" "$OUT/bench"
rm -rf "$OUT/bench/results" "$OUT/bench/servers.local.conf"
B=$OUT/bench
# The peers' packages (wrk, nginx with its Lua module, aiohttp, lua-http...):
# the suite's deps.sh installs what is missing when we are root.
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  if [ "$(id -u)" = 0 ]; then "$B/deps.sh" || echo "http_peers: deps.sh failed" >&2
  else echo "http_peers: wrk or nginx missing; run $B/deps.sh as root" >&2; fi
fi

LASYNC="\$LUA $ROOT/scripts/lasync serve $ROOT/examples/http_hello.lua --http --quiet --listen 127.0.0.1:\$PORT"
LUA_SRC="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
LUA_PEERS=";;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
TICK=$(getconf CLK_TCK)
LOG=$OUT/logs; mkdir -p "$LOG"
say() { echo "[$(date +%T)] $*" >&2; }

SRV_PID='' LOAD_PID='' PORT='' RUN_DIR=$(mktemp -d -t http-peers.XXXXXX) && export RUN_DIR
stop_pid() {  # pid: TERM, up to 5 s, then KILL
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
cleanup() { stop_pid "$LOAD_PID"; stop_pid "$SRV_PID"; rm -rf "$RUN_DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
NEXT_PORT=20300
start_server() {  # name cpu command (with $PORT, run in the suite's folder)
  while ss -Htan "( sport = :$NEXT_PORT )" | grep -q .; do NEXT_PORT=$((NEXT_PORT + 1)); done
  PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
  ( cd "$B" && eval "exec taskset -c $2 $3" ) >>"$LOG/$1.log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 150); do
    ss -Hltn "( sport = :$PORT )" | grep -q . && return 0
    kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1
  done
  echo "!! $1 did not listen, see $LOG/$1.log" >&2; stop_pid "$SRV_PID"; SRV_PID=''; return 1
}
cpu_ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }; s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
kv() { grep -o "$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }
# server commands by row name, as in servers.conf (+ lasync)
cmd_of() {
  case $1 in
  lasync) echo "$LASYNC" ;;
  *) awk -v n="$1" '$1 == "http" && $2 == n { sub(/^[ \t]*[^ \t]+[ \t]+[^ \t]+[ \t]+/, ""); print; exit }' "$B/servers.conf" ;;
  esac
}

# ---------------------------------------------------------------- http --
part_http() {
  ONLY='^(c-evhttp|nginx|nginx-lua|node-http|py-aiohttp-uvloop|lua-http|lasync)$' \
  EXTRA="http lasync $LASYNC" REPEAT=$REPEAT DUR=$DUR WARM=$WARM \
    "$B/run.sh" http >"$OUT/http.md" 2>"$LOG/run.sh.log"
  grep -vE '^(date|machine|settings):' "$OUT/http.md"
  say "http: results in $(ls -d "$B"/results/*)"
}

# ---------------------------------------------------------------- pipe --
part_pipe() {
  local rows='lasync nginx-lua nginx' name rep out rps c0 t0 cpu
  (cd "$B" && make -s) >/dev/null
  : >"$OUT/pipe.tsv"
  for rep in $(seq "$REPEAT"); do
    for name in $rows; do
      start_server "$name" "$SRV_CPU" "$(cmd_of "$name")" || continue
      timeout -k 2 30 taskset -c "$LOAD_CPU" wrk -t1 -c100 -d"${WARM}s" -s "$ROOT/bench/http/pipeline.lua" "http://127.0.0.1:$PORT/" >/dev/null 2>&1
      c0=$(cpu_ticks "$SRV_PID"); t0=$(date +%s%N)
      out=$(timeout -k 2 $((DUR + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c100 -d"${DUR}s" -s "$ROOT/bench/http/pipeline.lua" "http://127.0.0.1:$PORT/" 2>&1)
      cpu=$(( ($(cpu_ticks "$SRV_PID") - c0) * 100 * 1000000000 / TICK / ($(date +%s%N) - t0) ))
      echo "$out" >>"$LOG/pipe-$name.log"
      rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
      printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rep" "${rps:-0}" "$cpu" "$(grep -cE 'Non-2xx|Socket errors' <<<"$out")" >>"$OUT/pipe.tsv"
      say "pipe $name: ${rps:-FAILED} req/s, server CPU $cpu %"
      stop_pid "$SRV_PID"; SRV_PID=''
    done
  done
  local base; base=$(awk '$1 == "nginx-lua" {print $3}' "$OUT/pipe.tsv" | median)
  echo "### http: wrk -t1 -c100, 16 requests per write (bench/http/pipeline.lua)"
  echo
  echo "| server | req/s (median) | runs | server CPU % | req per server CPU-second | vs nginx-lua |"
  echo "|---|---:|---|---:|---:|---:|"
  for name in $rows; do
    local m runs c
    m=$(awk -v n="$name" '$1 == n {print $3}' "$OUT/pipe.tsv" | median)
    runs=$(awk -v n="$name" '$1 == n {printf "%s%.0fk", s, $3 / 1000; s = "/"}' "$OUT/pipe.tsv")
    c=$(awk -v n="$name" '$1 == n {print $4}' "$OUT/pipe.tsv" | median)
    awk -v n="$name" -v m="$m" -v r="$runs" -v c="$c" -v b="$base" \
      'BEGIN { printf "| %s | %.0f | %s | %s | %.0f | %.2f |\n", n, m, r, c, c ? m * 100 / c : 0, b ? m / b : 0 }'
  done
  echo
}

# ----------------------------------------------------------------- mem --
part_mem() {
  local rows='lasync nginx-lua c-evhttp node-http' name hold r0 r1 got ans per
  (cd "$B" && make -s) >/dev/null
  echo "### http: RSS per idle keep-alive connection ($MEM_CONNS connections, one GET / each)"
  echo
  echo "| server | RSS idle KiB | RSS with them KiB | connections answered | bytes per connection |"
  echo "|---|---:|---:|---:|---:|"
  for name in $rows; do
    start_server "$name" "$SRV_CPU" "$(cmd_of "$name")" || continue
    # warm up: the first requests' allocations are not per-connection
    timeout -k 2 10 taskset -c "$LOAD_CPU" wrk -t1 -c10 -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1
    sleep 0.5; r0=$(rss_kb "$SRV_PID")
    hold=$RUN_DIR/hold.$name
    LUA_PATH_5_4="$LUA_SRC" LUA_CPATH_5_4="$ROOT/build/?.so;;" \
      timeout -k 2 $((MEM_HOLD + 120)) taskset -c "$LOAD_CPU" "$LUA" "$ROOT/bench/http/idle.lua" "$PORT" "$MEM_CONNS" "$MEM_HOLD" >"$hold" 2>>"$LOG/mem-$name.log" &
    LOAD_PID=$!
    for _ in $(seq 1200); do grep -q ready "$hold" && break; kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
    sleep 1; r1=$(rss_kb "$SRV_PID")
    got=$(kv conns "$(cat "$hold")"); ans=$(kv answered "$(cat "$hold")")
    stop_pid "$LOAD_PID"; LOAD_PID=''
    per=''; [ -n "$r0" ] && [ -n "$r1" ] && [ "${ans:-0}" -gt 0 ] && per=$(( (r1 - r0) * 1024 / ans ))
    echo "| $name | ${r0:-?} | ${r1:-dead} | ${ans:-0} of ${got:-0} | ${per:-?} |"
    say "mem $name: ${r0:-?} -> ${r1:-?} KiB with ${ans:-0} conns: ${per:-?} B/conn"
    stop_pid "$SRV_PID"; SRV_PID=''
  done
  echo
}

# -------------------------------------------------------------- client --
part_client() {
  local rep c name out rps url
  start_server nginx-for-client "$LOAD_CPU" "$(cmd_of nginx)" || return 1
  url=http://127.0.0.1:$PORT/
  : >"$OUT/client.tsv"
  for rep in $(seq "$REPEAT"); do
    for c in 1 "$CLIENT_CONC"; do
      for name in lasync aiohttp aiohttp-uvloop lua-http; do
        case $name in
        lasync) out=$(LUA_PATH_5_4="$LUA_SRC" LUA_CPATH_5_4="$ROOT/build/?.so;;" timeout -k 2 $((DUR + 30)) taskset -c "$SRV_CPU" "$LUA" "$ROOT/bench/http/client.lua" "$url" "$DUR" "$c" 2>&1) ;;
        aiohttp) out=$(timeout -k 2 $((DUR + 30)) taskset -c "$SRV_CPU" "$PY" "$ROOT/bench/http/client_aiohttp.py" "$url" "$DUR" "$c" 2>&1) ;;
        aiohttp-uvloop) out=$(timeout -k 2 $((DUR + 30)) taskset -c "$SRV_CPU" "$PY" "$ROOT/bench/http/client_aiohttp.py" "$url" "$DUR" "$c" uvloop 2>&1) ;;
        lua-http) out=$(LUA_PATH_5_4="$LUA_PEERS" timeout -k 2 $((DUR + 30)) taskset -c "$SRV_CPU" "$LUA" "$ROOT/bench/http/client_luahttp.lua" 127.0.0.1 "$PORT" "$DUR" "$c" 2>&1) ;;
        esac
        echo "$out" >>"$LOG/client-$name.log"
        rps=$(kv rps "$out")
        printf '%s\t%s\t%s\t%s\n' "$name" "$c" "$rep" "${rps:-0}" >>"$OUT/client.tsv"
        say "client $name x$c: ${rps:-FAILED} req/s"
      done
    done
  done
  stop_pid "$SRV_PID"; SRV_PID=''
  echo "### http client: GET / over keep-alive to nginx (the suite's nginx row, on CPU $LOAD_CPU), client on CPU $SRV_CPU, ${DUR} s"
  echo
  echo "| client | connections | req/s (median) | runs | lasync vs it |"
  echo "|---|---:|---:|---|---:|"
  for c in 1 "$CLIENT_CONC"; do
    local l; l=$(awk -v c="$c" '$1 == "lasync" && $2 == c {print $4}' "$OUT/client.tsv" | median)
    for name in lasync aiohttp aiohttp-uvloop lua-http; do
      local m runs
      m=$(awk -v n="$name" -v c="$c" '$1 == n && $2 == c {print $4}' "$OUT/client.tsv" | median)
      runs=$(awk -v n="$name" -v c="$c" '$1 == n && $2 == c {printf "%s%.1fk", s, $4 / 1000; s = "/"}' "$OUT/client.tsv")
      awk -v n="$name" -v c="$c" -v m="$m" -v r="$runs" -v l="$l" \
        'BEGIN { printf "| %s | %s | %.0f | %s | %.2fx |\n", n, c, m, r, m ? l / m : 0 }'
    done
  done
  echo
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
  echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
  echo "settings: REPEAT=$REPEAT DUR=${DUR}s WARM=${WARM}s"
  echo
  for p in $PARTS; do "part_$p"; done
} | tee "$OUT/summary.md"
echo "http_peers: summary in $OUT/summary.md" >&2
