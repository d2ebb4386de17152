--- fuzz/api.lua: random call sequences over the core API (`make fuzz-api`),
-- pure Lua, deterministic from a seed:
--
--   lua5.4 fuzz/api.lua SEED N [START]
--
-- Sequence i (START, START + 1, ... START + N - 1) of SEED is a program: a
-- few actors (tasks), each a list of random operations over a small pool
-- (futures, the other actors, a Lock, Event, Condition, Semaphore, Queue,
-- a TCP server on 127.0.0.1 port 0 and connections to it). It runs on a
-- fresh loop with lasync.run; what is left waiting after a short budget is
-- cancelled. After each sequence the invariants (M.check_*) are checked;
-- the first violation prints the seed, the index, the program and the
-- command that replays it, and exits 1. The program is the same on every
-- replay; the interleaving of timers and I/O is real time, so a violation
-- that depends on it may need a few replays.
local lasync = require "lasync"

local M = {}

-- Lua memory is sampled every MEM_EVERY sequences after two full GCs; it
-- must stay within MEM_SLACK_KB of the first sample (taken after MEM_EVERY
-- warm-up sequences, once the task thread pool and the interned strings
-- are there). Measured: honest samples (seed 5, 600 sequences) stay within
-- 11 kB of each other; a leak of 1 kB per sequence passes the bound within
-- about 11 samples (1,100 sequences), one of a loop or a stream at once.
M.MEM_EVERY = 100
M.MEM_SLACK_KB = 1024

-- Budget (real seconds) before the leftovers of a program are cancelled,
-- and the hang guard for them to finish once cancelled.
M.BUDGET = 0.03
M.CANCEL_GUARD = 2

local FUZZ_ERROR = "fuzz: program error"
local N_FUT, N_CONN = 3, 2

-- ------------------------------------------------------- generation ----

local OPS = {
  "sleep0", "sleep", "await_f", "await_a", "cancel_a", "cancel_f", "set_result",
  "set_exception", "gather", "spawn", "task_group", "lock", "event_wait", "event_set",
  "event_clear", "cond_wait", "cond_notify", "sem", "q_put", "q_get", "q_put_nowait",
  "q_get_nowait", "q_join", "connect", "write", "read", "close", "write_eof",
  "abort_clients", "raise",
}
local WRAPS = {"none", "none", "wait_for", "timeout", "shield"}

local function pick(r, list) return list[r(#list)] end

local function delay(r) return (r(4) - 1) * 0.002 end

local function gen_op(r, nact, me)
  local op = {pick(r, OPS), wrap = pick(r, WRAPS), d = delay(r)}
  op.f, op.c = r(N_FUT), r(N_CONN)
  -- Awaits go to an earlier actor only: actors awaiting each other would be
  -- a deadlock of the program's own (as in asyncio), not of lasync.
  local other = r(nact)
  op.a = other < me and other or nil
  op.ca = other ~= me and other or nil
  op.msg = r(2) == 1 and "fuzz msg" or nil
  op.times = r(3)
  op.rexc = r(2) == 1
  op.n = r(3)
  return op
end

--- The program of sequence idx of seed: {actors = {{op...}...}, ...}.
function M.generate(seed, idx)
  local rng = {}
  math.randomseed(seed, idx)
  local function r(n) return math.random(n) end
  local nact = r(4) + 1
  for a = 1, nact do
    local ops = {}
    for k = 1, r(8) do ops[k] = gen_op(r, nact, a) end
    rng[a] = ops
  end
  return {actors = rng, qmax = r(4) - 1, sem = r(2), handler = pick(r, {"echo", "close", "drip"}),
          seed = seed, idx = idx}
end

local function op_text(op)
  local s = op[1] .. "(f" .. op.f .. " c" .. op.c .. (op.a and (" a" .. op.a) or "") ..
    (op.ca and (" ca" .. op.ca) or "")
  s = s .. (" d=%g n=%d x%d%s%s"):format(op.d, op.n, op.times, op.msg and " msg" or "",
                                         op.rexc and " rexc" or "")
  return s .. (op.wrap ~= "none" and (" " .. op.wrap) or "") .. ")"
end

--- The program as text, an actor a line.
function M.describe(prog)
  local out = {("queue maxsize %d, semaphore %d, server handler %s"):format(
    prog.qmax, prog.sem, prog.handler)}
  for a, ops in ipairs(prog.actors) do
    local t = {}
    for k, op in ipairs(ops) do t[k] = op_text(op) end
    out[#out + 1] = ("actor %d: %s"):format(a, table.concat(t, "; "))
  end
  return table.concat(out, "\n")
end

-- ------------------------------------------------------- the errors ----

local EXPECTED = {"CancelledError", "TimeoutError", "InvalidStateError", "QueueEmpty",
                  "QueueFull", "IncompleteReadError", "OSError"}

--- Whether err is an error a program may see: a cancellation, a timeout,
--- its own, a misuse the API documents (InvalidStateError, ...), an I/O error.
function M.expected(err)
  if err == FUZZ_ERROR then return true end
  for _, name in ipairs(EXPECTED) do
    if lasync[name]:is(err) then return true end
  end
  if lasync.TaskGroupError:is(err) then
    for i = 1, err.errors.n do
      if not M.expected(err.errors[i]) then return false end
    end
    return true
  end
  return false
end

-- ------------------------------------------------------- execution ----

local run_op = {}

-- Awaits aw (a future or a function) through op's wrap.
local function wrapped(op, aw)
  local w = op.wrap
  if w == "wait_for" then return lasync.wait_for(aw, op.d) end
  if w == "timeout" then
    return lasync.timeout(op.d, function()
      if type(aw) == "function" then return aw() end
      return aw:await()
    end)
  end
  if w == "shield" and type(aw) ~= "function" then return lasync.shield(aw):await() end
  if type(aw) == "function" then return aw() end
  return aw:await()
end

local function track(st, t) st.tasks[#st.tasks + 1] = t; return t end

local function child(st, op)
  return track(st, lasync.spawn(function()
    lasync.sleep(op.d)
    if op.n == 1 then error(FUZZ_ERROR, 0) end
    if op.n == 2 then return st.futs[op.f]:await() end
    return op.n
  end))
end

function run_op.sleep0() lasync.sleep(0) end
function run_op.sleep(_, op) lasync.sleep(op.d) end
function run_op.raise() error(FUZZ_ERROR, 0) end
function run_op.await_f(st, op) wrapped(op, st.futs[op.f]) end
function run_op.await_a(st, op) if op.a then wrapped(op, st.actors[op.a]) end end
function run_op.cancel_f(st, op) st.futs[op.f]:cancel(op.msg) end
function run_op.cancel_a(st, op)
  if not op.ca then return end
  for _ = 1, op.times do st.actors[op.ca]:cancel(op.msg) end
end
function run_op.set_result(st, op) st.futs[op.f]:set_result(op.n) end
function run_op.set_exception(st, op) st.futs[op.f]:set_exception(FUZZ_ERROR) end
function run_op.spawn(st, op) child(st, op) end

function run_op.gather(st, op)
  local list = {st.futs[op.f], child(st, op)}
  if op.a then list[#list + 1] = st.actors[op.a] end
  if op.rexc then
    wrapped(op, function() return lasync.gather(list, {return_exceptions = true}) end)
  else
    wrapped(op, function() return lasync.gather(table.unpack(list)) end)
  end
end

function run_op.task_group(st, op)
  wrapped(op, function()
    return lasync.task_group(function(tg)
      for k = 1, op.n do
        track(st, tg:spawn(function()
          lasync.sleep(op.d * k)
          if k == op.times then error(FUZZ_ERROR, 0) end
        end))
      end
    end)
  end)
end

function run_op.lock(st, op) wrapped(op, function() st.lock:with(lasync.sleep, op.d) end) end
function run_op.sem(st, op) wrapped(op, function() st.sem:with(lasync.sleep, op.d) end) end
function run_op.event_wait(st, op) wrapped(op, function() return st.event:wait() end) end
function run_op.event_set(st) st.event:set() end
function run_op.event_clear(st) st.event:clear() end
function run_op.cond_wait(st, op)
  wrapped(op, function() st.cond:with(st.cond.wait, st.cond) end)
end
function run_op.cond_notify(st, op)
  st.cond:with(function() if op.rexc then st.cond:notify_all() else st.cond:notify(op.n) end end)
end

function run_op.q_put(st, op)
  wrapped(op, function() st.q:put(op.n) end)
  st.puts = st.puts + 1
end
function run_op.q_put_nowait(st, op) st.q:put_nowait(op.n); st.puts = st.puts + 1 end
local function got(st, op)
  st.gets = st.gets + 1
  if op.rexc then st.q:task_done() end
end
function run_op.q_get(st, op) wrapped(op, function() return st.q:get() end); got(st, op) end
function run_op.q_get_nowait(st, op) st.q:get_nowait(); got(st, op) end
function run_op.q_join(st, op) wrapped(op, function() return st.q:join() end) end

function run_op.connect(st, op)
  if st.conns[op.c] then return end
  st.conns[op.c] = true  -- taken while connecting
  local ok, r = pcall(lasync.open_connection, "127.0.0.1", st.port)
  st.conns[op.c] = ok and r or nil
  if not ok then error(r, 0) end
end
local function conn(st, op)
  local c = st.conns[op.c]
  return c ~= true and c or nil
end
function run_op.write(st, op)
  local c = conn(st, op)
  -- Writing after write_eof() is a misuse that raises (as in asyncio).
  if c and not st.eof[c] then c:write(("line %d\n"):format(op.n):rep(op.times)) end
end
function run_op.close(st, op) local c = conn(st, op); if c then c:close() end end
function run_op.write_eof(st, op)
  local c = conn(st, op)
  if c and not c:is_closing() then c:write_eof(); st.eof[c] = true end
end
function run_op.abort_clients(st) st.server:abort_clients() end

-- Only actor c of a connection reads it (one reader at a time is the API's
-- rule); the others write to it and close it under that reader.
function run_op.read(st, op, me)
  local c = conn(st, op)
  if not c or (op.c - 1) % #st.actors + 1 ~= me then return end
  local how = op.n
  wrapped(op, function()
    if how == 1 then return c:readline() end
    if how == 2 then return c:readexactly(8) end
    return c:read(16)
  end)
end

-- The step of an actor that failed with err: a cancellation of the actor
-- itself ends it (re-raised); anything unexpected is recorded.
local function failed(st, op, err)
  if lasync.CancelledError:is(err) and lasync.current_task():cancelling() > 0 then
    error(err, 0)
  end
  if not M.expected(err) then
    st.violations[#st.violations + 1] = ("%s raised %s"):format(op_text(op), tostring(err))
  end
end

local function actor(st, me, ops)
  for _, op in ipairs(ops) do
    local ok, err = pcall(run_op[op[1]], st, op, me)
    if not ok then failed(st, op, err) end
  end
end

local HANDLERS = {
  echo = function(r, w)
    for line in r:lines() do w:write(line .. "\n") end
  end,
  close = function(_, w) w:close() end,
  drip = function(r, w)
    local line = r:readline()
    w:write(line); lasync.sleep(0.002); w:write(line)
  end,
}

local function new_state(prog, hooks)
  local st = {futs = {}, actors = {}, tasks = {}, conns = {}, eof = {}, violations = {}, reports = {},
              puts = 0, gets = 0, prog = prog, hooks = hooks or {}}
  for i = 1, N_FUT do st.futs[i] = lasync.Future() end
  st.lock, st.event, st.cond = lasync.Lock(), lasync.Event(), lasync.Condition()
  st.sem, st.q = lasync.Semaphore(prog.sem), lasync.Queue(prog.qmax)
  local handler = HANDLERS[prog.handler]
  st.server = lasync.start_server(function(r, w)
    local ok, err = pcall(handler, r, w)
    if not ok and not M.expected(err) then
      st.violations[#st.violations + 1] = "server handler raised " .. tostring(err)
    end
  end, "127.0.0.1", 0)
  st.port = select(2, st.server:sockname())
  return st
end

local function violation(st, text) st.violations[#st.violations + 1] = text end

local function pending(list)
  local left = {}
  for _, t in ipairs(list) do if not t:done() then left[#left + 1] = tostring(t) end end
  return left
end

-- After the budget: cancel what waits, then every task must finish.
local function wind_down(st)
  for _, f in ipairs(st.futs) do f:cancel() end
  for _, t in ipairs(st.tasks) do t:cancel() end
  lasync.wait(st.tasks, {timeout = M.CANCEL_GUARD})
  local left = pending(st.tasks)
  if #left > 0 then
    violation(st, "not finished after cancel: " .. table.concat(left, ", "))
    if st.hooks.release then st.hooks.release() end
    lasync.wait(st.tasks, {timeout = M.CANCEL_GUARD})
  end
  for _, c in pairs(st.conns) do if c ~= true then c:close() end end
  st.server:close()
  st.server:abort_clients()
  local ok, err = pcall(lasync.wait_for, function() st.server:wait_closed() end,
                        M.CANCEL_GUARD)
  if not ok then violation(st, "server did not close: " .. tostring(err)) end
end

--- The state invariants of the primitives once every task is done.
function M.check_state(st)
  if st.lock:locked() then violation(st, "lock held by nobody") end
  if st.cond:locked() then violation(st, "condition's lock held by nobody") end
  if st.sem._value ~= st.prog.sem then
    violation(st, ("semaphore value %d, initially %d"):format(st.sem._value, st.prog.sem))
  end
  if st.q:qsize() ~= st.puts - st.gets then
    violation(st, ("queue qsize %d after %d puts and %d gets"):format(
      st.q:qsize(), st.puts, st.gets))
  end
  local others = {}
  for _, t in ipairs(lasync.all_tasks()) do
    if t ~= lasync.current_task() then others[#others + 1] = tostring(t) end
  end
  if #others > 0 then violation(st, "tasks left pending: " .. table.concat(others, ", ")) end
end

local function main(st)
  lasync.get_running_loop():set_exception_handler(function(_, ctx)
    st.reports[#st.reports + 1] = ctx
  end)
  for a, ops in ipairs(st.prog.actors) do
    st.actors[a] = track(st, lasync.spawn(actor, st, a, ops))
  end
  if st.hooks.plant then st.hooks.plant(st) end
  lasync.wait(st.actors, {timeout = M.BUDGET})
  wind_down(st)
  M.check_state(st)
end

local function check_reports(st)
  for _, ctx in ipairs(st.reports) do
    if ctx.exception == nil or not M.expected(ctx.exception) then
      violation(st, ("exception handler: %s: %s"):format(tostring(ctx.message),
                                                         tostring(ctx.exception)))
    end
  end
end

-- Descriptors are counted below this number (the specs' stay far under it).
M.FD_MAX = 1024

--- The open descriptors of this process (their count), from /proc's
--- fdinfo files: no child process (a fork of an ASan process is slow).
function M.fd_count()
  local n = 0
  for fd = 0, M.FD_MAX - 1 do
    local f = io.open("/proc/self/fdinfo/" .. fd)
    if f then n = n + 1; f:close() end
  end
  return n
end

--- Runs a program on a fresh loop; returns the list of violations (empty
--- when it holds). hooks (tests): plant(st) runs in the main task after the
--- actors start, release() when tasks are left after the cancel.
function M.run_program(prog, hooks)
  local fds = M.fd_count()
  local st
  local ok, err = pcall(lasync.run, function()
    st = new_state(prog, hooks)
    main(st)
  end)
  st = st or {violations = {}, reports = {}, tasks = {}}
  if not ok then violation(st, "lasync.run raised " .. tostring(err)) end
  check_reports(st)
  local left = pending(st.tasks)
  if #left > 0 then violation(st, "pending after the loop closed: " .. table.concat(left, ", ")) end
  local now = M.fd_count()
  if now ~= fds then violation(st, ("%d descriptors open, %d before"):format(now, fds)) end
  return st.violations
end

--- Lua memory in kB after two full collections.
function M.memory()
  collectgarbage("collect"); collectgarbage("collect")
  return collectgarbage("count")
end

--- Runs sequences start .. start + n - 1 of seed; on_step(i) after each.
--- Returns nil, or the index, program and violations of the first failure.
function M.run(seed, n, start, on_step, hooks)
  local base
  for i = start, start + n - 1 do
    local prog = M.generate(seed, i)
    local v = M.run_program(prog, hooks and hooks(i))
    local k = i - start + 1
    if #v == 0 and k % M.MEM_EVERY == 0 then
      local kb = M.memory()
      base = base or kb
      if kb > base + M.MEM_SLACK_KB then
        v = {("Lua memory %.0f kB, %.0f kB after the first %d sequences"):format(
          kb, base, M.MEM_EVERY)}
      end
    end
    if #v > 0 then return i, prog, v end
    if on_step then on_step(i) end
  end
end

local function cli()
  local seed, n = math.tointeger(tonumber(arg[1])), math.tointeger(tonumber(arg[2]))
  local start = math.tointeger(tonumber(arg[3] or 1))
  if not (seed and n and start and n > 0) then
    io.stderr:write("usage: lua5.4 fuzz/api.lua SEED N [START]\n")
    os.exit(2)
  end
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  package.path = here .. "/../bench/?.lua;" .. package.path
  local p = require("progress").new(n, "fuzz-api")
  local every = p.tty and 1 or math.max(1, n // 20)
  local t0 = os.time()
  local i, prog, v = M.run(seed, n, start, function(i)
    local k = i - start + 1
    if k % every == 0 then p:set(k, ("seed %d sequence %d"):format(seed, i)) end
  end)
  if i then
    p:clear()
    io.stderr:write(("fuzz-api: seed %d sequence %d violates:\n  %s\nprogram:\n%s\n" ..
      "replay: make fuzz-api SEED=%d N=1 START=%d\n"):format(
      seed, i, table.concat(v, "\n  "), M.describe(prog), seed, i))
    os.exit(1)
  end
  p:done()
  io.stderr:write(("fuzz-api: seed %d, sequences %d..%d: no violation (%d s)\n"):format(
    seed, start, start + n - 1, os.time() - t0))
end

if arg and arg[0] and arg[0]:match("fuzz/api%.lua$") and not package.loaded["fuzz.api"] then
  cli()
end

return M
