-- docs/reference.md §6: error classes.
local lasync = require "lasync"
local core = require "lasync.core"
local util = require "core.util"

local API_CLASSES = {
  "CancelledError", "TimeoutError", "InvalidStateError", "IncompleteReadError",
  "LimitOverrunError", "QueueEmpty", "QueueFull", "QueueShutDown",
  "BrokenBarrierError", "TaskGroupError", "OSError", "ConnectionError",
  "HTTPError",
}

describe("error classes", function()
  it("exist in lasync and in lasync.core, the same tables", function()
    for _, name in ipairs(API_CLASSES) do
      assert.are.equal("table", type(lasync[name]), name)
      assert.are.equal(core[name], lasync[name], name)
      assert.are.equal("class " .. name, tostring(lasync[name]))
    end
  end)

  it("are listed once, in core._error_classes, which lasync re-exports whole", function()
    local n = 0
    for name, class in pairs(core._error_classes) do
      n = n + 1
      assert.are.equal("class " .. name, tostring(class))
      assert.are.equal(class, core[name], name)
      assert.are.equal(class, lasync[name], name)
    end
    for _, name in ipairs(API_CLASSES) do assert.is_table(core._error_classes[name], name) end
    assert.is_true(lasync.SSLError:is(lasync.SSLCertVerificationError("x")))
    assert.is_true(n > #API_CLASSES)
  end)

  it("make instances with a message: tostring is 'ClassName: message'", function()
    for _, name in ipairs(API_CLASSES) do
      local e = lasync[name]("went wrong")
      assert.are.equal("went wrong", e.message)
      assert.are.equal(name .. ": went wrong", tostring(e))
      assert.are.equal(lasync[name], getmetatable(e))
      assert.is_true(lasync[name]:is(e))
    end
  end)

  it("show only the class name without a message", function()
    assert.are.equal("TimeoutError", tostring(lasync.TimeoutError()))
    assert.are.equal("TimeoutError", tostring(lasync.TimeoutError("")))
    assert.are.equal("QueueEmpty: 42", tostring(lasync.QueueEmpty(42)))
  end)

  it("take fields", function()
    local e = lasync.OSError("refused", {errno = 111, code = "ECONNREFUSED"})
    assert.are.equal(111, e.errno)
    assert.are.equal("ECONNREFUSED", e.code)
    assert.are.equal("refused", e.message)
    local r = lasync.IncompleteReadError("short", {partial = "ab", expected = 4})
    assert.are.equal("ab", r.partial)
    assert.are.equal(4, r.expected)
    local l = lasync.LimitOverrunError("long", {consumed = 10})
    assert.are.equal(10, l.consumed)
    local errs = {"a", "b"}
    local g = lasync.TaskGroupError("group", {errors = errs})
    assert.are.equal(errs, g.errors)
  end)

  it("let the message argument win over a message field", function()
    assert.are.equal("arg", lasync.OSError("arg", {message = "field"}).message)
  end)

  it("check the fields argument", function()
    util.raises({"bad argument #2 to 'OSError'", "table of fields or nil expected, got number"},
      function() return lasync.OSError("m", 5) end)
  end)

  it("survive error() and pcall as the same value", function()
    local e = lasync.QueueFull("full")
    local ok, got = pcall(error, e)
    assert.is_false(ok)
    assert.are.equal(e, got)
  end)
end)

describe("Class:is", function()
  it("is true for instances of the class and of its subclasses", function()
    local c = lasync.ConnectionError("reset")
    assert.is_true(lasync.ConnectionError:is(c))
    assert.is_true(lasync.OSError:is(c))
    assert.is_true(core.Error:is(c))
    assert.is_false(lasync.TimeoutError:is(c))
    local refused = core.ConnectionRefusedError("no")
    assert.is_true(lasync.ConnectionError:is(refused))
    assert.is_true(lasync.OSError:is(refused))
    for _, name in ipairs(API_CLASSES) do
      assert.is_true(core.Error:is(lasync[name]("x")), name)
    end
  end)

  it("is false for a parent's instances and for other values", function()
    assert.is_false(lasync.ConnectionError:is(lasync.OSError("x")))
    for _, v in ipairs {"CancelledError: x", 1, true, {}, print,
                        setmetatable({}, {}), lasync.OSError} do
      assert.is_false(lasync.CancelledError:is(v))
    end
    assert.is_false(lasync.CancelledError:is(nil))
  end)

  it("knows the errors raised by the core", function()
    local loop = lasync.new_event_loop()
    local f = loop:create_future()
    f:cancel()
    assert.is_true(lasync.CancelledError:is(util.error_of(f.result, f)))
    local g = loop:create_future()
    assert.is_true(lasync.InvalidStateError:is(util.error_of(g.result, g)))
    loop:close()
  end)

  it("checks self", function()
    util.raises({"bad argument #1 to 'is'", "table expected, got string"},
      function() return lasync.OSError.is("x", {}) end)
  end)
end)

describe("core.error_class", function()
  it("makes a class with an optional parent", function()
    local Base = core.error_class("BaseThing")
    local Sub = core.error_class("SubThing", Base)
    local s = Sub("m", {extra = 1})
    assert.are.equal("SubThing: m", tostring(s))
    assert.are.equal(1, s.extra)
    assert.is_true(Base:is(s))
    assert.is_true(Sub:is(s))
    assert.is_false(Sub:is(Base("b")))
    assert.is_false(core.Error:is(Base("b")))
    local OSSub = core.error_class("OSSub", lasync.OSError)
    assert.is_true(lasync.OSError:is(OSSub("x")))
    assert.are.equal("class OSSub", tostring(OSSub))
  end)

  it("checks its arguments", function()
    util.raises({"bad argument #1 to 'error_class'", "string expected, got no value"},
      function() core.error_class() end)
    util.raises({"bad argument #2 to 'error_class'", "table expected, got number"},
      function() core.error_class("X", 3) end)
    util.raises({"bad argument #2 to 'error_class'", "error class expected"},
      function() core.error_class("X", {}) end)
  end)
end)
