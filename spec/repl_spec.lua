--- The REPL at a terminal: `lasync` under a pseudo-terminal made by
-- script(1) (util-linux, in Debian's essential bsdutils), keys written to
-- script's stdin, the screen read from what it writes. Every wait is for
-- text on the screen, bounded by WAIT seconds.
local helper = require "helper"
local lasync = require "lasync"

local WAIT = 10

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The bytes of s with control characters shown as \ddd, for messages.
local function visible(s)
  return (s:gsub("[%c\127]", function(c)
    return c == "\n" and "\\n\n" or ("\\%d"):format(c:byte())
  end))
end

describe("REPL at a terminal", function()
  local scratch = helper.scratch()

  lazy_teardown(function() scratch.cleanup() end)

  -- The file at path, open, once it exists (WAIT s at most); nil if not.
  local function wait_open(path)
    local stop = lasync.time() + WAIT
    while true do
      local f = io.open(path)
      if f or lasync.time() > stop then return f end
      lasync.sleep(0.01)
    end
  end

  -- Starts `lasync` in a pseudo-terminal with the environment assignments
  -- `env` (shell words); returns the terminal: send(keys), expect(text),
  -- exit_status(), close().
  local function start(env)
    local screen, pid, status = scratch.tmp("screen"), scratch.tmp("pid"), scratch.tmp("status")
    os.remove(status)
    os.remove(pid)
    io.open(screen, "w"):close()
    -- script(1) itself runs without the sanitizers' LD_PRELOAD (under
    -- `make test-asan` LeakSanitizer would fail it at exit); lasync gets it.
    local preload = os.getenv("LD_PRELOAD")
    local cmd = ("exec env %s TERM=xterm %s lasync")
      :format(preload and "LD_PRELOAD=" .. quote(preload) or "", env)
    local inner = ("echo $$ >%s; exec env -u LD_PRELOAD script -qfec %s /dev/null")
      :format(quote(pid), quote(cmd))
    local p = assert(io.popen(("sh -c %s >%s 2>&1; echo $? >%s.part && mv %s.part %s")
      :format(quote(inner), quote(screen), quote(status), quote(status), quote(status)), "w"))
    local term, seen = {}, 0

    function term.send(keys)
      p:write(keys)
      p:flush()
    end

    -- Waits for text (plain) on the screen after what earlier calls saw.
    function term.expect(text)
      local stop = lasync.time() + WAIT
      while true do
        local all = helper.read_file(screen)
        local _, last = all:find(text, seen + 1, true)
        if last then
          seen = last
          return all
        end
        if lasync.time() > stop then
          error(("no %q on the screen after %d s; it shows:\n%s"):format(
            text, WAIT, visible(all:sub(seen + 1))), 2)
        end
        lasync.sleep(0.01)
      end
    end

    -- Waits (WAIT s at most) for the end of lasync: its exit status, or
    -- nil if it has not ended.
    function term.exit_status()
      local f = wait_open(status)
      if not f then return nil end
      local code = f:read("n")
      f:close()
      return code
    end

    -- Kills lasync (through script: the terminal hangs up) if it still runs.
    function term.close()
      local f = io.open(status)
      if f then
        f:close()
      else
        assert(wait_open(pid)):close()
        os.execute("kill -KILL " .. helper.read_file(pid))
      end
      p:close()
    end
    return term
  end

  -- An async spec with a terminal from start(env) that is always stopped.
  local function at_terminal(env, fn)
    return helper.async(function()
      local term = start(env)
      local ok, err = pcall(fn, term)
      term.close()
      if not ok then error(err, 0) end
    end, 4 * WAIT)
  end

  local function history_env()
    local path = scratch.tmp("history")
    os.remove(path)
    return "LASYNC_HISTORY=" .. quote(path), path
  end

  -- Ctrl-C at the prompt, with a line half typed, then twice at once (which
  -- may reach the loop as one signal: one prompt at least), then a line.
  local function ctrl_c_at_prompt(term)
    term.expect("> ")
    term.send("1 +")
    term.send("\3")
    term.expect("> ")
    term.send("\3\3")
    term.expect("> ")
    term.send('"ok" .. "go"\r')
    term.expect("okgo")
    local screen = term.expect("> ")
    assert.is_nil(screen:find("traceback", 1, true), visible(screen))
  end

  it("clears the line on Ctrl-C at the prompt, however often",
    at_terminal(history_env(), ctrl_c_at_prompt))

  it("cancels what the line awaits on Ctrl-C, and goes on", at_terminal(
    history_env(), function(term)
      term.expect("> ")
      term.send('print("sle" .. "eping") lasync.sleep(30) print("wo" .. "ke")\r')
      term.expect("sleeping")
      term.send("\3")
      term.expect("interrupted")
      term.expect("> ")
      term.send('print("sle" .. "eping") lasync.sleep(30)\r')
      term.expect("sleeping")
      term.send("\3\3\3")
      term.expect("interrupted")
      term.send('"a" .. "live"\r')
      local screen = term.expect("alive")
      assert.is_nil(screen:find("woke", 1, true), visible(screen))
    end))

  it("runs the loop while the prompt waits", at_terminal(
    history_env(), function(term)
      term.expect("> ")
      term.send('lasync.spawn(function() lasync.sleep(0.1) print("ti" .. "ck") end)\r')
      term.expect("> ")
      term.expect("tick")
    end))

  it("recalls the previous line with the up arrow", at_terminal(
    history_env(), function(term)
      term.expect("> ")
      term.send('"abc" .. "def"\r')
      term.expect("abcdef")
      term.expect("> ")
      term.send("\27[A\r")
      term.expect("abcdef")
      term.expect("> ")
    end))

  it("writes the history file, which the next session recalls", function()
    local env, path = history_env()
    at_terminal(env, function(term)
      term.expect("> ")
      term.send('"first" .. "line"\r')
      term.expect("firstline")
      term.send('"second" .. "line"\r')
      term.expect("secondline")
      term.send("\4")
      assert.are.equal(0, term.exit_status())
    end)()
    assert.are.equal('"first" .. "line"\n"second" .. "line"\n', helper.read_file(path))
    at_terminal(env, function(term)
      term.expect("> ")
      term.send("\27[A\27[A\r")
      term.expect("firstline")
    end)()
  end)

  it("keeps its history in $HOME/.lasync_history by default", function()
    local home = scratch.tmp("home")
    assert(os.execute("mkdir -p " .. quote(home)))
    at_terminal("HOME=" .. quote(home) .. " LASYNC_HISTORY=", function(term)
      term.expect("> ")
      term.send("2\r")
      term.expect("> ")
      term.send("\4")
      assert.are.equal(0, term.exit_status())
    end)()
    assert.is_nil(io.open(home .. "/.lasync_history"), "LASYNC_HISTORY= keeps none")
    at_terminal("HOME=" .. quote(home), function(term)
      term.expect("> ")
      term.send("1\r")
      term.expect("> ")
      term.send("\4")
      assert.are.equal(0, term.exit_status())
    end)()
    local saved = helper.read_file(home .. "/.lasync_history")
    os.remove(home .. "/.lasync_history")
    os.remove(home)
    assert.are.equal("1\n", saved)
  end)

  it("exits 0 on Ctrl-D at an empty prompt", at_terminal(
    history_env(), function(term)
      term.expect("> ")
      term.send("\4")
      assert.are.equal(0, term.exit_status())
    end))

  describe("without lasync.lineedit", function()
    -- A module path holding lasync.core (the build under test) alone.
    local dir = scratch.tmp("nolineedit")
    assert(os.execute(("mkdir -p %s/lasync && cp %s %s/lasync/"):format(quote(dir),
      quote(assert(package.searchpath("lasync.core", package.cpath))), quote(dir))))
    local env = "LASYNC_BUILD=" .. quote(dir) .. " LUA_CPATH_5_4=" .. quote(dir .. "/?.so")

    lazy_teardown(function() os.execute("rm -rf " .. quote(dir)) end)

    it("ignores a line with an arrow key's escape codes", at_terminal(
      env, function(term)
        term.expect("> ")
        term.send("\27[A\r")
        term.expect("line ignored")
        term.expect("> ")
        term.send('"still" .. "here"\r')
        local screen = term.expect("stillhere")
        assert.is_nil(screen:find("unexpected symbol", 1, true), visible(screen))
      end))

    it("clears the line on Ctrl-C at the prompt", at_terminal(env, ctrl_c_at_prompt))
  end)

  it("reads piped stdin as plain lines, without prompts", function()
    local p = assert(io.popen("printf '1 + 1\\nlocal x = 3\\nx\\n' | lasync 2>&1"))
    local out = p:read("a")
    p:close()
    assert.are.equal("2\nnil\n", out)
  end)
end)
