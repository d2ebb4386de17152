--- lasync.dump_tasks (lua/lasync/dump.lua, core._task_wait): what every
-- pending task waits on, with its traceback; and the dump that `lasync run`
-- and `lasync serve` print on SIGUSR1 and `lasync run` on SIGINT under
-- LASYNC_DEBUG=1. Every process a test starts it stops by PID.
local lasync = require "lasync"
local sync = require "lasync.sync"
local queues = require "lasync.queues"
local subprocess = require "lasync.subprocess"
local helper = require "helper"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")

-- The block of the dump that describes the task named name (up to the next
-- task's line), or nil.
local function block(text, name)
  local from = assert(text:find('\nTask "' .. name .. '": ', 1, true), name)
  local to = text:find('\nTask "', from + 1, true) or #text + 1
  return text:sub(from, to - 1)
end

local function named(name, fn, ...)
  local t = lasync.spawn(fn, ...)
  t:set_name(name)
  return t
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("lasync.dump_tasks", function()
  it("names what each task waits on, with its traceback", helper.async(function()
    local lock, q, ev, fut = sync.Lock(), queues.Queue(), sync.Event(), lasync.Future()
    lock:acquire()
    local srv = lasync.start_server(function(sr, sw) sr:read(); sw:close() end, "127.0.0.1", 0)
    local _, port = srv:sockname()
    local r, w = lasync.open_connection("127.0.0.1", port)
    local function locker() lock:acquire() end
    local sleeper = named("sleeper", function() lasync.sleep(30) end)
    local tasks = {
      sleeper,
      named("locker", locker),
      named("getter", function() q:get() end),
      named("eventer", function() ev:wait() end),
      named("futurer", function() fut:await() end),
      named("joiner", function() sleeper:await() end),
      named("reader", function() r:read(10) end),
      named("threader", function() lasync.to_thread(function() end) end),
    }
    local proc = subprocess.create_subprocess_exec {"/bin/sleep", "10"}
    tasks[#tasks + 1] = named("waiter", function() proc:wait() end)
    lasync.spawn(function() end):set_name("finished")
    lasync.sleep(0.01)
    local chunks = {}
    local text = lasync.dump_tasks(function(s) chunks[#chunks + 1] = s end)
    assert.equal(text, table.concat(chunks))
    assert.matches("^%-%- lasync: %d+ pending tasks %(pid %d+%) %-%-\n", text)
    local me = block(text, lasync.current_task():get_name())
    assert.matches(": running\n", me)
    local left = tonumber(block(text, "sleeper"):match("waits on sleep, ([%d.]+) s left"))
    assert.is_true(left > 20 and left <= 30, text)
    assert.matches("waits on <Lock %[locked, waiters:1%]> %(in acquire%)", block(text, "locker"))
    assert.matches("waits on queue get", block(text, "getter"))
    assert.matches("waits on event", block(text, "eventer"))
    assert.matches("waits on <Future pending> %(in await%)", block(text, "futurer"))
    assert.matches('waits on task "sleeper"', block(text, "joiner"))
    assert.matches("waits on read on stream, peer 127%.0%.0%.1:" .. port .. " ", block(text, "reader"))
    assert.matches("%(in wait%)", block(text, "waiter"))
    assert.is_nil(text:find('Task "finished"', 1, true))
    -- the traceback names the function and line each task waits at
    assert.matches(": waiting\n", block(text, "locker"))
    local line = debug.getinfo(locker, "S").linedefined
    assert.truthy(block(text, "locker"):find("dump_tasks_spec.lua:" .. line .. ": in function", 1, true), text)
    assert.matches("%[C%]: in function 'lasync%.[%w.]*sleep'", block(text, "sleeper"))
    for _, t in ipairs(tasks) do t:cancel() end
    for _, t in ipairs(tasks) do pcall(t.await, t) end
    proc:kill(); proc:wait()
    w:close(); w:wait_closed()
    srv:close(); srv:wait_closed()
  end))

  it("writes to io.stderr, or a file", helper.async(function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    local text = lasync.dump_tasks(f)
    f:close()
    assert.equal(text, helper.read_file(path))
    os.remove(path)
    assert.matches("^bad argument #1 to 'dump_tasks' %(file, function or nil expected, got number%)",
      helper.error_of(lasync.dump_tasks, 42))
  end))

  it("raises outside a running loop", function()
    assert.matches("dump_tasks: no running event loop", helper.error_of(lasync.dump_tasks))
  end)
end)

describe("the task dump of the command", function()
  local scratch = helper.scratch()
  lazy_teardown(scratch.cleanup)

  -- Starts `env lasync ARGS` in the background, waits until the shell test
  -- `ready` (given $err, its stderr) passes,
  -- sends it `sig` by PID, waits for `expect` lines of the dump in its
  -- stderr, then sends it `stop` and waits: returns stderr and the status.
  local function signalled(env, args, ready, sig, expect, stop)
    local stderr = scratch.tmp("stderr" .. os.clock())
    local _, code = helper.shell(([[
      err=%s
      cd %s && %s lasync %s 2>"$err" & pid=$!
      i=0
      while ! %s && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
      kill -%s $pid
      i=0
      while [ "$(grep -c 'pending task' "$err")" -lt %d ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
      [ %s = none ] || kill -%s $pid
      wait $pid
    ]]):format(quote(stderr), quote(ROOT), env, args, ready, sig, expect, stop, stop))
    return helper.read_file(stderr), code
  end

  local function script()
    local marker = scratch.tmp("marker" .. os.clock())
    os.remove(marker)
    local path = scratch.write("stuck.lua", ([[
      local function stuck() lasync.sleep(60) end
      lasync.spawn(stuck):set_name("stuck")
      io.open(%q, "w"):close()
      lasync.sleep(60)
    ]]):format(marker))
    return path, "[ -e " .. quote(marker) .. " ]"
  end

  it("`lasync run` prints it on SIGUSR1 and goes on", function()
    local path, marker = script()
    local err, code = signalled("", "run " .. quote(path), marker, "USR1", 1, "TERM")
    assert.matches("%-%- lasync: 2 pending tasks %(pid %d+%) %-%-", err)
    assert.matches('Task "stuck": waiting\n  waits on sleep, [%d.]+ s left', err)
    assert.truthy(err:find("stuck.lua:1: in function", 1, true), err)
    assert.equal(143, code)
  end)

  it("`LASYNC_DEBUG=1 lasync run` prints it on SIGINT", function()
    local path, marker = script()
    local err, code = signalled("LASYNC_DEBUG=1", "run " .. quote(path), marker, "INT", 1, "none")
    assert.matches('Task "stuck": waiting', err)
    assert.matches("lasync: interrupted\n$", err)
    assert.equal(130, code)
    path, marker = script()
    err = signalled("", "run " .. quote(path), marker, "INT", 0, "none")
    assert.is_nil(err:find("pending task", 1, true))
  end)

  it("`lasync serve --workers 2`: the master forwards SIGUSR1, each worker prints its own", function()
    local handler = scratch.write("h.lua", "return function(_, w) w:close() end")
    local err, code = signalled("", "serve " .. quote(handler) .. " --workers 2 --listen 127.0.0.1:0",
      "[ \"$(grep -c 'listening on' \"$err\")\" -ge 2 ]", "USR1", 2, "TERM")
    local pids = {}
    for p in err:gmatch("%-%- lasync: %d+ pending tasks? %(pid (%d+)%) %-%-") do pids[#pids + 1] = p end
    assert.equal(2, #pids, err)
    assert.not_equal(pids[1], pids[2])
    for _, p in ipairs(pids) do assert.truthy(err:find("worker %d started %(pid " .. p .. "%)"), err) end
    assert.equal(0, code)
  end)
end)
