--- examples/thread_hash.lua, run as `lasync run` runs it (scripts/ is first
-- on PATH under `make test`): its hashes against coreutils' sha256sum, and
-- the server it runs beside the threads answering meanwhile.
local helper = require "helper"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local shell = helper.shell

describe("examples/thread_hash.lua", function()
  it("prints what sha256sum prints, and the server answered meanwhile", function()
    local s = helper.scratch()
    local files = {s.write("empty", "")}
    -- lengths about the 64-byte blocks and the 56-byte padding limit
    for _, n in ipairs {1, 55, 56, 63, 64, 65, 119, 120, 1000} do
      files[#files + 1] = s.write("len" .. n, ("\0a\255"):rep(n):sub(1, n))
    end
    local bytes = {}
    for i = 1, 200000 do bytes[i] = string.char((i * 7919) % 256) end
    files[#files + 1] = s.write("binary", table.concat(bytes))
    local args = {}
    for i, f in ipairs(files) do args[i] = quote(f) end
    args = table.concat(args, " ")
    local out, code = shell("lasync run " .. quote(ROOT .. "examples/thread_hash.lua")
                            .. " " .. args)
    -- sha256sum is not lasync: no sanitizer runtime for it
    local want = shell("unset LD_PRELOAD; sha256sum " .. args)
    s.cleanup()
    assert.equal(0, code)
    local hashes, answered = out:match("^(.*\n)the server answered (%d+) requests")
    assert.equal(want, hashes)
    assert.is_true(tonumber(answered) >= 1)
  end)
end)
