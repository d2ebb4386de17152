--- The lasync command (scripts/lasync), run as a subprocess: `lasync` from
-- PATH, where `make test` puts scripts/ first and the module paths in the
-- environment.
local lasync = require "lasync"

-- The checkout, for examples/: this file is <root>spec/command_spec.lua.
local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local slurp = require("helper").read_file

describe("lasync command", function()
  local scratch  -- the temporary files written, removed at the end

  lazy_setup(function()
    scratch = require("helper").scratch()
  end)

  lazy_teardown(function()
    scratch.cleanup()
  end)

  local function tmp(name) return scratch.tmp(name) end
  local function write(name, text) return scratch.write(name, text) end

  -- Runs a shell script; returns its stdout and its exit status.
  local shell = require("helper").shell

  -- Runs a shell script of other tools than lasync (mktemp, cp, rm,
  -- luarocks), not under the sanitizers that test-asan preloads for lasync:
  -- LeakSanitizer would fail cp and rm. Returns what shell returns.
  local function tool(script)
    return shell("unset LD_PRELOAD; " .. script)
  end

  -- A new temporary folder.
  local function tmpdir()
    return tool("mktemp -d"):match("[^\n]+")
  end

  -- Writes text to the file at path.
  local put = require("helper").write_file

  -- Runs `lasync ARGS` (shell words) with `input` on stdin; returns stdout,
  -- stderr and the exit status.
  local function cmd(args, input)
    local stdin, stderr = write("stdin", input or ""), tmp("stderr")
    local out, code = shell(("lasync %s <%s 2>%s"):format(
      args, quote(stdin), quote(stderr)))
    return out, slurp(stderr), code
  end

  -- Starts `lasync ARGS` in the background, waits (at most 3 s) for it to
  -- create the file `marker`, sends it SIGINT (or `signal`, e.g. "TERM")
  -- and waits for its end.
  local function interrupt(args, marker, signal)
    local stderr = tmp("stderr")
    os.remove(marker)
    local out, code = shell(([[
      lasync %s 2>%s & pid=$!
      i=0
      while [ ! -e %s ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done
      kill -%s $pid
      wait $pid
    ]]):format(args, quote(stderr), quote(marker), signal or "INT"))
    return out, slurp(stderr), code
  end

  describe("options", function()
    it("--version prints the version line and exits 0", function()
      local out, err, code = cmd("--version")
      assert.are.equal(("lasync %s (Lua 5.4)\n"):format(lasync.VERSION), out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end)

    for _, opt in ipairs { "--help", "-h" } do
      it(opt .. " prints the usage on stdout and exits 0", function()
        local out, err, code = cmd(opt)
        assert.matches("^usage: lasync", out)
        for _, text in ipairs { "run SCRIPT.lua [ARGS...]", "REPL",
                                "serve HANDLER.lua [OPTIONS]", "--listen HOST:PORT",
                                "-h, --help", "--version" } do
          assert.truthy(out:find(text, 1, true), text)
        end
        assert.are.equal("", err)
        assert.are.equal(0, code)
      end)
    end

    for _, case in ipairs {
      { "--bogus", "lasync: unknown option '--bogus'" },
      { "bogus", "lasync: unknown command 'bogus'" },
      { "serve", "lasync: serve: handler script expected" },
      { "serve x.lua --workers", "lasync: serve: --workers needs a value" },
      { "run", "lasync: run: script expected (see lasync --help)\n" },
      { "run -", "lasync: run: script expected, got '-'" },
      { "run --bogus x.lua", "lasync: run: script expected, got '--bogus'" },
      { "--version extra", "lasync: unexpected argument 'extra' after --version" },
      { "-h extra", "lasync: unexpected argument 'extra' after -h" },
    } do
      it("`lasync " .. case[1] .. "` is bad usage: exit 2", function()
        local out, err, code = cmd(case[1])
        assert.are.equal("", out)
        assert.truthy(err:find(case[2], 1, true), err)
        assert.matches("^lasync: [^\n]+ %(see lasync %-%-help%)\n$", err)  -- one line
        assert.are.equal(2, code)
      end)
    end
  end)

  describe("installed with luarocks", function()
    local dir  -- a copy of the sources, the tree they install into, modules

    lazy_setup(function()
      dir = tmpdir()
      -- From a copy: `luarocks make` leaves objects beside the sources.
      -- -O0 for speed. What is installed is not sanitized: it runs as a
      -- tool too.
      local _, code = tool(([[
        mkdir %s/src && cp -R %ssrc %slua %sscripts %slasync-scm-1.rockspec %s/src &&
        cd %s/src && luarocks --lua-version=5.4 make --tree %s/tree \
          lasync-scm-1.rockspec CFLAGS='-O0 -fPIC' >%s/install.log 2>&1
      ]]):format(dir, ROOT, ROOT, ROOT, ROOT, dir, dir, dir, dir))
      assert(code == 0, "luarocks make failed: see " .. dir .. "/install.log")
      -- lua-redis's kind of place: luarocks' loader rewrites other versions'
      -- folders (/lua/5.3/) as its own
      tool(("mkdir -p %s/share/lua/5.3"):format(dir))
      put(dir .. "/share/lua/5.3/m.lua", 'return "m"\n')
    end)

    lazy_teardown(function()
      tool("rm -rf " .. quote(dir))
    end)

    -- Runs the shell words `command` in dir with only `var` set of the Lua
    -- path variables, to dir/share/lua/5.3/?.lua and the default paths.
    local function with_path(var, command)
      local out, code = tool(("cd %s && env -u LUA_PATH -u LUA_PATH_5_4"
        .. " -u LUA_CPATH -u LUA_CPATH_5_4 %s=%s %s 2>&1"):format(
        quote(dir), var, quote(dir .. "/share/lua/5.3/?.lua;;"), command))
      return out, code
    end

    for _, var in ipairs { "LUA_PATH", "LUA_PATH_5_4" } do
      it("`lasync run` finds a module on " .. var .. " as lua5.4 does, and lasync in its tree",
        function()
          local out, code = with_path(var, [[lua5.4 -e 'print(require "m")']])
          assert.are.equal("m\t" .. dir .. "/share/lua/5.3/m.lua\n", out)
          assert.are.equal(0, code)
          local script = write("paths.lua", 'print(require "m")\n'
            .. 'print(package.searchpath("lasync", package.path))\n'
            .. 'print(package.searchpath("lasync.core", package.cpath))\n')
          out, code = with_path(var, ("PATH=%s/tree/bin:$PATH lasync run %s"):format(
            quote(dir), quote(script)))
          assert.are.equal(("m\t%s/share/lua/5.3/m.lua\n%s/tree/share/lua/5.4/lasync/init.lua\n"
            .. "%s/tree/lib/lua/5.4/lasync/core.so\n"):format(dir, dir, dir), out)
          assert.are.equal(0, code)
        end)
    end
  end)

  describe("test", function()
    -- Runs `lasync test ARGS` in a new folder holding a user's spec,
    -- user_spec.lua, which requires lasync and a module of that folder
    -- (on LUA_PATH) and awaits inside lasync.run; the module returns
    -- `value`, which the spec expects to be "slept". Returns the output
    -- (stdout and stderr) and the exit status.
    local function user_test(value, args)
      local dir = tmpdir()
      put(dir .. "/value.lua", ("return %q\n"):format(value))
      put(dir .. "/user_spec.lua", [[
local lasync = require "lasync"
describe("user code", function()
  it("awaits inside lasync.run", function()
    local got = lasync.run(function()
      return lasync.spawn(function() lasync.sleep(0.001) return "slept" end):await()
    end)
    assert.are.equal(require "value", got)
  end)
end)
]])
      local out, code = shell(("cd %s && env -u LUA_PATH_5_4 LUA_PATH=%s lasync test %s 2>&1"):format(
        quote(dir), quote(dir .. "/?.lua;;"), args or "user_spec.lua"))
      tool("rm -rf " .. quote(dir))
      return out, code
    end

    it("runs busted under Lua 5.4 on a user's spec that passes: exit 0", function()
      local out, code = user_test("slept")
      assert.truthy(out:find("1 success / 0 failures / 0 errors", 1, true), out)
      assert.are.equal(0, code)
    end)

    it("reports a user's spec that fails, and exits non-zero", function()
      local out, code = user_test("awake")
      assert.truthy(out:find("0 successes / 1 failure / 0 errors", 1, true), out)
      assert.truthy(out:find("user_spec.lua:7: Expected objects to be equal.", 1, true), out)
      assert.are_not.equal(0, code)
    end)

    it("passes its arguments to busted", function()
      local out, code = user_test("awake", "--filter=nothing user_spec.lua")
      assert.truthy(out:find("0 successes / 0 failures / 0 errors", 1, true), out)
      assert.are.equal(0, code)
    end)

    it("exits 1 saying so when busted is not installed for Lua 5.4", function()
      local out, code = shell("env LUA_PATH_5_4=/nowhere/?.lua lasync test 2>&1")
      assert.are.equal("lasync: test: busted not found on the Lua 5.4 module path"
        .. " (Debian: apt-get install lua-busted)\n", out)
      assert.are.equal(1, code)
    end)
  end)

  describe("run", function()
    it("runs a script whose top level awaits, with lasync preloaded", function()
      local script = write("await.lua", [[
        local t = lasync.spawn(function() lasync.sleep(0.01) return "child" end)
        print("started", t:done())
        lasync.sleep(0.002)
        print("got", t:await())
      ]])
      local out, err, code = cmd("run " .. quote(script))
      assert.are.equal("started\tfalse\ngot\tchild\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end)

    it("sets arg as lua5.4 does and passes the arguments as ...", function()
      local script = write("args.lua", [[
        print(arg[0], #arg, arg[1], arg[2], arg[3])
        print(arg[-1], arg[-2]:match("[^/]*$"), arg[-3]:match("lua"))
        print(select("#", ...), ...)
      ]])
      local out, _, code = cmd(("run %s a 'b c' ''"):format(quote(script)))
      assert.are.equal(script .. "\t3\ta\tb c\t\n"
        .. "run\tlasync\tlua\n"
        .. "3\ta\tb c\t\n", out)
      assert.are.equal(0, code)
    end)

    it("exits 1 with the traceback of a failure inside the task", function()
      local script = write("fail.lua", [[
local function fail(what)
  lasync.sleep(0.001)
  error("boom: " .. what)
end
print("before")
fail("late")
]])
      local out, err, code = cmd("run " .. quote(script))
      assert.are.equal("before\n", out)
      assert.are.equal(1, code)
      assert.truthy(err:find("lasync: " .. script .. ":3: boom: late\n"
        .. "stack traceback:\n", 1, true), err)
      assert.truthy(err:find(script .. ":3: in local 'fail'", 1, true), err)
      assert.truthy(err:find(script .. ":6: in main chunk", 1, true), err)
      assert.is_nil(err:find("xpcall", 1, true), err)
    end)

    it("adds where a failed task it awaited raised the error", function()
      local script = write("child.lua", [[
local function deep() error("deep") end
local child = lasync.spawn(function() deep() end)
child:await()
]])
      local _, err, code = cmd("run " .. quote(script))
      assert.are.equal(1, code)
      assert.truthy(err:find(script .. ":3: in main chunk\n"
        .. "(raised in task 'Task-2':)\n" .. script .. ":1: deep\n", 1, true), err)
      assert.truthy(err:find(script .. ":1: in upvalue 'deep'", 1, true), err)
    end)

    it("shows an error object with its __tostring", function()
      local script = write("object.lua", 'error(lasync.TimeoutError("too slow"))\n')
      local _, err, code = cmd("run " .. quote(script))
      assert.matches("^lasync: TimeoutError: too slow\nstack traceback:\n", err)
      assert.are.equal(1, code)
    end)

    it("exits 1 on a CancelledError that SIGINT did not cause", function()
      local script = write("cancelled.lua", [[
        local t = lasync.spawn(function() lasync.sleep(30) print("slept") end)
        lasync.sleep(0)
        t:cancel()
        t:await()
      ]])
      local out, err, code = cmd("run " .. quote(script))
      assert.are.equal("", out)  -- the sleep did not run out
      assert.matches("^lasync: CancelledError", err)
      assert.are.equal(1, code)
    end)

    it("exits 1 on a syntax error, running nothing", function()
      local script = write("syntax.lua", 'print("ran")\nx = = 1\n')
      local out, err, code = cmd("run " .. quote(script))
      assert.are.equal("", out)
      assert.are.equal("lasync: " .. script .. ":2: unexpected symbol near '='\n",
                       err)
      assert.are.equal(1, code)
    end)

    it("exits 1 when the script cannot be read", function()
      local _, err, code = cmd("run " .. quote(tmp("missing.lua")))
      assert.matches("^lasync: cannot open .*missing%.lua", err)
      assert.are.equal(1, code)
    end)

    it("lets the script choose its exit status with os.exit", function()
      local script = write("exit.lua", 'lasync.sleep(0.001)\nio.write("out")\nos.exit(7)\n')
      local out, _, code = cmd("run " .. quote(script))
      assert.are.equal("out", out)
      assert.are.equal(7, code)
    end)

    it("exits 130, at once, when SIGINT cancels the main task", function()
      local marker = tmp("sleeping")
      -- at once: a SIGINT seen only when the loop wakes up for a timer
      -- would let the 2 s one print first
      local script = write("sleepy.lua", ([[
        lasync.spawn(function() lasync.sleep(2) print("timer first") end)
        io.open(%q, "w"):close()
        lasync.sleep(10)
        print("not reached")
      ]]):format(marker))
      local out, err, code = interrupt("run " .. quote(script), marker)
      assert.are.equal("", out)
      assert.are.equal("lasync: interrupted\n", err)
      assert.are.equal(130, code)
    end)

    it("exits 143 on SIGTERM, once the main task's cleanups ran", function()
      local ready, log = tmp("term-ready"), tmp("term-log")
      os.remove(log)
      local script = write("term.lua", ([[
        local function note(what)
          local f = io.open(%q, "a") f:write(what, "\n") f:close()
        end
        local closing <close> = setmetatable({}, {__close = function() note("closed") end})
        io.open(%q, "w"):close()
        local ok, e = pcall(lasync.sleep, 10)
        note(ok and "slept" or "caught")
        error(e, 0)
      ]]):format(log, ready))
      local out, err, code = interrupt("run " .. quote(script), ready, "TERM")
      assert.are.equal("", out)
      assert.are.equal("lasync: terminated\n", err)
      assert.are.equal(143, code)
      assert.are.equal("caught\nclosed\n", slurp(log))
    end)

    it("refuses lasync.run in a script, saying to await directly", function()
      local script = write("nested.lua", 'print(lasync.run(function() return 1 end))\n')
      local out, err, code = cmd("run " .. quote(script))
      assert.are.equal("lasync: " .. script .. ":1: lasync.run() cannot be called"
        .. " while an event loop is running: code in a task, like a script under"
        .. " 'lasync run', awaits directly (run a script that calls lasync.run"
        .. " with lua5.4)", err:match("^[^\n]*"))
      assert.are.same({"", 1}, {out, code})
    end)

    it("runs examples/hello.lua concurrently", function()
      local out, err, code = cmd("run " .. quote(ROOT .. "examples/hello.lua"))
      -- in the order the sleeps end, not the order they began (tortoise
      -- first): all three slept at once
      assert.matches("^hare .*\nsnail .*\ntortoise .*\n0%.6 s of sleeping took %d%.%d s\n$", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end)
  end)

  describe("REPL", function()
    local function repl(input)
      return cmd("", input)
    end

    it("prints the values of an expression and runs a statement", function()
      local out, err, code = repl("1 + 1\nprint('x')\nlocal y = 2\n1, nil, 'a'\n")
      assert.are.equal("2\nx\n1\tnil\ta\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end)

    it("reads more lines while a chunk is unfinished", function()
      local out, err = repl("for i = 1, 2 do\nprint(i)\nend\n")
      assert.are.equal("1\n2\n", out)
      assert.are.equal("", err)
    end)

    it("awaits at top level with lasync preloaded", function()
      local out, err = repl("h = lasync.get_running_loop():call_later(0.005, print, 'timer')\n"
        .. "lasync.sleep(0.01)\nprint('slept')\n")
      assert.are.equal("timer\nslept\n", out)
      assert.are.equal("", err)
    end)

    it("awaits in a later line a task spawned in an earlier one", function()
      local out, err = repl("t = lasync.spawn(function() lasync.sleep(0.02) return 'late' end)\n"
        .. "print(t:done())\nt:await()\n")
      assert.are.equal("false\nlate\n", out)
      assert.are.equal("", err)
    end)

    it("keeps spawned tasks running while later lines run", function()
      local out, err, code = repl("ticks = 0\n"
        .. "ticker = lasync.spawn(function() while true do ticks = ticks + 1; lasync.sleep(0.001) end end)\n"
        .. "before, stop = ticks, lasync.time() + 2\n"
        .. "while ticks <= before + 2 and lasync.time() < stop do lasync.sleep(0.005) end\n"
        .. "ticks > before + 2\n")
      assert.are.equal("true\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end)

    it("runs spawned tasks while it waits for the next line", function()
      -- The second line is sent once the task has run (at most 5 s).
      local marker = tmp("bg-done")
      os.remove(marker)
      local out, code = shell(([[
        (echo 'bg = lasync.spawn(function() lasync.sleep(0.05) io.open(%q, "w"):close() end)'
         i=0; while [ ! -e %s ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
         echo 'print(bg:done())') | lasync]]):format(marker, quote(marker)))
      assert.are.equal("true\n", out)
      assert.are.equal(0, code)
    end)

    it("prints an error with its traceback and goes on", function()
      local out, err, code = repl("error('bad')\nprint('still here')\n")
      assert.are.equal("still here\n", out)
      assert.matches("^stdin:1: bad\nstack traceback:\n", err)
      assert.is_nil(err:find("xpcall", 1, true), err)
      assert.are.equal(0, code)
    end)

    it("prints a syntax error and goes on", function()
      local out, err = repl("x = = 1\nprint('ok')\n")
      assert.are.equal("ok\n", out)
      assert.are.equal("stdin:1: unexpected symbol near '='\n", err)
    end)

    it("reports a value that print cannot show", function()
      local out, err = repl("setmetatable({}, {__tostring = function() error('no text', 0) end})\n"
        .. "print('next')\n")
      assert.are.equal("next\n", out)
      assert.are.equal("error calling 'print' (no text)\n", err)
    end)

    it("exits 0 at end of input, even inside a chunk", function()
      local out, err, code = repl("for i = 1, 2 do\n")
      assert.are.equal("", out)
      assert.matches("<eof>\n$", err)
      assert.are.equal(0, code)
      out, err, code = repl("")
      assert.are.equal("", out .. err)
      assert.are.equal(0, code)
    end)

    it("lets SIGINT cancel the running line only", function()
      local marker = tmp("repl-sleeping")
      write("repl-input", ("io.open(%q, 'w'):close() lasync.sleep(10)\nprint('after')\n")
        :format(marker))
      local out, err, code = interrupt("<" .. quote(tmp("repl-input")), marker)
      assert.are.equal("after\n", out)  -- printed at once: the sleep was cancelled
      assert.are.equal("interrupted\n", err)
      assert.are.equal(0, code)
    end)
  end)
end)
