# lasync: build and test driver.
#
#   make              build build/lasync/core.so from src/*.c, and the
#                     REPL's lineedit.so from src/lineedit/
#   make test         install what is missing (deps), build, run the busted suite
#   make test-asan    the same suite against an ASan/UBSan build in build-asan/
#   make valgrind     the suite (VALGRIND_SPECS) under valgrind
#   make helgrind     the thread pool's specs (HELGRIND_SPECS) under helgrind
#   make test-browser the WebSocket chat example in headless Chromium
#   make fuzz-api     random API call sequences under ASan/UBSan (SEED=, N=, START=)
#   make c10k         10,000 active, then 50,000 idle echo connections (C10K_S=, ...)
#   make crash        lasync serve --workers 4 under load, kill -9 and SIGHUP (CRASH_S=)
#   make soak         lasync serve --workers 2 under mixed load and faults (SOAK_S=, default 600)
#   make run | bench | bench-echo | bench-http | bench-ws | bench-udp | bench-spawn |
#        bench-thread | bench-redis | bench-resp | lint | docs | install | clean
#
# Useful overrides: SPECS=spec/core  BUSTED_FLAGS='--filter=future'
#                   TREE=/tmp/rocks  (for install)  CFLAGS='-O0 -g'
#
# Why most flags are what they are: docs/development.md ("The toolchain on Debian 12").

LUA        ?= lua5.4
PKG_CONFIG ?= pkg-config
LUAROCKS   ?= luarocks
LUACHECK   ?= luacheck
VALGRIND   ?= valgrind
# `$$(...)` reaches the shell as `$(...)`: busted is looked up when the recipe
# runs, i.e. after `deps` may have installed it.
BUSTED     ?= $$(command -v busted)
BUSTED_FLAGS ?=
SPECS      ?= spec
VALGRIND_SPECS ?= spec

# Debian 12 packages that build, test and install lasync.
DEB_PACKAGES := build-essential pkg-config git ca-certificates openssl \
                libevent-dev libssl-dev lua5.4 liblua5.4-dev luarocks lua-busted lua-check libedit-dev \
                libhttp-parser-dev lua-cjson curl python3 python3-websockets \
                valgrind lua-socket lua-redis redis-server redis-tools python3-aiosmtpd

# ---------------------------------------------------------------- flags ----

# Recursive (`=`), not `:=`: on a fresh machine pkg-config and the headers
# only exist once `deps` has run, so these are evaluated in the recipes, not
# when the Makefile is read.
LUA_CFLAGS   = $(shell $(PKG_CONFIG) --cflags lua5.4)
EVENT_CFLAGS = $(shell $(PKG_CONFIG) --cflags libevent_core libevent_extra openssl)
# Headers only for Lua: the interpreter provides the Lua API, and linking
# liblua would give the module a second copy of it. libevent's core part,
# and its extra part for evdns; OpenSSL for TLS.
EVENT_LIBS   = $(shell $(PKG_CONFIG) --libs libevent_core libevent_extra openssl)
EDIT_LIBS    = $(shell $(PKG_CONFIG) --libs libedit)

# -D_GNU_SOURCE: -std=c11 hides accept4/pipe2. -fvisibility=hidden: only
# luaopen_lasync_core is exported (explicitly, in src/module.c).
# -MMD -MP: objects also follow any header a source includes.
REQ_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -fvisibility=hidden \
             -MMD -MP $(LUA_CFLAGS) $(EVENT_CFLAGS)
LINEEDIT_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -fvisibility=hidden $(LUA_CFLAGS)
CFLAGS    ?= -O2 -g
ASAN_CFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
               -fno-omit-frame-pointer -O1 -g

# -z nodelete: Lua dlclose()s C modules in lua_close(). Keeping the module
# (and so libevent) mapped lets valgrind and LeakSanitizer name our frames
# and stops them reporting libevent's global state as leaked. It costs
# nothing: lua_close() runs at exit. The default build gets it too, so
# `valgrind` checks the very build `test` uses.
SO_LDFLAGS := -shared -Wl,-z,nodelete

# ---------------------------------------------------------------- files ----

SRCS      := $(wildcard src/*.c)
OBJS      := $(SRCS:src/%.c=build/obj/%.o)
ASAN_OBJS := $(SRCS:src/%.c=build-asan/obj/%.o)
CORE      := build/lasync/core.so
ASAN_CORE := build-asan/lasync/core.so
# The REPL's line editor: a module of its own (libedit), not part of core.
LINEEDIT      := build/lasync/lineedit.so
ASAN_LINEEDIT := build-asan/lasync/lineedit.so

# ---------------------------------------------------------- environment ----

# Lua 5.4 reads the _5_4 variables before LUA_PATH/LUA_CPATH, which 5.1 tools
# (busted's own `lua`, luacheck) also read. `;;` keeps the default paths, where
# busted and its libraries live. $(1) is the build folder holding lasync/; scripts/lasync
# takes it from LASYNC_BUILD, so that its specs run the build under test.
LUA_PATH_SRC := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
lua_env = LUA_PATH_5_4='$(LUA_PATH_SRC)' LUA_CPATH_5_4='$(CURDIR)/$(1)/?.so;;' \
          LASYNC_BUILD='$(1)' LASYNC_LUA='$(LUA)' PATH="$(CURDIR)/scripts:$$PATH"

# Run busted with Lua 5.4 explicitly: /usr/bin/busted says `lua`, which is
# 5.1 on Debian. --ignore-lua: never re-exec through a `.busted` `lua` key
# (that loses argument quoting). spec/output.lua ends the run with the line
# "N passed, N failed, N skipped" that CI reads.
busted = $(LUA) "$(BUSTED)" --ignore-lua -o spec/output.lua $(BUSTED_FLAGS)

# The sanitizer runtimes must come first in a process whose lua5.4 is not
# instrumented, hence LD_PRELOAD. Without halt_on_error UBSan findings would
# not fail the run. lua5.4 and busted themselves leak nothing LeakSanitizer
# reports (checked on passing and failing runs), so no suppression file.
asan_env = LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
           ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# `make -j test` on a fresh machine must not compile before `deps` has
# installed the compiler and the headers: objects wait for it then.
ifneq ($(filter test test-asan test-browser valgrind run bench bench-echo bench-http bench-ws bench-udp bench-spawn bench-thread bench-redis bench-resp helgrind fuzz-api c10k crash soak,$(MAKECMDGOALS)),)
DEPS_FIRST := deps
endif

# --------------------------------------------------------------- targets ---

.PHONY: all deps check-rockspec test test-asan test-browser valgrind helgrind run bench \
        bench-echo bench-http bench-ws bench-udp bench-spawn bench-thread bench-redis bench-resp lint docs install \
        clean fuzz fuzz-api c10k crash soak
.DEFAULT_GOAL := all

all: $(CORE) $(LINEEDIT)

$(CORE): $(OBJS)
	@mkdir -p $(@D)
	$(CC) $(SO_LDFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(EVENT_LIBS) -lhttp_parser -lm -pthread

build/obj/%.o: src/%.c src/lasync.h | $(DEPS_FIRST)
	@mkdir -p $(@D)
	$(CC) $(REQ_CFLAGS) $(CFLAGS) $(CPPFLAGS) -c -o $@ $<

# A separate folder so that sanitized objects are never installed or mixed
# with the normal ones.
$(ASAN_CORE): $(ASAN_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) $(SO_LDFLAGS) $(LDFLAGS) -o $@ $(ASAN_OBJS) $(EVENT_LIBS) -lhttp_parser -lm -pthread

build-asan/obj/%.o: src/%.c src/lasync.h | $(DEPS_FIRST)
	@mkdir -p $(@D)
	$(CC) $(REQ_CFLAGS) $(ASAN_CFLAGS) $(CPPFLAGS) -c -o $@ $<

$(LINEEDIT): src/lineedit/lineedit.c | $(DEPS_FIRST)
	@mkdir -p $(@D)
	$(CC) $(LINEEDIT_CFLAGS) $(CFLAGS) $(CPPFLAGS) $(SO_LDFLAGS) $(LDFLAGS) -o $@ $< $(EDIT_LIBS)

$(ASAN_LINEEDIT): src/lineedit/lineedit.c | $(DEPS_FIRST)
	@mkdir -p $(@D)
	$(CC) $(LINEEDIT_CFLAGS) $(ASAN_CFLAGS) $(CPPFLAGS) $(SO_LDFLAGS) $(LDFLAGS) -o $@ $< $(EDIT_LIBS)

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d)

# Cheap when everything is there (one dpkg-query per package, no apt), so
# every test run can depend on it. CI is root on a fresh Debian 12 with no
# standard input: apt must not ask anything.
deps:
	@command -v dpkg-query >/dev/null 2>&1 || { \
	  echo "lasync: no dpkg-query, not checking for: $(DEB_PACKAGES)" >&2; \
	  exit 0; }; \
	missing=; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Abbrev}' "$$p" 2>/dev/null | grep -q '^ii' \
	    || missing="$$missing $$p"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "lasync: missing Debian packages:$$missing" >&2; \
	  echo "lasync: install them as root with:" >&2; \
	  echo "  apt-get install --no-install-recommends$$missing" >&2; \
	  exit 1; \
	fi; \
	echo "lasync: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update && \
	apt-get install -y --no-install-recommends $(DEB_PACKAGES) </dev/null

# The rockspec cannot glob: fail early when it lacks a C file of src/.
check-rockspec:
	@missing=; \
	for f in $(SRCS); do \
	  grep -q "\"$$f\"" lasync-scm-1.rockspec || missing="$$missing $$f"; \
	done; \
	[ -z "$$missing" ] || { \
	  echo "lasync-scm-1.rockspec: build.modules lacks:$$missing" >&2; exit 1; }

# Recipes below start with `@` and busted is their last command: nothing may
# be printed after busted's closing "N passed, N failed" line. With
# LASYNC_COUNTS=file in the environment, spec/output.lua also writes the
# counts there (.ci/run adds up its runs that way).
test: deps check-rockspec all
	@$(call lua_env,build) $(busted) $(SPECS)

test-asan: deps $(ASAN_CORE) $(ASAN_LINEEDIT)
	@$(asan_env) $(call lua_env,build-asan) $(busted) $(SPECS)

# examples/ws_chat.lua in two headless Chromium processes (Debian's
# chromium, installed when root and missing; not part of `test`), driven
# over the DevTools protocol by spec/browser/chat.py; the screenshot of the
# second goes to BROWSER_SHOT.
BROWSER_SHOT ?= build/ws_chat.png
test-browser: deps all deps-browser
	@$(call lua_env,build) /usr/bin/python3 spec/browser/chat.py scripts/lasync '$(BROWSER_SHOT)'

.PHONY: deps-browser
deps-browser:
	@dpkg-query -W -f='$${db:Status-Abbrev}' chromium 2>/dev/null | grep -q '^ii' && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "lasync: make test-browser needs chromium: apt-get install chromium" >&2; exit 1; \
	fi; \
	echo "lasync: installing chromium"; \
	export DEBIAN_FRONTEND=noninteractive; \
	{ apt-get install -y --no-install-recommends chromium </dev/null \
	  || { apt-get update && apt-get install -y --no-install-recommends chromium </dev/null; }; }

# valgrind runs on lua5.4 itself; the module is linked with -z nodelete.
# Its report goes to VALGRIND_LOG, shown after busted's line (leaks are only
# known at exit); its last line is "ERROR SUMMARY: N errors ...". Through a
# descriptor of the shell's (9), not --log-file, which valgrind opens at the
# lowest free number and leaves open in the children specs start; children
# forked by specs report nothing there (they would repeat the parent's).
# --fair-sched: valgrind runs one thread at a time, and without it a busy
# worker thread (spec/thread_spec.lua) starves the loop's. The specs'
# deadlines (hang guards) are stretched tenfold (spec/helper.lua).
VALGRIND_LOG ?= build/valgrind.log
valgrind: deps all
	@rc=0; $(call lua_env,build) LASYNC_SPEC_SLOWDOWN=10 $(VALGRIND) --log-fd=9 --keep-debuginfo=yes \
	  --child-silent-after-fork=yes --fair-sched=yes --leak-check=full \
	  --errors-for-leak-kinds=definite --error-exitcode=3 \
	  $(busted) $(VALGRIND_SPECS) 9>'$(VALGRIND_LOG)' || rc=$$?; \
	cat '$(VALGRIND_LOG)' >&2; exit $$rc

# The thread pool's specs under helgrind (valgrind's thread checker): data
# races on the pool's shared state, lock misuse. Report to HELGRIND_LOG
# through descriptor 9 as for valgrind; its last line is "ERROR SUMMARY: N
# errors". --fair-sched as for valgrind.
HELGRIND_SPECS ?= spec/thread_spec.lua
HELGRIND_LOG ?= build/helgrind.log
helgrind: deps all
	@rc=0; $(call lua_env,build) LASYNC_SPEC_SLOWDOWN=10 $(VALGRIND) --tool=helgrind --log-fd=9 \
	  --keep-debuginfo=yes --child-silent-after-fork=yes --fair-sched=yes \
	  --error-exitcode=3 $(busted) $(HELGRIND_SPECS) 9>'$(HELGRIND_LOG)' || rc=$$?; \
	cat '$(HELGRIND_LOG)' >&2; exit $$rc

# The chat example; Ctrl-C stops it.
run: deps all
	@echo "lasync: chat on 127.0.0.1:8080; connect with: nc 127.0.0.1 8080"
	@$(call lua_env,build) scripts/lasync serve examples/chat.lua \
	  --listen 127.0.0.1:8080

# bench/core.lua compares against Python asyncio and uvloop (Debian's
# python3, with python3-uvloop) and SHARED_BENCH's micro/, the peers'
# benchmark suite (a separate checkout, given by path); whatever is missing
# is shown as n/a. REPEAT=n rounds (median), SCALE=x counts.
SHARED_BENCH ?=
BENCH_PYTHON ?= /usr/bin/python3

bench: deps deps-bench all
	@$(call lua_env,build) SHARED_BENCH='$(SHARED_BENCH)' \
	  PYTHON='$(BENCH_PYTHON)' $(LUA) bench/core.lua
	@$(call lua_env,build) PYTHON='$(BENCH_PYTHON)' $(LUA) bench/sync.lua
	@$(call lua_env,build) $(LUA) bench/timers.lua

# lasync's echo server beside the peers of issue 4 in one run of the shared
# bench (a scratch copy of it): echo and memory parts. REPEAT, DUR, ... go to
# its run.sh. Installs the peers' Debian packages when root and missing.
bench-echo: deps all
	@bench/echo_peers.sh '$(SHARED_BENCH)'

# lasync's HTTP server (examples/http_hello.lua) and client beside the
# peers of issue 11 in one session of the shared bench (a scratch copy):
# its http part with a lasync row, wrk with 16 requests per write, RSS per
# idle keep-alive connection, and the clients against its nginx row.
# PARTS, REPEAT, DUR, ... go to bench/http_peers.sh; runs the suite's
# deps.sh when wrk or nginx is missing and we are root.
bench-http: deps all
	@bench/http_peers.sh '$(SHARED_BENCH)'

# lasync's WebSocket echo beside Python's websockets (uvloop) and Node's ws
# (from the npm registry) in one run: messages/s over 1 and 100
# connections, RSS per idle WebSocket. REPEAT, DUR, MEM_CONNS, ... go to
# bench/ws_peers.sh.
bench-ws: deps deps-bench all
	@bench/ws_peers.sh

# lasync's UDP echo (with and without recvmmsg/sendmmsg batches) beside a
# C libevent echo and asyncio's create_datagram_endpoint on uvloop, in one
# run: datagrams/s, 10 clients, 64 B. REPEAT, DUR, CLIENTS, SIZE, ... go
# to bench/udp_peers.sh.
bench-udp: deps deps-bench all
	@bench/udp_peers.sh

# lua-redis GET/SET round trips per second from 50 tasks over lasync.socket,
# beside the same library on copas (50 coroutines) and on blocking
# LuaSocket (one connection), against one redis-server, in one run. DUR
# (seconds per figure), TASKS, REPEAT go to bench/redis_peers.sh.
bench-redis: deps deps-bench all
	@bench/redis_peers.sh

# redis-benchmark against examples/redis_server.lua and redis-server in one
# run, pipelined (-P PIPE, default 16) and not: requests/s and the ratio;
# then both servers' instructions per command under callgrind (noise-free).
# N, CLIENTS, PIPE go to both scripts, REPEAT to bench/resp_peers.sh.
bench-resp: deps all
	@bench/resp_peers.sh
	@bench/resp_icount.sh

# 10,000 echo connections with a message a second each, then 50,000 idle
# ones across `lasync serve --workers 3` with an active client measuring
# latency; checks its pass criteria (docs/reliability.md). C10K_S,
# C10K_CONNS, C10K_IDLE, C10K_ACTIVE_S, C10K_P99_MS, C10K_ACTIVE_P99_MS go
# to bench/c10k.sh.
c10k: deps all
	@bench/c10k.sh

# `lasync serve --workers 4 bench/crash_echo.lua` under load for CRASH_S
# seconds (default 60): kill -9 of a worker every 5 s, a SIGHUP every 15 s;
# exit 1 when a criterion fails (bench/crash.sh, docs/reliability.md).
CRASH_S ?= 60
crash: deps all
	@CRASH_S='$(CRASH_S)' bench/crash.sh

# One lasync serve --workers 2 (echo, TLS echo, HTTP, WebSocket) under
# bench/soak_client.lua's mixed load and faults for SOAK_S seconds (default
# 600): RSS, descriptors, corruption and lost requests checked
# (bench/soak.sh, docs/reliability.md); then the long crash test (make
# crash, CRASH_S). Both run; either failing fails the target.
SOAK_S ?= 600
soak: deps all
	@rc=0; SOAK_S='$(SOAK_S)' bench/soak.sh || rc=1; \
	  CRASH_S='$(CRASH_S)' bench/crash.sh || rc=1; exit $$rc

# Subprocess spawn+wait of /bin/true per second, lasync beside asyncio and
# uvloop in one run. COUNT, CONCS, REPEAT go to bench/subprocess_peers.sh.
bench-spawn: deps deps-bench all
	@PYTHON='$(BENCH_PYTHON)' bench/subprocess_peers.sh

# to_thread round trips of a trivial function beside Python's
# asyncio.to_thread on asyncio and uvloop, in one run (bench/thread.lua).
# N (calls per figure) and REPEAT go to it.
bench-thread: deps deps-bench all
	@$(call lua_env,build) PYTHON='$(BENCH_PYTHON)' $(LUA) bench/thread.lua

# Installs the benches' peers (uvloop; copas for bench-redis) when root and
# missing; never fails the bench: a missing peer's figures are n/a.
BENCH_PACKAGES := python3-uvloop lua-copas
.PHONY: deps-bench
deps-bench:
	@for p in $(BENCH_PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null \
	    | grep -q '^ii' && continue; \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "lasync: $$p missing (its figures n/a)" >&2; \
	    continue; \
	  fi; \
	  echo "lasync: installing $$p"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get install -y --no-install-recommends $$p </dev/null \
	    || { apt-get update && apt-get install -y --no-install-recommends \
	         $$p </dev/null; }; } >/dev/null 2>&1 \
	    || echo "lasync: could not install $$p (its figures n/a)" >&2; \
	done

# libFuzzer harnesses of the HTTP, WebSocket and RESP parsers (fuzz/*.c) under ASan/UBSan, built
# with Debian's clang (installed when root and missing) over the whole
# core, linked with liblua here since no interpreter provides it. Each runs
# FUZZ_RUNS inputs from and into its corpus, fuzz/corpus/<harness>/.
FUZZ_HARNESSES := head chunked response websocket resp
FUZZ_RUNS ?= 1000000
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# fuzz/run.lua runs them under one progress line (plain lines when stderr
# is not a terminal) and stops at the first that fails, with its status.
fuzz: $(FUZZ_HARNESSES:%=build-fuzz/%)
	@mkdir -p $(FUZZ_HARNESSES:%=fuzz/corpus/%)
	@$(LUA) fuzz/run.lua $(FUZZ_RUNS) \
	  $(foreach h,$(FUZZ_HARNESSES),'build-fuzz/$(h) -max_len=4096 fuzz/corpus/$(h)')

build-fuzz/%: fuzz/%.c $(SRCS) src/lasync.h fuzz/head.c | deps-fuzz
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $(LUA_CFLAGS) $(EVENT_CFLAGS) -o $@ $< $(SRCS) \
	  $(EVENT_LIBS) -lhttp_parser $$($(PKG_CONFIG) --libs lua5.4) -lm

# Random call sequences over the core API (fuzz/api.lua) against the
# ASan/UBSan build, invariants checked after each; START=i replays from
# sequence i (a violation prints the command).
SEED ?= 1
N ?= 2000
START ?= 1
fuzz-api: deps $(ASAN_CORE)
	@$(asan_env) $(call lua_env,build-asan) $(LUA) fuzz/api.lua '$(SEED)' '$(N)' '$(START)'

.PHONY: deps-fuzz
deps-fuzz:
	@command -v clang >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "lasync: make fuzz needs clang: apt-get install clang" >&2; exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y --no-install-recommends clang </dev/null

# Only the paths that exist yet, so that lint works while the tree grows.
LINT_PATHS = $(wildcard lua spec scripts/lasync bench examples fuzz)
# Then the LuaLS annotations against docs/reference.md (LuaLS is not
# packaged for Debian 12): .ci/check_annotations.lua, -v lists the names.
ANNOTATED = $(wildcard lua/lasync/*.lua lua/lasync/socket/*.lua lua/lasync/types/*.lua)
lint:
	@$(LUACHECK) $(LINT_PATHS) .ci/check_annotations.lua
	@$(LUA) .ci/check_annotations.lua $(ANNOTATED)

# The HTML reference from the same annotations (config.ld) into
# build/docs/, with Debian's LDoc and the Markdown (discount) it formats with
# (installed when root and missing). Any line LDoc prints beyond its two
# progress lines is a warning, and fails the target.
DOCS_PACKAGES := lua-ldoc lua-discount
docs: deps-docs
	@rm -rf build/docs; mkdir -p build
	@ldoc . >build/ldoc.log 2>&1 || { cat build/ldoc.log >&2; exit 1; }
	@if grep -v -e '^reading configuration from config.ld$$' \
	      -e '^output written to ' build/ldoc.log >&2; then \
	  echo "lasync: make docs: LDoc warned (above)" >&2; exit 1; fi
	@grep -q 'modules/lasync.html' build/docs/index.html \
	  || { echo "lasync: make docs: build/docs/index.html lists no module" >&2; exit 1; }
	@echo "lasync: HTML reference in build/docs/index.html"

.PHONY: deps-docs
deps-docs:
	@missing=; for p in $(DOCS_PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' \
	    || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "lasync: make docs needs:$$missing (apt-get install$$missing)" >&2; exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	{ apt-get install -y --no-install-recommends $$missing </dev/null \
	  || { apt-get update && apt-get install -y --no-install-recommends $$missing </dev/null; }; }

# luarocks builds from the rockspec with its own flags (no -z nodelete, no
# sanitizers). TREE=/some/dir installs into that tree instead of the system
# one; LUAROCKS_FLAGS=--local for the user's tree.
install:
	$(LUAROCKS) --lua-version=5.4 make $(if $(TREE),--tree '$(TREE)') \
	  $(LUAROCKS_FLAGS) lasync-scm-1.rockspec

# `luarocks make` leaves src/*.o and ./lasync/core.so in the checkout.
clean:
	rm -rf build build-asan build-fuzz
	rm -f src/*.o src/lineedit/*.o lasync/core.so lasync/lineedit.so
	@if [ -d lasync ]; then rmdir lasync 2>/dev/null || true; fi
