-- The REPL feeds libedit when the loop sees fd 0 readable. Ctrl-C typed
-- just after other keys can flush the terminal's input between that and
-- the read (ISIG), and a blocking read then hung the REPL with the SIGINT
-- already handled (make test-asan saw it once). feed() with no key there
-- must return at once, the line still being edited.
local lasync = require "lasync"
local helper = require "helper"

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local PROGRAM = [[
local ed = require("lasync.lineedit").open("lasync")
ed:start("> ")
local got = ed:feed()
ed:close()
io.stdout:write("\nfed:", tostring(got), ":end\n")
]]

describe("lasync.lineedit with no key to read (regression)", function()
  it("feed returns true instead of waiting for a key", helper.async(function()
    -- script(1) itself without the sanitizers' LD_PRELOAD, as in repl_spec.
    local preload = os.getenv("LD_PRELOAD")
    local cmd = ("exec env %s TERM=xterm lua5.4 -e %s")
      :format(preload and "LD_PRELOAD=" .. quote(preload) or "", quote(PROGRAM))
    local p = lasync.create_subprocess_exec({"env", "-u", "LD_PRELOAD", "script", "-qfec", cmd, "/dev/null"},
                                           {stdin = "pipe", stdout = "pipe"})
    local ok, out = pcall(lasync.timeout, 10, p.stdout.readuntil, p.stdout, ":end")
    if not ok then p:kill() end
    p.stdin:close()
    p:wait()
    assert(ok, "feed() did not return within 10 s")
    assert.matches("fed:true:end$", out)
  end, 20))
end)
