--- Subprocesses (lua/lasync/subprocess.lua, src/subprocess.c): the API of
-- docs/reference.md §9 against real programs (coreutils, /bin/sh, Python
-- at /usr/bin/python3), and the behaviours of CPython's
-- Lib/test/test_asyncio/test_subprocess.py that fit it. Every child a test
-- starts is waited for (so reaped) by the test.
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"

local exec, shell = lasync.create_subprocess_exec, lasync.create_subprocess_shell
local PIPES = {stdin = "pipe", stdout = "pipe", stderr = "pipe"}
local MB = 1024 * 1024

local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  f:close()
  return true
end

-- The process's open descriptors, as a sorted list.
local function fds_of(path)
  local p = exec({"ls", path}, {stdout = "pipe"})
  local out = p:communicate()
  assert.equal(0, p.returncode)
  local list = {}
  for fd in out:gmatch("%d+") do list[#list + 1] = tonumber(fd) end
  table.sort(list)
  return list
end

-- This process's open descriptors, as a sorted list.
local function own_fds()
  local list = {}
  for fd in pairs(helper.open_fds()) do list[#list + 1] = fd end
  table.sort(list)
  return list
end

-- Every spec of create_subprocess_exec runs twice: with pidfds, and with
-- the SIGCHLD watching used where the kernel has none.
for _, mode in ipairs {"pidfd", "SIGCHLD"} do
describe("create_subprocess_exec (" .. mode .. ")", function()
  local scratch = helper.scratch()
  lazy_setup(function() core._subprocess_use_pidfd(mode == "pidfd") end)
  lazy_teardown(function()
    core._subprocess_use_pidfd(true)
    scratch.cleanup()
  end)

  it("is exported with create_subprocess_shell; a Process has the methods of §9", helper.async(function()
    assert.is_function(exec)
    assert.is_function(shell)
    local p = exec({"true"})
    for _, name in ipairs {"wait", "communicate", "send_signal", "terminate", "kill"} do
      assert.is_function(p[name], name)
    end
    assert.is_number(p.pid)
    assert.is_nil(p.stdin)   -- inherit by default, as asyncio
    assert.is_nil(p.stdout)
    assert.is_nil(p.stderr)
    assert.equal(0, p:wait())
    assert.matches("^<Process pid=%d+ returncode=0>$", tostring(p))
  end))

  it("pipes stdin to stdout (cat), with returncode nil while it runs", helper.async(function()
    local p = exec({"cat"}, {stdin = "pipe", stdout = "pipe"})
    assert.is_nil(p.returncode)
    assert.matches("^<Process pid=%d+ running>$", tostring(p))
    p.stdin:write("line 1\nline 2\n")
    assert.equal("line 1\n", p.stdout:readline())
    assert.equal("line", p.stdout:readexactly(4))
    assert.equal(" 2\n", p.stdout:readuntil("\n"))
    assert.is_false(p.stdout:at_eof())
    p.stdin:close()
    assert.equal("", p.stdout:read())
    assert.is_true(p.stdout:at_eof())
    assert.equal(0, p:wait())
    assert.equal(0, p.returncode)
    p.stdout:close()
  end))

  it("returns the exit status; wait() again returns it at once", helper.async(function()
    local p = exec({"sh", "-c", "exit 3"})
    assert.equal(3, p:wait())
    assert.equal(3, p:wait())
  end))

  it("lets several tasks wait at once (CPython test_subprocess_concurrent_wait)", helper.async(function()
    local p = exec({"sh", "-c", "sleep 0.1; exit 4"})
    local a, b = lasync.gather(function() return p:wait() end, function() return p:wait() end)
    assert.same({4, 4}, {a, b})
  end))

  -- The OSError of a program that cannot start, with code; nil under
  -- valgrind, which runs posix_spawn's CLONE_VFORK child as a fork, so
  -- that the exec's error cannot come back: the child exits 127 then.
  local function start_error(code, argv, opts)
    if (os.getenv("LD_PRELOAD") or ""):find("vgpreload", 1, true) then
      local p = exec(argv, opts)
      assert.equal(127, p:wait())
      for _, s in ipairs {p.stdin, p.stdout, p.stderr} do s:close() end
      return nil
    end
    local err = helper.error_of(exec, argv, opts)
    assert.is_true(lasync.OSError:is(err))
    assert.equal(code, err.code)
    return err
  end

  it("raises OSError ENOENT naming a program that does not exist", helper.async(function()
    local err = start_error("ENOENT", {"/nonexistent/prog", "x"}, PIPES)
    if err then assert.matches("cannot run '/nonexistent/prog'", err.message, 1, true) end
    start_error("ENOENT", {"no-such-program-in-path-lasync"}, PIPES)
  end))

  it("raises OSError EACCES for a file that is not executable", helper.async(function()
    local path = scratch.write("noexec.sh", "#!/bin/sh\necho no\n")
    local err = start_error("EACCES", {path}, PIPES)
    if err then assert.matches(path, err.message, 1, true) end
  end))

  it("raises OSError for a cwd that does not exist, naming it", helper.async(function()
    local err = start_error("ENOENT", {"pwd"}, {cwd = "/nonexistent-dir-lasync", stdin = "pipe",
                                                 stdout = "pipe", stderr = "pipe"})
    if err then assert.matches("in '/nonexistent-dir-lasync'", err.message, 1, true) end
  end))

  it("names the argument that is wrong", helper.async(function()
    local cases = {
      {{42}, "bad argument #1 to 'create_subprocess_exec' (list (string without \\0) expected, got number)"},
      {{{"ls", 1}}, "item 2: string without \\0 expected, got number"},
      {{{"ls", "a\0b"}}, "item 2: string without \\0 expected, got string"},
      {{{}}, "argv must not be empty"},
      {{{"true"}, 5}, "table of options or nil expected, got number"},
      {{{"true"}, {stdin = "bogus"}}, 'opts.stdin must be "pipe", "inherit" or "null", got "bogus"'},
      {{{"true"}, {stdout = "stdout"}}, 'opts.stdout must be "pipe", "inherit" or "null", got "stdout"'},
      {{{"true"}, {stderr = 2}}, 'opts.stderr must be "pipe", "inherit", "null" or "stdout", got number'},
      {{{"true"}, {env = "A=1"}}, "opts.env must be a table of strings (name -> value), got string"},
      {{{"true"}, {env = {A = 1}}}, "opts.env must be a table of strings (name -> value), got string -> number"},
      {{{"true"}, {env = {"x"}}}, "got number -> string"},
      {{{"true"}, {env = {["A=B"] = "1"}}}, 'opts.env: bad variable name or value "A=B"'},
      {{{"true"}, {cwd = 1}}, "opts.cwd must be a string, got number"},
      {{{"true"}, {cwd = "/\0"}}, "opts.cwd must not contain \\0"},
      {{{"true"}, {limit = 0}}, "opts.limit must be a positive integer, got 0"},
      {{{"true"}, {shell = true}}, "unknown option 'shell'"},
    }
    for _, c in ipairs(cases) do
      local err = helper.error_of(exec, table.unpack(c[1]))
      assert.is_string(err)
      assert.matches(c[2], err, 1, true)
    end
    assert.matches("bad argument #1 to 'create_subprocess_shell' (string expected, got table)",
                   helper.error_of(shell, {"ls"}), 1, true)
    assert.matches("command must not contain \\0", helper.error_of(shell, "a\0"), 1, true)
  end))

  it("must be called in a task", function()
    local err = helper.error_of(exec, {"true"})
    assert.matches("create_subprocess_exec called outside a task", err, 1, true)
  end)

  it("passes 1 MB through communicate both ways with no deadlock", helper.async(function()
    local input = ("0123456789abcdef"):rep(MB / 16)
    local p = exec({"sh", "-c", "cat; head -c 1048576 /dev/zero >&2"}, PIPES)
    local out, err = p:communicate(input)
    assert.equal(MB, #out)
    assert.is_true(out == input)
    assert.equal(("\0"):rep(MB), err)
    assert.equal(0, p.returncode)
  end, 20))

  it("reads 1 MB from stdout and stderr at once, with python3 as the peer", helper.async(function()
    local p = exec({"/usr/bin/python3", "-c", [[
import sys
for i in range(16):
    sys.stdout.write("o" * 65536); sys.stdout.flush()
    sys.stderr.write("e" * 65536); sys.stderr.flush()
]]}, {stdout = "pipe", stderr = "pipe"})
    local out, err = p:communicate()
    assert.equal(("o"):rep(MB), out)
    assert.equal(("e"):rep(MB), err)
    assert.equal(0, p.returncode)
  end, 20))

  it("communicate with no input, empty input, and no pipes at all", helper.async(function()
    local p = exec({"echo", "hi"}, {stdout = "pipe"})
    local out, err = p:communicate()
    assert.equal("hi\n", out)
    assert.is_nil(err)
    p = exec({"cat"}, {stdin = "pipe", stdout = "pipe"})
    assert.equal("", (p:communicate("")))
    p = exec({"cat"}, {stdin = "pipe", stdout = "pipe"})
    assert.equal("", (p:communicate()))  -- stdin closed: cat ends
    assert.equal(0, p.returncode)
    p = exec({"true"})
    assert.same({n = 2}, table.pack(p:communicate()))
    assert.equal(0, p.returncode)
    p = exec({"true"})
    assert.matches("input given, but stdin is not a pipe", helper.error_of(p.communicate, p, "x"), 1, true)
    assert.matches("string or nil expected, got number", helper.error_of(p.communicate, p, 1), 1, true)
    p:wait()
  end))

  it("runs 50 processes at once", helper.async(function()
    local procs, fns = {}, {}
    for i = 1, 50 do
      procs[i] = exec({"sh", "-c", "sleep 0.1; echo $0; exit $(($0 % 7))", tostring(i)}, {stdout = "pipe"})
      fns[i] = function() return procs[i]:communicate() end
    end
    local outs = {lasync.gather(table.unpack(fns))}
    for i = 1, 50 do
      assert.equal(i .. "\n", outs[i])
      assert.equal(i % 7, procs[i].returncode)
    end
  end, 20))

  it("gives -signum for a child killed by a signal", helper.async(function()
    local p = exec({"sh", "-c", "kill -9 $$"})
    assert.equal(-9, p:wait())
    p = exec({"sleep", "10"})
    assert.is_true(p:kill())
    assert.equal(-9, p:wait())
    p = exec({"sleep", "10"})
    assert.is_true(p:terminate())
    assert.equal(-15, p:wait())
  end))

  it("send_signal takes a number or a name; a child that ended is left alone", helper.async(function()
    local p = exec({"sleep", "10"})
    assert.is_true(p:send_signal("SIGUSR1"))
    assert.equal(-10, p:wait())
    assert.is_false(p:send_signal(15))  -- reaped: a no-op, as Popen's
    assert.is_false(p:kill())
    assert.matches("unknown signal name 'SIGNOPE'", helper.error_of(p.send_signal, p, "SIGNOPE"), 1, true)
    assert.matches("signal number out of range", helper.error_of(p.send_signal, p, 0), 1, true)
    p = exec({"sleep", "10"})
    assert.matches("signal number out of range", helper.error_of(p.send_signal, p, 9999), 1, true)
    assert.is_true(p:send_signal(15))
    assert.equal(-15, p:wait())
  end))

  it("the child gets default signal handling and an empty mask (CPython test_send_signal)", helper.async(function()
    -- the spec runner's process may ignore or block signals; the child must not
    local p = exec({"sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"}, {stdout = "pipe"})
    local blocked, ignored = p:communicate():match("SigBlk:%s*(%x+)%s+SigIgn:%s*(%x+)")
    assert.equal(0, tonumber(blocked, 16))
    -- but for glibc's own signals 32 and 33, which its posix_spawn ignores
    -- in the child when this process has handlers for them
    assert.equal(0, tonumber(ignored, 16) & ~0x180000000)
  end))

  it("surfaces a child that closed its stdin as BrokenPipeError, no SIGPIPE", helper.async(function()
    -- SIGPIPE is not ignored here: a SIGPIPE would end the spec runner
    local ignored = helper.read_file("/proc/self/status"):match("SigIgn:%s*(%x+)")
    assert.equal(0, tonumber(ignored, 16) & (1 << 12))
    local p = exec({"sh", "-c", "exec 0<&-; sleep 0.05"}, {stdin = "pipe"})
    p:wait()
    local err
    for _ = 1, 100 do  -- the first write may fill the buffer only
      p.stdin:write(("x"):rep(65536))
      local ok, e = pcall(p.stdin.drain, p.stdin)
      if not ok then err = e break end
    end
    assert.is_true(lasync.BrokenPipeError:is(err))
    assert.equal("EPIPE", err.code)
    p.stdin:close()
  end))

  it("communicate ignores a child that does not read its input (test_communicate_ignore_broken_pipe)",
     helper.async(function()
    local p = exec({"true"}, {stdin = "pipe", stdout = "pipe"})
    local out = p:communicate(("x"):rep(4 * MB))
    assert.equal("", out)
    assert.equal(0, p.returncode)
  end, 20))

  it("runs in cwd with the env given (its whole environment)", helper.async(function()
    local p = exec({"pwd"}, {cwd = "/usr/bin", stdout = "pipe"})
    assert.equal("/usr/bin\n", (p:communicate()))
    p = exec({"/usr/bin/env"}, {env = {A = "1", LASYNC_X = "b c"}, stdout = "pipe"})
    local out = p:communicate()
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({"A=1", "LASYNC_X=b c"}, lines)
    p = exec({"/usr/bin/env"}, {env = {}, stdout = "pipe"})
    assert.equal("", (p:communicate()))
  end))

  it("inherits this process's environment without env", helper.async(function()
    local p = exec({"sh", "-c", "echo $HOME"}, {stdout = "pipe"})
    assert.equal((os.getenv("HOME") or "") .. "\n", (p:communicate()))
  end))

  it('sends stderr to stdout with stderr = "stdout"', helper.async(function()
    local p = exec({"sh", "-c", "echo out; echo err >&2"}, {stdout = "pipe", stderr = "stdout"})
    assert.is_nil(p.stderr)
    assert.equal("out\nerr\n", (p:communicate()))
  end))

  it('connects "null" to /dev/null (CPython test_devnull_*)', helper.async(function()
    local p = exec({"cat"}, {stdin = "null", stdout = "pipe"})
    assert.equal("", (p:communicate()))
    assert.equal(0, p.returncode)
    p = exec({"sh", "-c", "ls -l /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 >&3"},
             {stdin = "null", stdout = "null", stderr = "null"})
    assert.equal(2, p:wait())  -- fd 3 is closed in the child: nothing leaks in
    p = exec({"sh", "-c", "readlink /proc/self/fd/0 /proc/self/fd/2"},
             {stdin = "null", stdout = "pipe", stderr = "null"})
    assert.equal("/dev/null\n/dev/null\n", (p:communicate()))
  end))

  it("leaks no descriptor into the child or in the parent", helper.async(function()
    -- ls's own 3 is the directory it lists: the child inherits 0, 1, 2 only
    assert.same({0, 1, 2, 3}, fds_of("/proc/self/fd"))
    local before = own_fds()
    local p = exec({"cat"}, PIPES)
    local during = own_fds()
    -- its ends of the 3 pipes, and the pidfd or both ends of the exit pipe
    -- (SIGCHLD watching; also where pidfd_open is missing: valgrind)
    local info = helper.read_file("/proc/self/fdinfo/" .. p._child:fileno())
    local pidfd = info:find("\nPid:") ~= nil
    if mode == "SIGCHLD" then assert.is_false(pidfd) end
    assert.equal(#before + (pidfd and 4 or 5), #during)
    p.stdin:close()
    p:wait()
    p.stdout:close()
    p.stderr:close()
    assert.same(before, own_fds())
  end))

  it("leaves no zombie: a waited child's /proc entry is gone", helper.async(function()
    local p = exec({"true"})
    local pid = p.pid
    p:wait()
    assert.is_false(alive(pid))
    assert.is_nil(core.sys.waitpid(pid, true))  -- ECHILD: nothing left to reap
  end))

  it("reaps a child whose Process was dropped, once it ends", helper.async(function()
    local pid = exec({"sleep", "0.1"}).pid
    collectgarbage()
    collectgarbage()
    local deadline = lasync.time() + 3
    while alive(pid) and lasync.time() < deadline do lasync.sleep(0.02) end
    assert.is_false(alive(pid))
  end))

  it("holds the child's output while nobody reads (backpressure), losing none", helper.async(function()
    local p = exec({"head", "-c", tostring(4 * MB), "/dev/zero"}, {stdout = "pipe", limit = 4096})
    lasync.sleep(0.3)
    assert.is_nil(p.returncode)  -- blocked on its full pipe
    local total = 0
    while true do
      local chunk = p.stdout:read(65536)
      if chunk == "" then break end
      total = total + #chunk
    end
    assert.equal(4 * MB, total)
    assert.equal(0, p:wait())
    p.stdout:close()
  end, 20))

  it("drain() waits for a slow reader", helper.async(function()
    local flag = scratch.tmp("go")
    os.remove(flag)
    local p = exec({"sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.01; done; wc -c", flag},
                   {stdin = "pipe", stdout = "pipe"})
    p.stdin:write(("y"):rep(MB))
    local drained = lasync.spawn(p.stdin.drain, p.stdin)
    lasync.sleep(0.2)
    assert.is_false(drained:done())  -- the child reads nothing before the flag
    helper.read_file(scratch.write("go", ""))
    drained:await()
    p.stdin:write_eof()  -- a pipe's EOF is its close, once flushed
    p.stdin:wait_closed()
    assert.is_true(p.stdin:is_closing())
    assert.equal(tostring(MB), p.stdout:read():match("%d+"))
    assert.equal(0, p:wait())
    p.stdout:close()
    os.remove(flag)
  end, 20))

  it("refuses writes to a read pipe; the write pipe reads as at EOF", helper.async(function()
    local p = exec({"cat"}, {stdin = "pipe", stdout = "pipe"})
    assert.matches("cannot write to a pipe's read end", helper.error_of(p.stdout.write, p.stdout, "x"), 1, true)
    assert.is_false(p.stdout:can_write_eof())
    assert.is_true(p.stdin:can_write_eof())
    assert.is_true(p.stdin:at_eof())
    assert.equal("", p.stdin:read())
    assert.is_number(p.stdout:get_extra_info("fd"))
    p.stdin:close()
    assert.equal("", p.stdout:read())
    p:wait()
    p.stdout:close()
  end))

  it("reads stdout after the process exited (test_read_stdout_after_process_exit)", helper.async(function()
    local p = exec({"sh", "-c", "echo done"}, {stdout = "pipe"})
    p:wait()
    assert.equal("done\n", p.stdout:read())
    p.stdout:close()
  end))

  it("a cancelled wait() leaves the process usable (test_cancel_process_wait)", helper.async(function()
    local p = exec({"sleep", "10"})
    local err = helper.error_of(lasync.wait_for, function() return p:wait() end, 0.05)
    assert.is_true(lasync.TimeoutError:is(err))
    assert.is_nil(p.returncode)
    local t = lasync.spawn(function() return p:wait() end)
    lasync.sleep(0)
    t:cancel()
    assert.is_true(helper.is_cancelled(helper.error_of(t.await, t)))
    p:kill()
    assert.equal(-9, p:wait())
  end))

  it("a cancelled communicate() leaves the process and its pipes usable", helper.async(function()
    local p = exec({"sh", "-c", "echo first; exec sleep 10"}, PIPES)
    local err = helper.error_of(lasync.wait_for, function() return p:communicate() end, 0.2)
    assert.is_true(lasync.TimeoutError:is(err))
    assert.is_nil(p.returncode)
    assert.is_true(p:kill())
    assert.equal(-9, p:wait())
    assert.equal("first\n", p.stdout:read())  -- what the cancelled read had
    assert.equal("", p.stderr:read())
    p.stdout:close()
    p.stderr:close()
  end))
end)
end

describe("create_subprocess_shell", function()
  it("runs the command with /bin/sh -c (CPython test_shell)", helper.async(function()
    local p = shell("echo $((1 + 2)); exit 5", {stdout = "pipe"})
    assert.equal("3\n", (p:communicate()))
    assert.equal(5, p.returncode)
  end))

  it("passes env to the shell (test_create_subprocess_env_shell)", helper.async(function()
    local p = shell('echo "$FOO"', {env = {FOO = "bar"}, stdout = "pipe"})
    assert.equal("bar\n", (p:communicate()))
  end))

  it("gives 127 for a command the shell cannot find", helper.async(function()
    local p = shell("no-such-command-lasync 2>/dev/null")
    assert.equal(127, p:wait())
  end))
end)

describe("a running child when the loop closes", function()
  after_each(function() core._subprocess_use_pidfd(true) end)

  for _, mode in ipairs {"pidfd", "SIGCHLD"} do
  it("is killed and reaped once its Process is collected; nothing leaks (" .. mode .. ")", function()
    core._subprocess_use_pidfd(mode == "pidfd")
    collectgarbage()
    local fds = #own_fds()
    local pid = lasync.run(function()
      local p = exec({"sleep", "10"}, PIPES)
      return p.pid
    end)
    assert.is_true(alive(pid))  -- the loop's close leaves it to its Process
    collectgarbage()
    collectgarbage()
    assert.equal(fds, #own_fds())
    assert.same({}, {core.sys.waitpid(pid, true)})  -- reaped already: ECHILD
    assert.is_false(alive(pid))
  end)
  end
end)

describe("examples/run_command.lua", function()
  local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")
  if ROOT == "" then ROOT = "./" end

  it("streams each command's output line by line with its prefix", helper.async(function()
    local p = exec({ROOT .. "scripts/lasync", "run", "examples/run_command.lua",
                    "echo a; echo b >&2", "printf 'x\\ny'", "exit 3"}, {stdout = "pipe", cwd = ROOT})
    local out = p:communicate()
    assert.equal(0, p.returncode)
    local by = {}
    for name, text in out:gmatch("%[(%w+)%] ([^\n]*)\n") do
      by[name] = by[name] or {}
      table.insert(by[name], text)
    end
    assert.same({"a", "b", "exited with 0"}, by.echo)
    assert.same({"x", "y", "exited with 0"}, by.printf)
    assert.same({"exited with 3"}, by.exit)
  end, 10))
end)
