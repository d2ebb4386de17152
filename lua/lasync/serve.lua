--- lasync.serve: the `lasync serve` command (docs/reference.md §11). A handler script
-- returns `function(reader, writer)` (with --http `function(req)`, served
-- by lasync.http) or `{handler=, on_start=, on_stop=}`;
-- this module serves it on the listen addresses, in this process or in
-- forked workers that serve their master's listening sockets under a
-- master that restarts them. Logs go to stderr, one timestamped line per event.
local lasync = require "lasync"
local core = require "lasync.core"
local checks = require "lasync.checks"
local errtext, callable = checks.errtext, checks.is_callable

local M = {}

local pid = core.sys.getpid()

-- ------------------------------------------------------------------- logs --

--- Writes one log line: `2026-11-21T04:15:02.123Z lasync[PID]: message`.
function M.log(fmt, ...)
  local now = core.sys.wall_time()
  local ms = math.floor((now % 1) * 1000)
  io.stderr:write(("%s.%03dZ lasync[%d]: %s\n"):format(
    os.date("!%Y-%m-%dT%H:%M:%S", math.floor(now)), ms, pid, fmt:format(...)))
end
local log = M.log

-- The loop's exception handler: the context's message, error and traceback.
local function log_context(_, ctx)
  local detail = ctx.traceback or (ctx.exception ~= nil and errtext(ctx.exception))
  log("%s%s", ctx.message or "error", detail and ": " .. detail or "")
end

-- --------------------------------------------------------------- scripts --

--- Loads the handler script at path (of an HTTP handler, function(req),
-- if http); returns {handler=, on_start=, on_stop=}, or nil and why not.
function M.load_script(path, http)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, spec = xpcall(chunk, debug.traceback)
  if not ok then return nil, errtext(spec) end
  if callable(spec) then return {handler = spec} end
  if type(spec) ~= "table" or not callable(spec.handler) then
    return nil, ("%s must return a %s or a table with a handler function, not a %s value")
      :format(path, http and "function(req)" or "function(reader, writer)", type(spec))
  end
  for _, k in ipairs {"on_start", "on_stop"} do
    if spec[k] ~= nil and not callable(spec[k]) then
      return nil, ("%s: %s must be a function, not a %s value"):format(path, k, type(spec[k]))
    end
  end
  return spec
end

-- s ("[HOST]:PORT" or "HOST:PORT") split into its host and its port, nil
-- if there is none; and whether the host was in brackets.
local function split_host_port(s)
  local host, rest = s:match("^%[([^%]]*)%](.*)$")
  if host then return host, rest:match("^:(.*)$"), true end
  local h, port = s:match("^(.*):(.-)$")
  if h then return h, port, false end
  return s, nil, false
end

local FORMS = "(HOST:PORT, [IPv6]:PORT or unix:PATH)"

-- Why that host and port are not an address to listen on, or nil.
local function bad_host_port(host, port, bracketed)
  if host == "" then return "no host " .. FORMS end
  if host:find(":") and not bracketed then
    return "an IPv6 address goes in brackets, as [::1]:PORT"
  end
  if port == nil or port == "" then return "no port " .. FORMS end
  if not port:match("^%d+$") then return ("port '%s' is not a number"):format(port) end
  if tonumber(port) > 65535 then return ("port %s is out of range (0 to 65535)"):format(port) end
end

--- Parses a --listen value: "HOST:PORT", "[IPv6]:PORT" or "unix:PATH".
-- Returns {host=, port=} or {path=}, or nil and why not.
function M.parse_listen(s)
  local path = s:match("^unix:(.*)$")
  if path == "" then return nil, ("bad listen address '%s': no path"):format(s) end
  if path then return {path = path} end
  local host, port, bracketed = split_host_port(s)
  local why = bad_host_port(host, port, bracketed)
  if why then return nil, ("bad listen address '%s': %s"):format(s, why) end
  return {host = host, port = tonumber(port)}
end

local function show_addr(a)
  if a.path then return "unix:" .. a.path end
  return (a.host:find(":") and "[%s]:%d" or "%s:%d"):format(a.host, a.port)
end

-- ------------------------------------------------------------ idle reads --

-- A reader that closes its connection when a read has waited the idle
-- timeout without the peer sending anything: core._stream_received tells a
-- silent peer from a slow one. One timer per connection, not moved on each
-- read or byte: when it fires it looks at what came since it last looked,
-- so a silent peer is closed after one to two timeouts.
local Idle = {}
local IdleMT = {}

function IdleMT.__index(self, k)
  local m = Idle[k]
  if m then return m end
  local s = rawget(self, "stream")
  local v = s[k]
  if type(v) ~= "function" then return v end
  return function(_, ...) return v(s, ...) end
end

function IdleMT.__close(self)
  self.timer:cancel()
end

-- Closed at the end of each read, whether it returns or raises.
local ReadEndMT = {__close = function(self) self.idle.reading = false end}

local function idle_check(self)
  local now, loop = self.loop:time(), self.loop
  if self.stream:is_closing() then return end
  if self.reading then
    local got = core._stream_received(self.stream)
    if got ~= self.seen then self.seen, self.since = got, now end
    if now - self.since >= self.timeout then
      log("closing a connection idle for %g s", self.timeout)
      self.stream:close()
      return
    end
  end
  local at = self.reading and self.since + self.timeout or now + self.timeout
  self.timer = loop:call_at(at, idle_check, self)
end

for _, name in ipairs {"read", "readline", "readexactly", "readuntil"} do
  Idle[name] = function(self, ...)
    local s = self.stream
    self.reading, self.since, self.seen = true, self.loop:time(), core._stream_received(s)
    local _ <close> = self.read_end
    return s[name](s, ...)
  end
end

--- lines(): as the stream's, through the timed readline.
function Idle:lines()
  return function()
    local line = self:readline()
    if line == "" then return nil end
    return (line:gsub("\r?\n$", ""))
  end
end

local function idle_reader(stream, timeout)
  local loop = lasync.get_running_loop()
  local self = setmetatable({stream = stream, timeout = timeout, loop = loop,
    since = loop:time(), reading = false}, IdleMT)
  self.read_end = setmetatable({idle = self}, ReadEndMT)
  self.timer = loop:call_later(timeout, idle_check, self)
  return self
end

-- ------------------------------------------------------------- a server --

-- The client of a connection, for the log: "host:port", or "unix:PATH"
-- of the Unix socket it came in by. Taken as the handler starts: a
-- connection the peer reset has no socket left to ask. A TCP one reset
-- before it was accepted has no peer address already: "?" (its own
-- address is not the peer's).
local function client_of(writer)
  local host, port = writer:get_extra_info("peername")
  if port then return show_addr {host = host, port = port} end
  host, port = writer:get_extra_info("sockname")
  if port then return "?" end
  return show_addr {path = host or "?"}
end

-- ------------------------------------------------- the peer's errors --

-- How many lines about peers' connection errors a second may log: past
-- them, one line at the end of the second counts the rest, so that peers
-- cannot grow the log without bound.
local PEER_LINES = 10
local quiet = {window_end = -math.huge, lines = 0, more = 0}

-- At the end of the second, or at the stop (before the second ended).
local function report_more()
  if quiet.more == 0 then return end
  log("... and %d more connection errors", quiet.more)
  quiet.more = 0
end

-- One line, unless this second has had its PEER_LINES.
local function log_peer_error(fmt, ...)
  local loop = lasync.get_running_loop()
  local now = loop:time()
  if now >= quiet.window_end then quiet.window_end, quiet.lines = now + 1, 0 end
  if quiet.lines < PEER_LINES then
    quiet.lines = quiet.lines + 1
    return log(fmt, ...)
  end
  quiet.more = quiet.more + 1
  if quiet.more == 1 then loop:call_at(quiet.window_end, report_more) end
end

-- Connection errors that the peer causes (it reset or left, or a limit of
-- --read-timeout, --write-timeout or --max-buffer ended it): the handler
-- may just let them go up, without a traceback.
local PEER_CLASSES = {lasync.ConnectionResetError, lasync.BrokenPipeError,
                      lasync.ConnectionAbortedError}
local PEER_CODES = {ETIMEDOUT = true, ENOBUFS = true}

local function by_peer(e)
  for _, c in ipairs(PEER_CLASSES) do
    if c:is(e) then return true end
  end
  return type(e) == "table" and PEER_CODES[e.code] == true
end

-- xpcall's message handler: the error and its traceback as text, down to
-- the handler's frame (not lasync serve's own).
local function with_traceback(e)
  if by_peer(e) then return {e, errtext(e), true} end
  return {e, (debug.traceback(errtext(e), 2):gsub("\n\t%[C%]: in function 'xpcall'.*$", ""))}
end

-- Runs the handler; its error is logged with the client's address (a
-- cancellation goes on up, so that the task ends cancelled), one
-- rate-limited line for the peer's doing.
local function run_handler(handler, reader, writer)
  local client = client_of(writer)
  local ok, err = xpcall(handler, with_traceback, reader, writer)
  if ok then return end
  if lasync.CancelledError:is(err[1]) then error(err[1], 0) end
  if err[3] then
    return log_peer_error("connection from %s closed: %s", client, err[2])
  end
  log("Unhandled error in connection handler (client %s): %s", client, err[2])
end

-- The access log of --http: one line per request.
local function access_log(req, status, bytes, seconds)
  local peer = req.peer
  log("%s %s %s%s %s %d %.1fms", peer.port and show_addr(peer) or "unix:" .. (peer.host or "?"),
    req.method, req.path, req.query ~= "" and "?" .. req.query or "", status or "-", bytes,
    seconds * 1000)
end

-- With --http: the lasync.http service whose connection handler the
-- servers run, serving the script's current handler (SIGHUP may replace
-- it; a kept-alive connection's next request gets the new one). The idle
-- timeout is the HTTP timeout: of the wait for a request and its body.
local function http_service(st)
  local http = require "lasync.http"
  return http._service(function(req) return st.spec.handler(req) end,
    {timeout = st.o.idle_timeout, log = not st.o.quiet and access_log or nil})
end

-- The handler the servers run: the script's current one (SIGHUP may
-- replace it), with the idle timeout when there is one.
local function connection_handler(st)
  if st.service then return st.service.handler end
  local timeout = st.o.idle_timeout
  if not timeout then
    return function(reader, writer) return run_handler(st.spec.handler, reader, writer) end
  end
  return function(reader, writer)
    local r <close> = idle_reader(reader, timeout)
    return run_handler(st.spec.handler, r, writer)
  end
end

-- The TLS context of --tls-cert and --tls-key, or nil (and why not).
local function tls_context(o)
  if not o.tls_cert then return nil end
  local ok, ctx = pcall(lasync.ssl_context, {certfile = o.tls_cert, keyfile = o.tls_key})
  if ok then return ctx end
  return nil, errtext(ctx):gsub("^ssl_context: ", "")
end

-- The servers' TLS options: a silent client must not hold a connection
-- in its handshake longer than the idle timeout (the default is 60 s).
-- With them the limits of --read-timeout, --write-timeout and --max-buffer.
local function tls_opts(st)
  local o = st.o
  local idle = o.idle_timeout
  return {ssl = st.ssl, ssl_handshake_timeout = st.ssl and idle and math.min(idle, 60) or nil,
          read_timeout = o.read_timeout, write_timeout = o.write_timeout,
          max_buffer = o.max_buffer}
end

-- A worker serves the sockets its master listens on (a.fds).
local function open_server(st, a, handler)
  local opts = tls_opts(st)
  if a.path then return lasync.start_unix_server(handler, a.path, opts) end
  opts._listen_fds = a.fds
  return lasync.start_server(handler, a.host, a.port, opts)
end

local function listen(st, a, handler)
  local server = open_server(st, a, handler)
  if st.o.max_connections then server:set_max_connections(st.o.max_connections) end
  for _, addr in ipairs(server:socknames()) do
    log("listening on %s%s", show_addr(addr), st.ssl and " (TLS)" or "")
  end
  return server
end

-- SIGHUP without a master: the script is loaded again; connections
-- accepted from then on run its handler, open ones finish with the old.
local function reload(st)
  local spec, err = M.load_script(st.o.script, st.o.http)
  if not spec then
    log("SIGHUP: reload failed, keeping the running handler: %s", err)
    return
  end
  st.spec.handler = spec.handler
  log("SIGHUP: reloaded %s", st.o.script)
end

-- Whether every server closed (their handlers ended) within `seconds`.
local function closed_within(servers, seconds)
  local ok, err = pcall(lasync.wait_for, function()
    for _, s in ipairs(servers) do s:wait_closed() end
  end, seconds)
  if not ok and not lasync.TimeoutError:is(err) then error(err, 0) end
  return ok
end

-- The tasks still running, but this one.
local function other_tasks()
  local me, list = lasync.current_task(), {}
  for _, t in ipairs(lasync.all_tasks()) do
    if t ~= me and not t:done() then list[#list + 1] = t end
  end
  return list
end

-- At most this long, cancelled handlers are waited for.
local MAX_AFTER_CANCEL = 3

-- Stop accepting, let the handlers finish for up to grace seconds, then
-- cancel every task left (but this one) and wait for them, for the grace
-- again but at most MAX_AFTER_CANCEL: a handler may catch its cancellation.
-- Returns how many tasks are still running.
local function drain(st, servers)
  for _, s in ipairs(servers) do s:close() end
  if st.service then st.service:close() end
  if closed_within(servers, st.o.grace) then return 0 end
  local tasks = other_tasks()
  for _, t in ipairs(tasks) do t:cancel("grace period over") end
  log("grace period of %g s over: cancelled %d tasks", st.o.grace, #tasks)
  local wait = math.min(st.o.grace, MAX_AFTER_CANCEL)
  if closed_within(servers, wait) then return 0 end
  local left = #other_tasks()
  log("%d tasks still running %g s after their cancellation: exiting anyway", left, wait)
  return left
end

-- Runs on_start or on_stop, if the script has it, with the worker's
-- index and the number of workers (1, 1 without workers). Returns whether
-- it ran without an error, which is logged with its traceback.
local function run_hook(spec, name, o)
  if not spec[name] then return true end
  local ok, err = xpcall(spec[name], with_traceback, o.worker or 1, o.workers)
  if not ok then log("%s failed: %s", name, err[2]) end
  return ok
end

-- A future set to the name of the first SIGTERM or SIGINT. Standalone
-- (no master pid), a second one exits at once; a worker ignores it (Ctrl-C
-- sends SIGINT to it beside the master's SIGTERM). A worker whose master
-- died before these handlers were set missed its SIGTERM (deathsig).
local function watch_stop(loop, master)
  local stop = loop:create_future()
  for _, sig in ipairs {"SIGTERM", "SIGINT"} do
    loop:add_signal_handler(sig, function()
      if not stop:done() then return stop:set_result(sig) end
      if master then return end
      log("%s while stopping: exiting now", sig)
      core.sys._exit(1)
    end)
  end
  if master and core.sys.getppid() ~= master then stop:set_result("master gone") end
  return stop
end

-- glibc gives back what a process frees only from the top of its heap,
-- so a long-running server's RSS would stay at its highest use: a serving
-- process keeps large blocks in mappings of their own and returns the
-- heap's free pages every TRIM_EVERY seconds (src/process.c).
local TRIM_EVERY = 1
local function give_back_memory(loop)
  core.sys.malloc_tune()
  local function trim()
    core.sys.malloc_trim()
    loop:call_later(TRIM_EVERY, trim)
  end
  loop:call_later(TRIM_EVERY, trim)
end

-- The main task of a serving process, standalone or a worker of the
-- master with that pid, which learns on its pipe `ready` once the worker
-- listens: returns its exit status.
local function serve_main(o, master, ready)
  local loop = lasync.get_running_loop()
  loop:set_exception_handler(log_context)
  give_back_memory(loop)
  local spec, err = M.load_script(o.script, o.http)
  if not spec then
    log("cannot load %s: %s", o.script, err)
    return 1
  end
  local ssl, why = tls_context(o)
  if o.tls_cert and not ssl then
    log("cannot load the TLS certificate: %s", why)
    return 1
  end
  local st = {o = o, spec = {handler = spec.handler}, ssl = ssl}
  if o.http then st.service = http_service(st) end
  local stop = watch_stop(loop, master)
  loop:add_signal_handler("SIGUSR1", function() lasync.dump_tasks() end)
  if not master then
    loop:add_signal_handler("SIGHUP", function() lasync.spawn(reload, st) end)
  end
  if not run_hook(spec, "on_start", o) then return 1 end
  local servers, handler = {}, connection_handler(st)
  for i, a in ipairs(o.listen) do servers[i] = listen(st, a, handler) end
  if ready and not core.sys.fd_write(ready, pid .. "\n") then
    log("cannot tell the master that this worker listens: a reload waits for it")
  end
  local sig = stop:await()
  log("%s: draining (grace %g s)", sig, o.grace)
  local left = drain(st, servers)
  local stopped = run_hook(spec, "on_stop", o)
  report_more()
  log("stopped")
  if left > 0 then core.sys._exit(1) end  -- lasync.run would wait for them
  return stopped and 0 or 1
end

-- Serves in this process; returns the exit status.
local function serve_here(o, master, ready)
  local ok, res = xpcall(lasync.run, debug.traceback, serve_main, o, master, ready)
  if ok then return res end
  log("error: %s", errtext(res))
  return 1
end

-- ---------------------------------------------------------------- master --

local MAX_BACKOFF = 5

local function wake(st)
  if st.wake and not st.wake:done() then st.wake:set_result(true) end
end

local function died(how, code)
  if how == "signal" then return "was killed by " .. core.sys.signame(code) end
  return "exited with status " .. code
end

-- A worker that dies unexpectedly is replaced after a delay that doubles
-- while workers die young, so that a crashing script does not spin;
-- unless a reload (a new generation) has replaced it meanwhile.
local function restart_later(st, w)
  local lived = st.loop:time() - w.started
  st.backoff = lived < 1 and math.min(st.backoff * 2, MAX_BACKOFF) or 0.05
  log("restarting worker %d in %g s", w.slot, st.backoff)
  st.loop:call_later(st.backoff, function()
    if st.stopping or w.gen ~= st.gen then return end
    st.queue[#st.queue + 1] = w.slot
    wake(st)
  end)
end

local function signal_all(st, sig)
  for p in pairs(st.workers) do core.sys.kill(p, sig) end
end

local function stop(st, sig)
  if st.stopping then return end
  st.stopping, st.queue = true, {}
  log("%s: stopping %d workers", sig, st.count)
  signal_all(st, "SIGTERM")
  st.loop:call_later(st.o.grace + 5, function()
    if st.count > 0 then
      log("workers still running after %g s: killing them", st.o.grace + 5)
      signal_all(st, "SIGKILL")
    end
  end)
  wake(st)
end

-- SIGHUP: the script must load before a new generation of workers
-- replaces the running ones (and any restart of theirs still to come).
local function hangup(st)
  if st.stopping then return end
  local _, err = M.load_script(st.o.script, st.o.http)
  if err then
    log("SIGHUP: reload failed, keeping the running workers: %s", err)
    return
  end
  log("SIGHUP: starting %d new workers, the old ones drain once they listen", st.o.workers)
  st.gen, st.queue = st.gen + 1, {}
  for slot = 1, st.o.workers do st.queue[slot] = slot end
  wake(st)
end

-- Once a worker of the newest generation listens in every slot, SIGTERM
-- the older ones: until then they serve, so that a reload never refuses a
-- connection, and a new script that cannot start leaves them serving.
local function retire_replaced(st)
  local old, ready, n = {}, {}, 0
  for p, w in pairs(st.workers) do
    if w.gen < st.gen and not w.termed then old[#old + 1] = p end
    if w.gen == st.gen and w.ready and not ready[w.slot] then
      ready[w.slot], n = true, n + 1
    end
  end
  if #old == 0 or n < st.o.workers then return end
  log("the new workers listen: stopping %d old ones", #old)
  for _, p in ipairs(old) do
    st.workers[p].termed = true
    core.sys.kill(p, "SIGTERM")
  end
end

-- The ready pipe: each worker writes its pid and a newline once it listens.
local function read_ready(st)
  local data = core.sys.fd_read(st.ready_r)
  while data and data ~= "" do
    st.ready_buf = st.ready_buf .. data
    data = core.sys.fd_read(st.ready_r)
  end
  st.ready_buf = st.ready_buf:gsub("(%d+)\n", function(p)
    local w = st.workers[tonumber(p)]
    if w then w.ready = true end
    return ""
  end)
  retire_replaced(st)
end

-- A worker is gone. One of the first that never listened (its script's
-- on_start refused, its certificate did not load) stops the master with
-- exit status 1, as it would without workers. One of an older generation
-- that dies before it was told to is not restarted: the new worker of its
-- slot takes over.
local function worker_gone(st, w)
  if st.stopping or w.termed then return end
  if w.first and not w.ready then
    st.status = 1
    stop(st, ("worker %d did not start"):format(w.slot))
  elseif w.gen == st.gen then
    restart_later(st, w)
  end
end

-- SIGCHLD: reap every finished worker, once the ready pipe says which
-- listened. Only the workers, by pid: a child the master's own code
-- started (create_subprocess_exec in an on_start) is its Process's to reap.
local function reap(st)
  read_ready(st)
  local gone = {}
  for p in pairs(st.workers) do
    local _, how, code = core.sys.waitpid(p, true)
    if how then gone[#gone + 1] = {p, how, code} end
  end
  for _, g in ipairs(gone) do
    local p, w = g[1], st.workers[g[1]]
    st.workers[p], st.count = nil, st.count - 1
    log("worker %d (pid %d) %s", w.slot, p, died(g[2], g[3]))
    worker_gone(st, w)
  end
  wake(st)
end

local function watch_signals(st)
  local loop = st.loop
  loop:add_signal_handler("SIGCHLD", function() reap(st) end)
  loop:add_signal_handler("SIGTERM", function() stop(st, "SIGTERM") end)
  loop:add_signal_handler("SIGINT", function() stop(st, "SIGINT") end)
  loop:add_signal_handler("SIGHUP", function() lasync.spawn(hangup, st) end)
  -- each worker prints its own task dump, its pid in the header
  loop:add_signal_handler("SIGUSR1", function() signal_all(st, "SIGUSR1") end)
  loop:add_reader(st.ready_r, read_ready, st)
end

-- In the child: leave the master's loop (core.sys.fork gave it its own kernel
-- state) and serve as the worker of that slot; never return into the
-- master's code.
local function worker(st, slot)
  local master = pid
  pid = core.sys.getpid()
  st.loop:close()
  core.sys.fd_close(st.ready_r)
  st.o.worker = slot  -- this process's copy of o
  local ok, status = pcall(serve_here, st.o, master, st.ready_w)
  core.sys._exit(ok and status or 1)
end

-- Forks the queued workers (outside the master's loop).
local function fork_queued(st)
  for _, slot in ipairs(st.queue) do
    local p = core.sys.fork(st.loop, "SIGTERM")  -- workers drain when the master dies
    if p == 0 then worker(st, slot) end
    st.workers[p] = {slot = slot, gen = st.gen, started = st.loop:time(), first = st.starting}
    st.count = st.count + 1
    log("worker %d started (pid %d)", slot, p)
  end
  st.queue = {}
end

-- Waits in the master's loop until there is something to do.
local function idle(st)
  while #st.queue == 0 and not (st.stopping and st.count == 0) do
    st.wake = st.loop:create_future()
    st.wake:await()
  end
end

-- The listen backlog of the master's sockets, nginx's: every worker
-- accepts from the one queue of each.
local BACKLOG = 511

-- The master listens on each address of a listen option
-- (core.sys.listen_socket), all on the port of the first, and never
-- accepts: its workers, restarted ones and those of a reload too, serve
-- those sockets, forked with them, so that the connections waiting in
-- their queue outlive any worker (a worker's own socket would reset them
-- as it closed), and an address in use stops the master at start.
-- Returns the numeric hosts, the port and the descriptors.
local function listen_one(a)
  local hosts, fds, port = {}, {}, a.port
  for i, r in ipairs(lasync.getaddrinfo(a.host, a.port)) do
    hosts[i], port, fds[i] = core.sys.listen_socket(r.host, port, BACKLOG)
  end
  return hosts, port, fds
end

-- The workers' listen addresses (each with the list of its numeric hosts
-- and of its sockets), or nil and why not.
local function listen_all(addrs)
  local out = {}
  for i, a in ipairs(addrs) do
    local ok, hosts, port, fds = pcall(listen_one, a)
    if not ok then return nil, ("cannot listen on %s: %s"):format(show_addr(a), errtext(hosts)) end
    if a.port == 0 then log("%s: the workers listen on port %d", show_addr(a), port) end
    out[i] = {host = hosts, port = port, fds = fds}
  end
  return out
end

-- What the master checks before forking: the script loads, so does the
-- certificate (each worker loads its own), the addresses are free. Returns
-- the workers' listen addresses, or nil and why not.
local function master_checks(o)
  local _, err = M.load_script(o.script, o.http)
  if err then return nil, ("cannot load %s: %s"):format(o.script, err) end
  local ssl, why = tls_context(o)
  if o.tls_cert and not ssl then return nil, "cannot load the TLS certificate: " .. why end
  return listen_all(o.listen)
end

-- The master: forks o.workers workers and supervises them.
local function serve_master(o)
  local loop = lasync.new_event_loop()
  local st = {o = o, loop = loop, workers = {}, count = 0, queue = {},
    backoff = 0.05, ready_buf = "", gen = 1}
  loop:set_exception_handler(log_context)
  local addrs, err = loop:run_until_complete(master_checks, o)
  if not addrs then
    log("%s", err)
    loop:close()
    return 1
  end
  o.listen = addrs
  st.ready_r, st.ready_w = core.sys.pipe()
  watch_signals(st)
  for slot = 1, o.workers do st.queue[slot] = slot end
  st.starting = true
  while not (st.stopping and st.count == 0) do
    fork_queued(st)
    st.starting = false
    loop:run_until_complete(idle, st)
  end
  log("stopped")
  loop:close()
  core.sys.fd_close(st.ready_r)
  core.sys.fd_close(st.ready_w)
  return st.status or 0
end

--- Serves o: {script=, listen={{host=, port=} or {path=}, ...}, workers=,
-- max_connections=, idle_timeout=, read_timeout=, write_timeout=,
-- max_buffer=, grace=, tls_cert=, tls_key=, http=, quiet=}. Returns the exit status.
function M.serve(o)
  core.sys.ignore_signal("SIGPIPE")  -- a closed log pipe: log writes just fail
  log("lasync %s serving %s with %d worker%s", lasync.VERSION, o.script,
    o.workers, o.workers == 1 and "" or "s")
  if o.workers == 1 then return serve_here(o) end
  return serve_master(o)
end

return M
