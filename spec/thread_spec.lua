-- lasync.to_thread and lasync.set_thread_pool_size (API §9): what is copied
-- and what is refused, errors from the worker, the pool's size, reuse and
-- cancellation, and a loop that keeps running while a thread works.
-- Jobs that must stay running wait on named pipes (mkfifo) the spec opens
-- to let them go; each writes "start NAME" / "end NAME" to a log, so that
-- the order of events, never their timing, is asserted.
local lasync = require "lasync"
local helper = require "helper"

local async = helper.async

-- Sent to the workers: no upvalue but _ENV.

-- Logs "start name", waits until the fifo (if any) is opened for writing
-- and closed, logs "end name"; returns name and what the fifo carried.
local function job(log, name, fifo)
  local f = assert(io.open(log, "a"))
  f:write("start ", name, "\n")
  f:close()
  local data
  if fifo then
    local p = assert(io.open(fifo, "r"))
    data = p:read("a")
    p:close()
  end
  f = assert(io.open(log, "a"))
  f:write("end ", name, "\n")
  f:close()
  return name, data
end

local function identity(...) return ... end

local function count(...) return select("#", ...) end

-- ---------------------------------------------------------------- helpers --

local function lines_of(path)
  local f, list = io.open(path), {}
  if not f then return list end
  for line in f:lines() do list[#list + 1] = line end
  f:close()
  return list
end

local function index_of(list, v)
  for i, x in ipairs(list) do if x == v then return i end end
  return nil
end

-- Waits (giving way to the loop) until the log has the line.
local function wait_line(log, line)
  while not index_of(lines_of(log), line) do lasync.sleep(0.005) end
end

local function fifo(s, name)
  local path = s.tmp(name)
  assert(os.execute("mkfifo " .. path))
  return path
end

-- Lets the job blocked on the fifo go: opens it for writing (the job has
-- it open for reading, or is about to), writes data, closes it.
local function release(path, data)
  local f = assert(io.open(path, "w"))
  if data then f:write(data) end
  f:close()
end

-- A spec body: fn(s, log) as helper.async runs it, with a scratch folder
-- s, a log file in it, and the pool size n (restored after).
local function with_pool(n, fn)
  return function()
    local s = helper.scratch()
    local old = lasync.set_thread_pool_size(n)
    local ok, err = pcall(helper.run, function() fn(s, s.tmp("log")) end)
    lasync.set_thread_pool_size(old)
    s.cleanup()
    if not ok then error(err, 0) end
  end
end

local function spawn_job(...)
  return lasync.spawn(lasync.to_thread, job, ...)
end

-- ------------------------------------------------------------- results --

describe("to_thread results", function()
  it("returns the function's result (CPython's test_to_thread)", async(function()
    local r = lasync.to_thread(function(t)
      local sum = 0
      for _, v in ipairs(t) do sum = sum + v end
      return sum
    end, {40, 2})
    assert.equal(42, r)
    assert.equal("integer", math.type(r))
  end))

  it("passes arguments and keeps their number, nils included", async(function()
    assert.equal(0, lasync.to_thread(count))
    assert.equal(3, lasync.to_thread(count, nil, nil, nil))
    assert.equal(2, lasync.to_thread(count, 1, nil))
    local r = table.pack(lasync.to_thread(identity, nil, 1, nil, nil))
    assert.equal(4, r.n)
    assert.same({n = 4, [2] = 1}, r)
    assert.equal(0, select("#", lasync.to_thread(function() end)))
  end))

  it("copies booleans, numbers keeping their subtype, NaN and infinities",
     async(function()
    local r = table.pack(lasync.to_thread(identity, true, false, 3, 3.0,
      math.maxinteger, math.mininteger, 0 / 0, 1 / 0, -1 / 0, -0.0, 0.1))
    assert.same({true, false}, {r[1], r[2]})
    assert.equal("integer", math.type(r[3]))
    assert.equal("float", math.type(r[4]))
    assert.equal(math.maxinteger, r[5])
    assert.equal(math.mininteger, r[6])
    assert.is_true(r[7] ~= r[7])
    assert.equal(math.huge, r[8])
    assert.equal(-math.huge, r[9])
    assert.equal(-math.huge, 1 / r[10])
    assert.equal(0.1, r[11])
  end))

  it("copies big strings with zero bytes whole", async(function()
    local big = ("\0lasync\255"):rep(1 << 19)  -- 4 MiB
    local r, n = lasync.to_thread(function(s) return s .. "!", #s end, big)
    assert.equal(#big, n)
    assert.is_true(r == big .. "!")
    assert.equal("", lasync.to_thread(identity, ""))
  end))

  it("copies nested tables with keys of every kind, without metatables",
     async(function()
    local t = setmetatable({1, 2.5, "x", {a = {b = {c = true}}},
      [1.5] = "float key", [true] = false, [-7] = "neg",
      ["with space"] = {}}, {__index = function() return "mt" end})
    local r = lasync.to_thread(identity, t)
    assert.same({1, 2.5, "x", {a = {b = {c = true}}}, [1.5] = "float key",
                 [true] = false, [-7] = "neg", ["with space"] = {}}, r)
    assert.is_nil(getmetatable(r))
    assert.equal("float", math.type(r[2]))
    local k = lasync.to_thread(function(x) return math.type(next(x)) end,
                               {[2.0] = 1})
    assert.equal("integer", k)  -- Lua itself makes 2.0 an integer key
  end))

  it("copies a table met twice, not in a cycle, twice", async(function()
    local shared = {1}
    local r = lasync.to_thread(identity, {shared, shared, {x = shared}})
    assert.same({{1}, {1}, {x = {1}}}, r)
    assert.are_not.equal(r[1], r[2])
  end))

  it("calls the function once per call (CPython's test_to_thread_once)",
     with_pool(4, function(_, log)
    for i = 1, 3 do lasync.to_thread(job, log, "J" .. i) end
    assert.same({"start J1", "end J1", "start J2", "end J2", "start J3",
                 "end J3"}, lines_of(log))
  end))
end)

-- ------------------------------------------------------------- refused --

describe("to_thread refuses", function()
  local function err_of(...)
    return tostring(helper.error_of(lasync.to_thread, ...))
  end

  it("what is not a Lua function, naming argument 1", async(function()
    assert.matches("bad argument #1 to '[%w%.]*to_thread' %(function expected, got number%)",
                   err_of(42))
    assert.matches("bad argument #1 .*%(function expected, got no value%)",
                   err_of())
    assert.matches("bad argument #1 .*%(Lua function expected, got C function%)",
                   err_of(print))
    local callable = setmetatable({}, {__call = function() end})
    assert.matches("bad argument #1 .*function expected, got table", err_of(callable))
  end))

  it("a function with an upvalue other than _ENV, naming it", async(function()
    local up = 1
    local e = err_of(function() return up end)
    assert.matches("bad argument #1 .*function with upvalue 'up' cannot be sent to a thread", e)
    assert.matches("only _ENV may be an upvalue", e)
  end))

  it("functions, userdata and threads, naming the argument and the key",
     async(function()
    assert.matches("bad argument #2 .*%(function cannot be copied to a thread%)",
                   err_of(identity, print))
    assert.matches("bad argument #3 .*%(userdata cannot be copied to a thread%)",
                   err_of(identity, 1, io.stdout))
    assert.matches("bad argument #4 .*%(thread cannot be copied to a thread%)",
                   err_of(identity, 1, 2, coroutine.create(print)))
    assert.matches("bad argument #2 .*%(function at key 'a%.b%[2%]' cannot be copied",
                   err_of(identity, {a = {b = {1, print}}}))
    assert.matches("bad argument #2 .*%(userdata at key '%[1%]' cannot be copied",
                   err_of(identity, {io.stdout}))
    assert.matches("bad argument #2 .*%(function key at key 'a' cannot be copied",
                   err_of(identity, {a = {[print] = 1}}))
    assert.matches("bad argument #2 .*%(function key cannot be copied",
                   err_of(identity, {[print] = 1}))
  end))

  it("a table with a cycle, naming where", async(function()
    local t = {a = {}}
    t.a.b = t
    assert.matches("bad argument #3 .*%(table with a cycle at key 'a%.b'%)",
                   err_of(identity, 1, t))
    local self = {}
    self[1] = self
    assert.matches("bad argument #2 .*%(table with a cycle at key '%[1%]'%)",
                   err_of(identity, self))
  end))

  it("tables nested too deep", async(function()
    local t = {}
    for _ = 1, 200 do t = {t} end
    assert.matches("bad argument #2 .*table nested too deep", err_of(identity, t))
  end))

  it("a result that cannot be copied, raising in the caller", async(function()
    assert.matches("bad result #2 from 'to_thread' %(function cannot be copied to a thread%)",
                   err_of(function() return 1, print end))
    assert.matches("bad result #1 from 'to_thread' %(table with a cycle at key 'me'%)",
                   err_of(function() local t = {} t.me = t return t end))
    assert.matches("bad result #1 from 'to_thread' %(thread cannot be copied",
                   err_of(function() return coroutine.create(print) end))
  end))

  it("outside a task or a loop", function()
    assert.matches("no running event loop",
                   helper.error_of(lasync.to_thread, identity))
    local loop = lasync.new_event_loop()
    loop:call_soon(function()
      local ok, err = pcall(lasync.to_thread, identity)
      assert(not ok and err:match("to_thread called outside a task"))
      loop:stop()
    end)
    loop:run_forever()
    loop:close()
  end)
end)

-- -------------------------------------------------------------- errors --

describe("to_thread errors", function()
  it("raises fn's error message, with the worker's traceback",
     async(function()
    local e = helper.error_of(lasync.to_thread, function(what)
      error("boom: " .. what)
    end, "here")
    assert.equal("string", type(e))
    local first = e:match("^[^\n]*")
    assert.matches("^spec/thread_spec%.lua:%d+: boom: here$", first)
    assert.matches("\nstack traceback:\n", e)
    assert.matches("spec/thread_spec%.lua:%d+: in function", e)
  end))

  it("raises an error that is a table as a copy, with the traceback",
     async(function()
    local e = helper.error_of(lasync.to_thread, function()
      error({code = "E42", detail = {1, 2}})
    end)
    assert.equal("E42", e.code)
    assert.same({1, 2}, e.detail)
    assert.matches("stack traceback:", e.traceback)
    local kept = helper.error_of(lasync.to_thread, function()
      error({traceback = "mine"})
    end)
    assert.equal("mine", kept.traceback)
  end))

  it("keeps numbers and booleans raised as they are", async(function()
    assert.equal(42, helper.error_of(lasync.to_thread, function() error(42) end))
    assert.equal(false, helper.error_of(lasync.to_thread, function() error(false) end))
  end))

  it("says what an error that cannot be copied was", async(function()
    local e = helper.error_of(lasync.to_thread, function() error(print) end)
    assert.matches("^%(error object is a function value%)\nstack traceback:", e)
  end))

  it("raises the error a runtime fault gives (CPython's test_to_thread_exception)",
     async(function()
    local e = helper.error_of(lasync.to_thread, function() return nil + 1 end)
    assert.matches("attempt to perform arithmetic on a nil value", e)
  end))
end)

-- -------------------------------------------------------------- workers --

describe("to_thread workers", function()
  it("have the standard libraries, their own globals and _ENV",
     async(function()
    local libs = lasync.to_thread(function()
      local names = {}
      for _, n in ipairs {"string", "table", "math", "io", "os", "utf8",
                          "coroutine", "debug", "package"} do
        names[#names + 1] = type(_G[n]) == "table" and n or nil
      end
      return names
    end)
    assert.same({"string", "table", "math", "io", "os", "utf8", "coroutine",
                 "debug", "package"}, libs)
    assert.is_true(select(2, lasync.to_thread(function() return 1, _ENV == _G end)))
  end))

  it("can require modules on the caller's package.path", function()
    local s = helper.scratch()
    local dir = s.base .. "-mods"
    assert(os.execute("mkdir " .. dir))
    local f = assert(io.open(dir .. "/lasync_thread_mod.lua", "w"))
    f:write("return {answer = function(x) return x * 2 end}\n")
    f:close()
    local path = package.path
    package.path = dir .. "/?.lua;" .. path
    local ok, r = pcall(helper.run, function()
      return lasync.to_thread(function(x)
        return require("lasync_thread_mod").answer(x)
      end, 21)
    end)
    package.path = path
    os.remove(dir .. "/lasync_thread_mod.lua")
    os.remove(dir)
    s.cleanup()
    assert(ok, r)
    assert.equal(42, r)
  end)

  it("raise require's error for a module not found", async(function()
    local e = helper.error_of(lasync.to_thread, function()
      return require("lasync_no_such_module")
    end)
    assert.matches("module 'lasync_no_such_module' not found", e)
  end))

  it("are reused: a worker's state lives across calls", with_pool(1, function()
    local function bump()
      _G.counter = (_G.counter or 0) + 1
      return _G.counter
    end
    assert.equal(1, lasync.to_thread(bump))
    assert.equal(2, lasync.to_thread(bump))
    assert.equal(3, lasync.to_thread(bump))
  end))

  it("start when work needs them, one per job waiting, and end with the loop",
     function()
    local core = require "lasync.core"
    local function threads()  -- this process's, from Linux's /proc
      return tonumber(helper.read_file("/proc/self/status"):match("Threads:%s*(%d+)"))
    end
    local before = threads()
    with_pool(4, function(s, log)
      assert.equal(0, core._thread_workers())  -- none before the first call
      local function bump()
        _G.counter = (_G.counter or 0) + 1
        return _G.counter
      end
      for i = 1, 10 do assert.equal(i, lasync.to_thread(bump)) end
      assert.equal(1, core._thread_workers())  -- one after another: one
      local gates, tasks = {}, {}
      for i = 1, 3 do
        gates[i] = fifo(s, "g" .. i)
        tasks[i] = spawn_job(log, "J" .. i, gates[i])
      end
      for i = 1, 3 do wait_line(log, "start J" .. i) end
      assert.equal(3, core._thread_workers())
      assert.is_true(threads() >= before + 3)
      for i = 1, 3 do release(gates[i]); tasks[i]:await() end
    end)()
    -- joined when the loop closed; the kernel counts a joined thread out
    -- a little later (a hang guard, not a timing)
    for _ = 1, 300 do
      if threads() <= before then break end
      os.execute("sleep 0.01")
    end
    assert.is_true(threads() <= before, threads())
  end)

  it("run jobs concurrently (CPython's test_to_thread_concurrent)",
     with_pool(4, function(s, log)
    local gates, tasks = {}, {}
    for i = 1, 4 do
      gates[i] = fifo(s, "g" .. i)
      tasks[i] = spawn_job(log, "J" .. i, gates[i])
    end
    for i = 1, 4 do wait_line(log, "start J" .. i) end  -- all four at once
    for i = 4, 1, -1 do
      release(gates[i], "v" .. i)
      local name, data = tasks[i]:await()
      assert.same({"J" .. i, "v" .. i}, {name, data})
    end
    local l = lines_of(log)
    for i = 1, 4 do assert.is_true(index_of(l, "start J" .. i) < index_of(l, "end J4")) end
  end))
end)

-- ------------------------------------------------------------- the pool --

describe("the thread pool", function()
  it("runs at most its size of jobs at once", with_pool(2, function(s, log)
    local ga, gb = fifo(s, "a"), fifo(s, "b")
    local ta, tb = spawn_job(log, "A", ga), spawn_job(log, "B", gb)
    local tc = spawn_job(log, "C")
    wait_line(log, "start A")
    wait_line(log, "start B")
    lasync.sleep(0.05)  -- room for C to start, were there a third worker
    assert.is_false(tc:done())
    release(ga)
    assert.equal("A", ta:await())
    assert.equal("C", tc:await())
    release(gb)
    assert.equal("B", tb:await())
    local l = lines_of(log)
    assert.is_true(index_of(l, "start C") > index_of(l, "end A"))
    assert.is_true(index_of(l, "end B") > index_of(l, "end C"))
  end))

  it("grows at once when set_thread_pool_size raises its size",
     with_pool(1, function(s, log)
    local ga = fifo(s, "a")
    local ta = spawn_job(log, "A", ga)
    local tb = spawn_job(log, "B")
    wait_line(log, "start A")
    assert.equal(1, lasync.set_thread_pool_size(2))
    assert.equal("B", tb:await())  -- while A still waits
    assert.is_false(ta:done())
    release(ga)
    assert.equal("A", ta:await())
  end))

  it("shrinks as workers go idle and keeps working", with_pool(3, function(_, log)
    local tasks = {}
    for i = 1, 3 do tasks[i] = spawn_job(log, "J" .. i) end
    for i = 1, 3 do tasks[i]:await() end
    lasync.set_thread_pool_size(1)
    helper.settle()
    assert.equal("K", lasync.to_thread(job, log, "K"))
    lasync.set_thread_pool_size(2)
    assert.equal("L", lasync.to_thread(job, log, "L"))
  end))

  it("runs 1,000 jobs", async(function()
    local tasks = {}
    for i = 1, 1000 do
      tasks[i] = lasync.spawn(lasync.to_thread, function(x) return x * x, x end, i)
    end
    for i = 1, 1000 do
      local sq, x = tasks[i]:await()
      assert(sq == i * i and x == i, i)
    end
  end, 30))

  it("keeps the loop running during a one-second busy thread", async(function()
    local ticks = 0
    local ticker = lasync.spawn(function()
      while true do
        lasync.sleep(0.01)
        ticks = ticks + 1
      end
    end)
    local spins = lasync.to_thread(function()
      local n, t = 0, os.clock()
      repeat  -- the process's CPU time: this thread's, mostly
        for _ = 1, 1e4 do n = n + 1 end
      until os.clock() - t >= 1
      return n
    end)
    local during = ticks
    ticker:cancel()
    assert.is_true(spins > 0)
    assert.is_true(during >= 10, during)  -- ~100 on a quiet machine
  end, 10))
end)

describe("set_thread_pool_size", function()
  it("refuses what is not an integer from 1 to 1024", function()
    for _, bad in ipairs {0, -1, 1025, 1.5, "2", true} do
      local e = helper.error_of(lasync.set_thread_pool_size, bad)
      assert.matches("bad argument #1 to '[%w%.]*set_thread_pool_size'", e)
    end
    assert.matches("integer expected, got no value",
                   helper.error_of(lasync.set_thread_pool_size))
    assert.matches("pool size must be from 1 to 1024, got 0",
                   helper.error_of(lasync.set_thread_pool_size, 0))
    assert.matches("integer expected, got number",
                   helper.error_of(lasync.set_thread_pool_size, 1.5))
  end)

  it("returns the size it had, by default the cores, at least 4", function()
    local old = lasync.set_thread_pool_size(7)
    assert.equal(7, lasync.set_thread_pool_size(old))
    assert.is_true(old >= 4)
  end)
end)

-- -------------------------------------------------------- cancellation --

describe("to_thread cancelled", function()
  it("drops the result of a running job; the pool stays usable",
     with_pool(1, function(s, log)
    local reports = helper.reports()
    local ga = fifo(s, "a")
    local t = spawn_job(log, "A", ga)
    wait_line(log, "start A")
    t:cancel()
    assert.is_true(helper.is_cancelled(helper.error_of(t.await, t)))
    assert.is_true(t:cancelled())
    assert.is_nil(index_of(lines_of(log), "end A"))  -- the thread goes on
    release(ga, "late")
    -- one worker: B runs after A, and A's completion comes first
    assert.equal("B", lasync.to_thread(job, log, "B"))
    assert.same({"start A", "end A", "start B", "end B"}, lines_of(log))
    assert.same({}, reports)
  end))

  it("takes back a job no worker started", with_pool(1, function(s, log)
    local ga = fifo(s, "a")
    local ta = spawn_job(log, "A", ga)
    local tb = spawn_job(log, "B")
    wait_line(log, "start A")
    tb:cancel()
    assert.is_true(helper.is_cancelled(helper.error_of(tb.await, tb)))
    release(ga)
    assert.equal("A", ta:await())
    assert.equal("C", lasync.to_thread(job, log, "C"))
    assert.same({"start A", "end A", "start C", "end C"}, lines_of(log))
  end))

  it("by a timeout, through wait_for", with_pool(1, function(_, log)
    -- A sleeps in its thread, or is taken back if the timeout came first
    local e = helper.error_of(lasync.wait_for, function()
      return lasync.to_thread(function() os.execute("sleep 0.2") end)
    end, 0.05)
    assert.is_true(lasync.TimeoutError:is(e), tostring(e))
    assert.equal("B", lasync.to_thread(job, log, "B"))  -- after A, if it ran
  end))
end)

describe("closing the loop", function()
  it("waits for the running jobs and drops the queued ones", function()
    local s = helper.scratch()
    local log = s.tmp("log")
    local old = lasync.set_thread_pool_size(1)
    lasync.run(function()
      lasync.spawn(lasync.to_thread, function(path)
        local f = assert(io.open(path, "a"))
        f:write("start A\n")
        f:close()
        os.execute("sleep 0.3")
        f = assert(io.open(path, "a"))
        f:write("end A\n")
        f:close()
      end, log)
      lasync.spawn(lasync.to_thread, job, log, "B")
      wait_line(log, "start A")  -- B waits for the one worker
    end)
    lasync.set_thread_pool_size(old)
    local l = lines_of(log)
    s.cleanup()
    assert.same({"start A", "end A"}, l)
  end)

  it("with loop:close() by hand, after a run_until_complete", function()
    local loop = lasync.new_event_loop()
    local r = loop:run_until_complete(function()
      return lasync.to_thread(identity, "ok")
    end)
    assert.equal("ok", r)
    loop:close()
    assert.is_true(loop:is_closed())
  end)
end)
