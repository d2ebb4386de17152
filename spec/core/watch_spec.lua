-- docs/reference.md §2: add_reader/add_writer on file descriptors, signal handlers.
local lasync = require "lasync"
local util = require "core.util"

-- Sends sig to this process. Not with os.execute: system(3) ignores
-- SIGINT and SIGQUIT in the caller while the command runs.
local function kill(sig)
  assert(io.popen("kill -" .. sig .. " " .. util.pid())):close()
end

-- Runs the loop until stop() or `limit` seconds; returns whether it stopped
-- by itself.
local function run(loop, limit)
  local timed_out = false
  local h = loop:call_later(limit or 2, function()
    timed_out = true
    loop:stop()
  end)
  loop:run_forever()
  h:cancel()
  return not timed_out
end

describe("loop:add_reader", function()
  local f, fd, remove, loop
  before_each(function()
    f, fd, remove = util.fifo()
    loop = lasync.new_event_loop()
  end)
  after_each(function()
    loop:close()
    remove()
  end)

  -- Makes the fifo readable.
  local function put(line)
    f:write(line, "\n")
    f:flush()
  end

  it("calls back with the arguments once the fd is readable", function()
    local got = {}
    local h = loop:add_reader(fd, function(...)
      got[#got + 1] = table.pack(...)
      got[#got + 1] = f:read("l")
      assert.is_true(loop:remove_reader(fd))
      loop:stop()
    end, "arg", nil)
    assert.is_false(h:cancelled())
    loop:call_later(0.005, put, "hello")
    assert.is_true(run(loop))
    assert.are.same({{"arg", nil, n = 2}, "hello"}, got)
    assert.is_true(h:cancelled())
    assert.is_false(loop:remove_reader(fd))
  end)

  it("does not call back while there is nothing to read", function()
    local n = 0
    loop:add_reader(fd, function() n = n + 1 end)
    loop:call_later(0.01, loop.stop, loop)
    assert.is_true(run(loop))
    assert.are.equal(0, n)
  end)

  it("keeps calling back while data is left unread", function()
    local n = 0
    put("data")
    loop:add_reader(fd, function()
      n = n + 1
      if n == 3 then loop:stop() end
    end)
    assert.is_true(run(loop))
    assert.are.equal(3, n)
  end)

  it("replaces an earlier reader of the same fd", function()
    local log = {}
    put("data")
    local first = loop:add_reader(fd, function() log[#log + 1] = "first" end)
    loop:add_reader(fd, function()
      log[#log + 1] = "second"
      loop:remove_reader(fd)
      loop:stop()
    end)
    assert.is_true(first:cancelled())
    assert.is_true(run(loop))
    assert.are.same({"second"}, log)
  end)

  it("reports a callback that raises and keeps the loop going", function()
    local reports, n = {}, 0
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    put("data")
    local h = loop:add_reader(fd, function()
      n = n + 1
      if n == 2 then loop:remove_reader(fd) loop:stop() end
      error("reader failed")
    end)
    assert.is_true(run(loop))
    assert.are.equal(2, #reports)
    assert.are.equal(h, reports[1].handle)
    assert.is_truthy(reports[1].exception:find("reader failed", 1, true))
  end)

  it("is stopped by cancelling its handle", function()
    local n = 0
    put("data")
    local h = loop:add_reader(fd, function() n = n + 1 end)
    h:cancel()
    loop:call_later(0.01, loop.stop, loop)
    assert.is_true(run(loop))
    assert.are.equal(0, n)
    assert.is_false(loop:remove_reader(fd))
  end)

  it("and add_writer on the same fd are separate", function()
    loop:add_reader(fd, function() end)
    assert.is_false(loop:remove_writer(fd))
    assert.is_true(loop:remove_reader(fd))
  end)

  it("of an fd nobody watches, remove_reader and remove_writer are false", function()
    assert.is_false(loop:remove_reader(fd))
    assert.is_false(loop:remove_writer(fd))
  end)
end)

describe("loop:add_writer", function()
  it("calls back while the fd is writable, until removed", function()
    local _, fd, remove = util.fifo()
    local loop, n = lasync.new_event_loop(), 0
    local h = loop:add_writer(fd, function(tag)
      n = n + 1
      assert.are.equal("w", tag)
      if n == 2 then
        assert.is_true(loop:remove_writer(fd))
        loop:stop()
      end
    end, "w")
    assert.is_true(run(loop))
    assert.are.equal(2, n)
    assert.is_true(h:cancelled())
    assert.is_false(loop:remove_writer(fd))
    loop:close()
    remove()
  end)
end)

describe("watching fds", function()
  it("raises for an fd that is not open", function()
    local loop = lasync.new_event_loop()
    util.raises({"bad argument #1 to 'add_reader' (bad file descriptor)"},
      function() loop:add_reader(1000000, print) end)
    util.raises({"bad argument #1 to 'add_writer' (bad file descriptor)"},
      function() loop:add_writer(999, print) end)
    assert.is_false(loop:remove_reader(1000000))
    loop:close()
  end)

  -- In a child: libevent warns on stderr; ASan checks there that the
  -- failed watch leaks nothing.
  it("raises for an fd that cannot be watched, and leaves no trace", function()
    local out, err, status = util.run_script([[
      local lasync, util = require "lasync", require "core.util"
      local path = os.tmpname()
      local _, fd = util.open_fd(path, "w")
      local loop = lasync.new_event_loop()
      print(pcall(loop.add_reader, loop, fd, print))
      print(loop:remove_reader(fd))
      loop:close()
      os.remove(path)
    ]])
    assert.are.equal(0, status, err)
    assert.is_truthy(out:find("^false\tcannot watch fd %d+\nfalse\n$"), out)
  end)

  it("check their arguments", function()
    local _, fd, remove = util.fifo()
    local loop = lasync.new_event_loop()
    util.raises({"bad argument #1 to 'add_reader'", "file descriptor expected"},
      function() loop:add_reader(-1, print) end)
    util.raises({"bad argument #1 to 'add_reader'", "number expected, got string"},
      function() loop:add_reader("x", print) end)
    util.raises({"bad argument #1 to 'add_reader'", "number has no integer representation"},
      function() loop:add_reader(1.5, print) end)
    util.raises({"bad argument #2 to 'add_reader'", "function expected, got no value"},
      function() loop:add_reader(fd) end)
    util.raises({"bad argument #1 to 'remove_reader'", "number expected, got no value"},
      function() loop:remove_reader() end)
    util.raises({"bad argument #2 to 'add_writer'", "function expected, got string"},
      function() loop:add_writer(fd, "f") end)
    util.raises({"bad argument #1 to 'remove_writer'", "file descriptor expected"},
      function() loop:remove_writer(-5) end)
    loop:close()
    remove()
  end)
end)

describe("loop:add_signal_handler", function()
  it("calls back with the arguments when the signal arrives (by name)", function()
    local loop, got = lasync.new_event_loop(), nil
    local h = loop:add_signal_handler("SIGUSR1", function(...)
      got = table.pack(...)
      loop:stop()
    end, "usr1", nil)
    loop:call_soon(kill, "USR1")
    assert.is_true(run(loop))
    assert.are.same({"usr1", nil, n = 2}, got)
    assert.is_true(loop:remove_signal_handler("SIGUSR1"))
    assert.is_true(h:cancelled())
    assert.is_false(loop:remove_signal_handler("SIGUSR1"))
    loop:close()
  end)

  it("takes a signal number, and names and numbers are the same signal", function()
    local loop, n = lasync.new_event_loop(), 0
    loop:add_signal_handler(12, function()  -- SIGUSR2 on Linux
      n = n + 1
      loop:stop()
    end)
    loop:call_soon(kill, "USR2")
    assert.is_true(run(loop))
    assert.are.equal(1, n)
    assert.is_true(loop:remove_signal_handler("SIGUSR2"))
    assert.is_false(loop:remove_signal_handler(12))
    loop:close()
  end)

  it("replaces an earlier handler of the same signal", function()
    local loop, log = lasync.new_event_loop(), {}
    loop:add_signal_handler("SIGUSR1", function() log[#log + 1] = "old" end)
    loop:add_signal_handler("SIGUSR1", function()
      log[#log + 1] = "new"
      loop:stop()
    end)
    loop:call_soon(kill, "USR1")
    assert.is_true(run(loop))
    assert.are.same({"new"}, log)
    loop:close()  -- also removes the handler
  end)

  it("reports a handler that raises", function()
    local loop, reports = lasync.new_event_loop(), {}
    loop:set_exception_handler(function(_, ctx)
      reports[#reports + 1] = ctx
      loop:stop()
    end)
    loop:add_signal_handler("SIGUSR1", function() error("signal handler failed") end)
    loop:call_soon(kill, "USR1")
    assert.is_true(run(loop))
    assert.are.equal(1, #reports)
    assert.is_truthy(reports[1].exception:find("signal handler failed", 1, true))
    loop:close()
  end)

  it("checks its arguments", function()
    local loop = lasync.new_event_loop()
    util.raises({"bad argument #1 to 'add_signal_handler'", "unknown signal name 'SIGFOO'"},
      function() loop:add_signal_handler("SIGFOO", print) end)
    util.raises({"bad argument #1 to 'add_signal_handler'", "signal number out of range"},
      function() loop:add_signal_handler(0, print) end)
    util.raises({"bad argument #1 to 'add_signal_handler'", "signal number out of range"},
      function() loop:add_signal_handler(100000, print) end)
    util.raises({"bad argument #1 to 'add_signal_handler'", "signal number out of range"},
      function() loop:add_signal_handler((1 << 32) + 2, print) end)  -- not SIGINT
    util.raises({"bad argument #1 to 'add_signal_handler'", "number expected, got table"},
      function() loop:add_signal_handler({}, print) end)
    util.raises({"bad argument #2 to 'add_signal_handler'", "function expected, got no value"},
      function() loop:add_signal_handler("SIGUSR1") end)
    util.raises({"bad argument #1 to 'remove_signal_handler'", "unknown signal name 'USR1'"},
      function() loop:remove_signal_handler("USR1") end)
    loop:close()
  end)
end)
