-- lasync.core's process functions (src/process.c), used by `lasync serve`:
-- fork, waitpid, kill, getpid, signame, _exit, wall_time, pipe. Each child
-- leaves with core.sys._exit at once, never returning into busted.
local lasync = require "lasync"
local core = require "lasync.core"
local util = require "core.util"

describe("core process functions", function()
  it("getpid is this process's id", function()
    assert.equal(util.pid(), core.sys.getpid())
  end)

  it("fork returns 0 in the child; waitpid reports its exit status", function()
    local pid = core.sys.fork()
    if pid == 0 then core.sys._exit(7) end
    assert.is_true(pid > 0)
    assert.same({pid, "exit", 7}, {core.sys.waitpid(pid)})
  end)

  it("waitpid reports a death by signal; kill takes names and numbers", function()
    local pid = core.sys.fork()
    if pid == 0 then
      core.sys.kill(core.sys.getpid(), "SIGKILL")
      core.sys._exit(0)
    end
    assert.same({pid, "signal", 9}, {core.sys.waitpid(pid)})
    pid = core.sys.fork()
    if pid == 0 then
      core.sys.kill(core.sys.getpid(), 15)
      core.sys._exit(0)
    end
    assert.same({pid, "signal", 15}, {core.sys.waitpid(-1)})
  end)

  it("waitpid with nohang returns nothing while no child has ended", function()
    assert.equal(0, select("#", core.sys.waitpid(-1, true)))
  end)

  it("kill returns false for a process that is gone", function()
    local pid = core.sys.fork()
    if pid == 0 then core.sys._exit(0) end
    core.sys.waitpid(pid)
    assert.is_false(core.sys.kill(pid, "SIGTERM"))
  end)

  it("signame names signals", function()
    assert.equal("SIGTERM", core.sys.signame(15))
    assert.equal("SIGKILL", core.sys.signame(9))
    assert.equal("signal 63", core.sys.signame(63))
  end)

  it("wall_time is the time of day", function()
    assert.is_true(math.abs(core.sys.wall_time() - os.time()) < 2)
  end)

  it("pipe: what fd_write puts in, fd_read takes out; nil while empty, \"\" at its end",
     function()
    local r, w = core.sys.pipe()
    assert.is_nil(core.sys.fd_read(r))
    assert.is_true(core.sys.fd_write(w, "12\n"))
    assert.is_true(core.sys.fd_write(w, "34\n"))
    assert.equal("12\n34\n", core.sys.fd_read(r))
    assert.is_nil(core.sys.fd_read(r))
    core.sys.fd_close(w)
    assert.equal("", core.sys.fd_read(r))
    core.sys.fd_close(r)
    assert.is_false(core.sys.fd_write(w, "x"))
    util.raises({"read", "Bad file descriptor"}, core.sys.fd_read, r)
    util.raises({"close", "Bad file descriptor"}, core.sys.fd_close, r)
  end)

  it("pipe raises OSError when the process is out of descriptors", function()
    local p = assert(io.popen(("sh -c 'ulimit -n 4 && exec %s -e %q' 2>&1"):format(
      os.getenv("LASYNC_LUA") or "lua5.4",
      'print(select(2, pcall(require("lasync.core").sys.pipe)))')))
    local out = p:read("a")
    p:close()
    assert.are.equal("OSError: pipe: Too many open files\n", out)
  end)

  it("are in core.sys, apart from the API and its hooks", function()
    for _, name in ipairs {"fork", "waitpid", "kill", "_exit", "pipe", "fd_read"} do
      assert.is_function(core.sys[name], name)
      assert.is_nil(core[name], name)
    end
  end)

  it("rejects bad arguments", function()
    util.raises({"bad argument #2 to 'kill'", "unknown signal name 'SIGFOO'"},
      function() core.sys.kill(1, "SIGFOO") end)
    util.raises({"bad argument #2 to 'kill'", "signal number out of range"},
      function() core.sys.kill(1, 0) end)
    util.raises({"bad argument #1 to 'kill'", "process id expected"},
      function() core.sys.kill(0, "SIGTERM") end)
    util.raises({"bad argument #1 to 'waitpid'", "number expected, got string"},
      function() core.sys.waitpid("x") end)
    util.raises({"bad argument #1 to 'fork'", "loop"}, function() core.sys.fork({}) end)
    util.raises({"bad argument #1 to 'fd_read'", "file descriptor expected"},
      function() core.sys.fd_read(-1) end)
    util.raises({"bad argument #1 to 'fd_close'", "number expected, got no value"},
      function() core.sys.fd_close() end)
    util.raises({"bad argument #2 to 'fd_write'", "string expected, got table"},
      function() core.sys.fd_write(1, {}) end)
  end)

  it("fork(loop) refuses a running loop", function()
    local loop = lasync.new_event_loop()
    local err = util.error_of(loop.run_until_complete, loop, function()
      return core.sys.fork(loop)
    end)
    assert.truthy(tostring(err):find("fork: the loop is running", 1, true))
    loop:close()
  end)

  it("a child that closes its copy of the loop leaves the parent's working", function()
    local loop = lasync.new_event_loop()
    local got = 0
    loop:add_signal_handler("SIGUSR1", function() got = got + 1 end)
    local r, w = loop:run_until_complete(function()
      local s = lasync.start_server(function(_, writer) writer:write("hi\n") end,
        "127.0.0.1", 0)
      return s, select(2, s:sockname())
    end)
    local pid = core.sys.fork(loop)
    if pid == 0 then
      loop:close()
      core.sys._exit(0)
    end
    assert.same({pid, "exit", 0}, {core.sys.waitpid(pid)})
    -- Without its own epoll the child's close would unregister the
    -- parent's events: the connection and the signal would never arrive.
    local line = loop:run_until_complete(lasync.wait_for, function()
      core.sys.kill(core.sys.getpid(), "SIGUSR1")
      local reader, writer = lasync.open_connection("127.0.0.1", w)
      local l = reader:readline()
      writer:close()
      while got == 0 do lasync.sleep(0.001) end
      return l
    end, 2)
    assert.equal("hi\n", line)
    assert.equal(1, got)
    r:close()
    loop:close()
  end)
end)
