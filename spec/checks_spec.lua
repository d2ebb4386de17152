-- lasync.checks: the argument checks every Lua module and the command use.
local checks = require "lasync.checks"
local helper = require "helper"

-- The error that fn(...) raises, called from this file.
local function catch(fn, ...)
  local args = table.pack(...)
  local ok, err = pcall(function() fn(table.unpack(args, 1, args.n)) end)
  assert.is_false(ok, "no error raised")
  return err
end

-- An error raised here, at a line of this file.
local function here(msg)
  return "^spec/checks_spec%.lua:%d+: " .. msg .. "$"
end

local function raises(msg, fn, ...)
  assert.matches(here(msg), catch(fn, ...))
end

-- A module that declared itself internal, and calls fn from inside it.
local internal = assert(load([[
  local checks = require "lasync.checks"
  checks.internal()
  return function(fn, ...) fn(...) return "returned" end
]], "=internal module"))()

describe("lasync.checks", function()
  describe("misuse", function()
    it("raises at the first caller outside the internal modules", function()
      raises("wrong", internal, checks.misuse, "wrong")
      raises("wrong", internal, internal, checks.misuse, "wrong")
    end)

    it("raises at the caller of a module that is not internal", function()
      local err = catch(assert(load("require('lasync.checks').misuse('x')", "=outside")))
      assert.are.equal("outside:1: x", err)
    end)
  end)

  it("argerror: bad argument #n to 'fname' (msg)", function()
    raises("bad argument #2 to 'f' %(no good%)", internal, checks.argerror, 2, "f", "no good")
  end)

  it("bad_self: calling 'fname' on bad self, with the class's name", function()
    raises("calling 'm' on bad self %(Thing expected, got number%)",
           checks.bad_self, 1, {__name = "Thing"}, "m")
  end)

  describe("task", function()
    it("raises outside a task", function()
      raises("f called outside a task", checks.task, "f")
    end)

    it("returns the running task inside one", helper.async(function()
      assert.are.equal(require("lasync").current_task(), checks.task("f"))
    end))
  end)

  it("typename: a metatable's string __name, else the type", function()
    assert.are.equal("number", checks.typename(1))
    assert.are.equal("nil", checks.typename(nil))
    assert.are.equal("Thing", checks.typename(setmetatable({}, {__name = "Thing"})))
    assert.are.equal("table", checks.typename(setmetatable({}, {__name = 42})))
    assert.are.equal("table", checks.typename(setmetatable({}, {__metatable = "locked"})))
  end)

  it("is_callable: a function or a value with __call", function()
    local callable_table = setmetatable({}, {__call = function() end})
    assert.is_true(checks.is_callable(print))
    assert.is_true(checks.is_callable(function() end))
    assert.is_true(checks.is_callable(callable_table))
    assert.is_true(checks.is_callable(setmetatable({}, {__call = callable_table})))
    for _, v in ipairs {{}, "f", 1, true, setmetatable({}, {})} do
      assert.is_false(checks.is_callable(v))
    end
    assert.is_false(checks.is_callable(nil))
  end)

  it("errtext: the text of an error value, as lua.c shows it", function()
    assert.are.equal("boom", checks.errtext("boom"))
    assert.are.equal("42", checks.errtext(42))
    assert.are.equal("E: x", checks.errtext(setmetatable({}, {__tostring = function() return "E: x" end})))
    assert.are.equal("(error object is a table value)", checks.errtext({}))
    -- a table error with no __tostring: its message, if it has one
    assert.are.equal("m", checks.errtext({message = "m"}))
    assert.are.equal("(error object is a table value)", checks.errtext({message = 1}))
    assert.are.equal("(error object is a nil value)", checks.errtext(nil))
  end)

  it("check: raises what expected, got the type name, unless ok", function()
    checks.check(true, nil, 1, "f", "thing")
    raises("bad argument #1 to 'f' %(thing expected, got nil%)", checks.check, false, nil, 1, "f", "thing")
    raises("bad argument #3 to 'f' %(thing expected, got Thing%)",
           checks.check, false, setmetatable({}, {__name = "Thing"}), 3, "f", "thing")
  end)

  it("callable: a function expected, or what is named", function()
    checks.callable(print, 1, "f")
    checks.callable(setmetatable({}, {__call = print}), 1, "f")
    raises("bad argument #1 to 'f' %(function expected, got table%)", checks.callable, {}, 1, "f")
    raises("bad argument #2 to 'f' %(handler expected, got nil%)", checks.callable, nil, 2, "f", "handler")
  end)

  describe("integer", function()
    it("returns an integer in range, floats with an integer value included", function()
      assert.are.equal(0, checks.integer(0, 1, "f", 0))
      assert.are.equal("integer", math.type(checks.integer(3.0, 1, "f", 1)))
      assert.are.equal(65535, checks.integer(65535, 1, "f", 0, 65535, "port"))
    end)

    it("shows a number by value, anything else by type", function()
      raises("bad argument #1 to 'f' %(non%-negative integer expected, got %-1%)",
             checks.integer, -1, 1, "f", 0)
      raises("bad argument #1 to 'f' %(positive integer expected, got 0%)",
             checks.integer, 0, 1, "f", 1)
      raises("bad argument #1 to 'f' %(positive integer expected, got 1%.5%)",
             checks.integer, 1.5, 1, "f", 1)
      raises("bad argument #2 to 'f' %(port expected, got 65536%)",
             checks.integer, 65536, 2, "f", 0, 65535, "port")
      raises("bad argument #1 to 'f' %(positive integer expected, got string%)",
             checks.integer, "3", 1, "f", 1)
      for _, v in ipairs {math.huge, 0 / 0} do
        assert.matches("got ", catch(checks.integer, v, 1, "f", 0))
      end
    end)
  end)

  describe("list", function()
    local function is_number(v) return type(v) == "number" end

    it("returns the length: list.n, else #list", function()
      assert.are.equal(2, checks.list({1, 2}, 1, "f", is_number, "number"))
      assert.are.equal(0, checks.list({n = 0, "x"}, 1, "f", is_number, "number"))
    end)

    it("rejects what is not a list, a callable table included, and a bad item", function()
      raises("bad argument #1 to 'f' %(list %(number%) expected, got string%)",
             checks.list, "x", 1, "f", is_number, "number")
      raises("bad argument #1 to 'f' %(list %(number%) expected, got table%)",
             checks.list, setmetatable({}, {__call = print}), 1, "f", is_number, "number")
      raises("bad argument #1 to 'f' %(item 2: number expected, got nil%)",
             checks.list, {n = 2, 1}, 1, "f", is_number, "number")
    end)
  end)

  describe("options", function()
    local SPECS = {
      flag = checks.BOOLEAN, delay = checks.NUMBER, size = checks.count(10),
      limit = checks.count(), mode = checks.one_of("a", "b", "c"), any = checks.ANY,
      pair = checks.option("table", "{x, y}", function(v) return #v == 2 end),
    }

    it("accepts nil (an empty table) and a table of good options", function()
      assert.are.same({}, checks.options(nil, 2, "f", SPECS))
      local opts = {flag = false, delay = 0.5, size = 10, limit = math.maxinteger,
                    mode = "b", any = print, pair = {1, 2}}
      assert.are.equal(opts, checks.options(opts, 2, "f", SPECS))
    end)

    it("rejects what is not a table, and unknown options", function()
      raises("bad argument #2 to 'f' %(table of options or nil expected, got string%)",
             checks.options, "x", 2, "f", SPECS)
      raises("bad argument #2 to 'f' %(unknown option 'flg'%)", checks.options, {flg = 1}, 2, "f", SPECS)
      raises("bad argument #2 to 'f' %(unknown option '1'%)", checks.options, {1}, 2, "f", SPECS)
    end)

    it("shows a bad value of the right type, the type of a wrong one", function()
      local function bad(msg, opts)
        raises("bad argument #4 to 'f' %(" .. msg .. "%)", checks.options, opts, 4, "f", SPECS)
      end
      bad("opts.flag must be a boolean, got number", {flag = 1})
      bad("opts.delay must be a number, got string", {delay = "1"})
      bad("opts.size must be a positive integer %(at most 10%), got 11", {size = 11})
      bad("opts.size must be a positive integer %(at most 10%), got 0", {size = 0})
      bad("opts.limit must be a positive integer, got 1%.5", {limit = 1.5})
      bad("opts.limit must be a positive integer, got string", {limit = "2"})
      bad('opts.mode must be "a", "b" or "c", got "d"', {mode = "d"})
      bad('opts.mode must be "a", "b" or "c", got boolean', {mode = true})
      bad("opts.pair must be {x, y}, got table", {pair = {1}})
      bad("opts.pair must be {x, y}, got string", {pair = "1, 2"})
    end)
  end)
end)
