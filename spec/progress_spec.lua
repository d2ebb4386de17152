--- The progress line of long runs (bench/progress.lua) and the fuzz driver
-- (fuzz/run.lua) in child processes, their stderr a pipe or a terminal
-- made by script(1) (util-linux, in Debian's essential bsdutils). The
-- driver runs fake harnesses that replay recorded libFuzzer output.
local helper = require "helper"

local LUA = os.getenv("LASYNC_LUA") or "lua5.4"

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A Lua child's command: the chunk at path with bench/ on its path.
local function lua_cmd(path, args)
  return ("%s -e %s %s %s"):format(LUA, quote('package.path = "bench/?.lua;" .. package.path'),
    quote(path), args or "")
end

-- stderr and stdout of cmd through a pipe, and its exit status.
local function piped(cmd)
  return helper.shell(cmd .. " 2>&1")
end

-- What cmd writes on a terminal (a pty of script(1)), and its exit
-- status. The children need no sanitizer runtime (no lasync in them) and
-- LeakSanitizer would fail script itself under `make test-asan`.
local function on_tty(cmd)
  return helper.shell(("env -u LD_PRELOAD script -qfec %s /dev/null </dev/null")
    :format(quote(cmd)))
end

-- A progress of 3 steps on a clock that takes 10 s per step, with a note.
local STEPS = [[
local progress = require "progress"
local t = 0
local p = progress.new(3, "bench", {clock = function() return t end})
p:step("core: a"); t = 10
p:step("core: b"); t = 20
p:note("a line of output")
p:step("core: c"); t = 30
p:done()
print("the table")
]]

-- libFuzzer's stderr over a run of 1000 inputs, as it prints it.
local RECORDED = table.concat({
  "INFO: Running with entropic power schedule (0xFF, 100).",
  "INFO: Seed: 2807374516",
  "INFO: Loaded 1 modules   (5169 inline 8-bit counters): 5169 [0x5617, 0x5a44),",
  "INFO:      106 files found in fuzz/corpus/head",
  "#107\tINITED cov: 412 ft: 1120 corp: 98/2910b exec/s: 0 rss: 38Mb",
  "#113\tNEW    cov: 413 ft: 1121 corp: 99/2950b lim: 233 exec/s: 0 rss: 38Mb L: 40/221 MS: 1 ChangeBit-",
  "#119\tREDUCE cov: 413 ft: 1121 corp: 99/2949b lim: 233 exec/s: 0 rss: 38Mb L: 39/221 MS: 2 EraseBytes-",
  "#512\tpulse  cov: 413 ft: 1121 corp: 99/2949b lim: 233 exec/s: 256 rss: 39Mb",
  "#1000\tDONE   cov: 413 ft: 1121 corp: 99/2949b lim: 233 exec/s: 500 rss: 39Mb",
  "Done 1000 runs in 2 second(s)",
}, "\n") .. "\n"

describe("progress line", function()
  local scratch = helper.scratch()
  lazy_teardown(function() scratch.cleanup() end)

  it("prints a plain line per step with done/total and time left on a pipe", helper.async(function()
    local out, code = piped(lua_cmd(scratch.write("steps.lua", STEPS)))
    assert.equal(0, code)
    assert.equal(table.concat({
      "[1/3] core: a (? left)",
      "[2/3] core: b (0:20 left)",
      "a line of output",
      "[3/3] core: c (0:10 left)",
      "[3/3] bench: done in 0:30",
      "the table", ""}, "\n"), out)
  end))

  it("redraws one line on a terminal and clears it before other output", helper.async(function()
    local out, code = on_tty(lua_cmd(scratch.write("steps.lua", STEPS)))
    assert.equal(0, code)
    local function line(s) return "\rbench " .. s .. "\27[K" end
    assert.equal(line("1/3 · core: a · ? left") .. line("2/3 · core: b · 0:20 left")
      .. "\r\27[Ka line of output\r\n" .. line("2/3 · core: b · 0:40 left")
      .. line("3/3 · core: c · 0:10 left") .. "\r\27[Kthe table\r\n", out)
  end))

  it("writes the time left as m:ss or h:mm:ss and cuts terminal lines", helper.async(function()
    local chunk = [[
local progress = require "progress"
local t, lines = 0, {}
local stream = {write = function(_, ...) lines[#lines + 1] = table.concat({...}) end,
                flush = function() end}
local p = progress.new(100, "x", {clock = function() return t end, stream = stream, tty = true})
print(progress.clock_text(59.6), progress.clock_text(3599), progress.clock_text(3600 * 2 + 61))
p:set(1, "y"); t = 40; p:set(2, "y"); p:set(500, ("z"):rep(100))
print(lines[1]); print(lines[2]); print(utf8.len(lines[3]), lines[3]:sub(-12))
]]
    local out = piped(lua_cmd(scratch.write("left.lua", chunk)))
    assert.equal(table.concat({
      "1:00\t59:59\t2:01:01",
      "\rx 1/100 · y · 0:00 left\27[K",
      "\rx 2/100 · y · 32:40 left\27[K",  -- 20 s per unit, 98 left
      -- clamped to 100/100; cut to 79 characters between \r and \27[K
      "83\tzzzzzzzzz\27[K", ""}, "\n"), out)
  end))

  it("knows whether stderr is a terminal", helper.async(function()
    local chunk = 'print(require("progress").stderr_is_tty())'
    local path = scratch.write("tty.lua", chunk)
    assert.equal("false\n", (piped(lua_cmd(path))))
    assert.equal("true\r\n", (on_tty(lua_cmd(path))))
  end))
end)

describe("fuzz driver", function()
  local scratch = helper.scratch()
  local dir = scratch.base .. "-harnesses"  -- the harnesses' own names
  assert(os.execute("mkdir " .. quote(dir)))
  lazy_teardown(function()
    scratch.cleanup()
    os.execute("rm -r " .. quote(dir))
  end)

  -- An executable script dir/name.
  local function script(name, text)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w"))
    f:write("#!/bin/sh\n", text)
    f:close()
    assert(os.execute("chmod +x " .. quote(path)))
    return path
  end

  -- A fake harness: prints its arguments, then the recorded stderr, and
  -- exits with code.
  local function harness(name, recorded, code)
    local log = scratch.write(name .. ".log", recorded)
    return script(name, ('echo "args: $*" >&2\ncat %s >&2\nexit %d\n'):format(quote(log), code or 0))
  end

  local function driver(runs, ...)
    local words = {}
    for i, h in ipairs {...} do words[i] = quote(h .. " -max_len=4096 corpus") end
    return ("%s fuzz/run.lua %d %s"):format(LUA, runs, table.concat(words, " "))
  end

  -- The lines of out that are progress lines: "[done/total] what".
  local function progress_lines(out)
    local t = {}
    for done, total, what in out:gmatch("%[(%d+)/(%d+)%] ([^\n]-) %(") do
      t[#t + 1] = ("%s/%s %s"):format(done, total, what)
    end
    return t
  end

  it("counts libFuzzer's status lines over all harnesses on a pipe", helper.async(function()
    local a, b = harness("one", RECORDED), harness("two", RECORDED)
    local out, code = piped(driver(1000, a, b))
    assert.equal(0, code)
    assert.same({
      "107/2000 one: #107 INITED", "512/2000 one: #512 pulse", "1000/2000 one: #1000 DONE",
      "1107/2000 two: #107 INITED", "1512/2000 two: #512 pulse", "2000/2000 two: #1000 DONE",
    }, progress_lines(out))
    -- The harness's other lines as they are; -runs after the program.
    local _, n = out:gsub("args: %-runs=1000 %-max_len=4096 corpus\n", "")
    assert.equal(2, n)
    assert.truthy(out:find("\nINFO: Seed: 2807374516\n", 1, true))
    assert.truthy(out:find("\nDone 1000 runs in 2 second(s)\n", 1, true))
    assert.falsy(out:find("NEW", 1, true))
    assert.truthy(out:find("\n%[2000/2000%] fuzz: done in %d+:%d%d\n$"))
  end))

  it("draws every status line on a terminal, NEW ones too", helper.async(function()
    local out, code = on_tty(driver(1000, harness("one", RECORDED)))
    assert.equal(0, code)
    assert.truthy(out:find("\rfuzz 113/1000 · one: #113 NEW · [^\n]- left\27%[K"))
    assert.truthy(out:find("\rfuzz 119/1000 · one: #119 REDUCE · [^\n]- left\27%[K"))
    assert.truthy(out:find("\nINFO: Seed: 2807374516\r\n", 1, true))
    assert.equal("\r\27[K", out:sub(-4))
  end))

  it("shows a crash and ends with the harness's exit status", helper.async(function()
    local crash = "#107\tINITED cov: 412 ft: 1120 corp: 98/2910b exec/s: 0 rss: 38Mb\n"
      .. "==4711==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x6020\n"
      .. "artifact_prefix='./'; Test unit written to ./crash-da39a3ee\n"
    local out, code = piped(driver(1000, harness("bad", crash, 77), harness("never", RECORDED)))
    assert.equal(77, code)
    local tail = "\n==4711==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x6020\n"
      .. "artifact_prefix='./'; Test unit written to ./crash-da39a3ee\n"
      .. "fuzz: bad failed (exit 77)\n"
    assert.equal(tail, out:sub(-#tail))
    assert.falsy(out:find("never", 1, true))
  end))

  it("gives 128 + the signal when one kills the harness", helper.async(function()
    local killed = script("killed", "kill -KILL $$\n")
    local out, code = piped(driver(10, killed))
    assert.equal(128 + 9, code)
    assert.truthy(out:find("fuzz: killed failed (exit 137)\n", 1, true))
  end))

  it("rejects a bad RUNS or no harness with its usage", helper.async(function()
    for _, args in ipairs {"x one", "0 one", "10"} do
      local out, code = piped(LUA .. " fuzz/run.lua " .. args)
      assert.equal(2, code, args)
      assert.truthy(out:find("^usage: lua5.4 fuzz/run.lua RUNS"), args)
    end
  end))
end)
