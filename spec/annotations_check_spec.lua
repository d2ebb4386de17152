-- .ci/check_annotations.lua (`make lint`): it fails on a public name of the
-- reference without annotation and on a ---@param naming no argument, and
-- passes on the real tree.
local helper = require "helper"

local LUA = os.getenv("LASYNC_LUA") or "lua5.4"

-- Runs the checker on ref and the sources; returns its output and status.
local function check(ref, ...)
  local cmd = {LUA, ".ci/check_annotations.lua", "--ref", ref, ...}
  return helper.shell(table.concat(cmd, " ") .. " 2>&1")
end

-- The checker's output on the fixtures, which must fail it.
local function fails(s, ref, module, meta)
  local out, code = check(s.write("ref.md", ref), s.write("mod.lua", module),
                          s.write("meta.lua", meta))
  assert.equal(1, code, out)
  return out
end

local REF = [[
- `lasync.frob(a, b)` — frobs.
- `thing:twiddle(x)`, and `poke()`.
- `lasync.twirl(x)`: a copy.
```lua
lasync.in_a_code_block()
```
]]

local MODULE = [[
local thing = require "Thing"

---@class lasync
local M = {}

M.twirl = thing.twiddle

--- Frobs a with b.
---@param a integer
---@param b? string
---@return boolean
function M.frob(a, b) return a, b end

return M
]]

local META = [[
---@meta
---@class Thing
local Thing = {}

--- Twiddles.
---@param x number
function Thing:twiddle(x) end

--- Pokes.
function Thing:poke() end
]]

describe("check_annotations", function()
  local s
  before_each(function() s = helper.scratch() end)
  after_each(function() s.cleanup() end)

  it("passes when every public name is annotated", helper.async(function()
    local out, code = check(s.write("ref.md", REF), s.write("mod.lua", MODULE),
                            s.write("meta.lua", META))
    assert.equal(0, code, out)
    assert.matches("4 public names of .* annotated", out)
  end))

  it("lists the names it found with -v, code blocks left out", helper.async(function()
    local out = check(s.write("ref.md", REF), "-v", s.write("mod.lua", MODULE),
                      s.write("meta.lua", META))
    assert.matches("ref.md:1: frob %(lasync%): annotated", out)
    assert.matches("ref.md:2: twiddle %(any class%): annotated", out)
    assert.matches("ref.md:2: poke %(any class%): annotated", out)
    assert.matches("ref.md:3: twirl %(lasync%): annotated", out)
    assert.not_matches("in_a_code_block", out)
  end))

  it("fails on a public name without annotation", helper.async(function()
    local out = fails(s, REF, MODULE, (META:gsub("%-%-%- Pokes%.\n", "")))
    assert.matches("ref.md:2: poke %(any class%) has no annotation", out)
    assert.matches("check_annotations: 1 problems", out)
  end))

  it("fails on a public name of another class than its prefix's", helper.async(function()
    local out = fails(s, "`lasync.twiddle(x)`\n", MODULE, META)
    assert.matches("twiddle %(lasync%) has no annotation", out)
  end))

  it("fails on a copy of a function without annotation", helper.async(function()
    local out = fails(s, REF, (MODULE:gsub("thing%.twiddle", "thing.untold")), META)
    assert.matches("ref.md:3: twirl %(lasync%) has no annotation", out)
  end))

  it("fails on a ---@param that names no argument", helper.async(function()
    local out = fails(s, REF, (MODULE:gsub("@param b%?", "@param c?")), META)
    assert.matches("mod.lua:12: %-%-%-@param c: lasync.frob takes no argument 'c'", out)
    -- and b, now without its @param, is reported too
    assert.matches("argument 'b' has no %-%-%-@param", out)
  end))

  it("passes on the real tree", helper.async(function()
    local files = {}
    for f in helper.shell("ls lua/lasync/*.lua lua/lasync/*/*.lua"):gmatch("%S+") do
      files[#files + 1] = f
    end
    local out, code = check("docs/reference.md", table.unpack(files))
    assert.equal(0, code, out)
    assert.matches("check_annotations: %d+ public names of docs/reference.md annotated", out)
  end))
end)
