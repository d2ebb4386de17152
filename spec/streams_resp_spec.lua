--- reader:readresp (docs/reference.md §8, src/resp.c): redis's RESP2
-- requests framed from the stream's input, multibulk and inline, across
-- chunks and past the limit, nowait, the end of input, protocol errors.
-- examples/redis_server.lua's spec drives it with redis's own clients.
local lasync = require "lasync"
local helper = require "helper"
local util = require "streams_util"

describe("stream:readresp", function()
  it("frames multibulk and inline commands into argv; nil at the end", helper.async(function()
    local c, s, done = util.pair()
    c:write("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n  GET\t k  \r\n\r\n*0\r\n*-1\r\nPING\n")
    local argv = {}
    assert.equal(3, s:readresp(argv))
    assert.same({"SET", "k", ""}, argv)
    assert.equal(2, s:readresp(argv))
    assert.same({"GET", "k", ""}, argv)  -- argv[3] is left: argc says how many
    assert.equal(1, s:readresp(argv))     -- empty commands skipped
    assert.equal("PING", argv[1])
    assert.is_false(s:readresp(argv, true))  -- nothing buffered: no wait
    -- at the end of input: nil, a partial command dropped
    c:write("*2\r\n$4\r\nECHO\r\n$3\r\nab")
    c:write_eof()
    assert.is_nil(s:readresp(argv))
    assert.equal("", s:read())
    done()
  end))

  -- up to 32 arguments are kept from one scan, more take a second one
  it("frames commands of 1 to 40 arguments, multibulk and inline", helper.async(function()
    local c, s, done = util.pair()
    local want = {}
    for n = 1, 40 do
      local args, wire = {}, {"*" .. n .. "\r\n"}
      for i = 1, n do
        args[i] = ("a%d.%d"):format(n, i)
        wire[#wire + 1] = ("$%d\r\n%s\r\n"):format(#args[i], args[i])
      end
      want[n] = args
      c:write(table.concat(wire) .. table.concat(args, " ") .. "\r\n")
    end
    for n = 1, 40 do
      for _ = 1, 2 do
        local argv = {}
        assert.equal(n, s:readresp(argv))
        assert.same(want[n], argv)
      end
    end
    done()
  end))

  it("waits for a command split across chunks, and reads past the limit for a bulk",
    helper.async(function()
      local c, s, done = util.pair {limit = 1024}
      local big = ("v"):rep(100000)
      local t = lasync.spawn(util.trickle, c, {"*2\r\n$4\r\nEC", "HO\r\n$100000\r\n",
        big:sub(1, 50000), big:sub(50001) .. "\r\n"})
      local argv = {}
      assert.equal(2, s:readresp(argv))
      t:await()
      assert.is_true(argv[1] == "ECHO" and argv[2] == big)
      done()
    end))

  it("returns nil and redis's protocol error, the input dropped", helper.async(function()
    local short = {  -- then PING, which is dropped with the rest
      ["*1\r\n+x\r\n"] = "Protocol error: expected '$', got '+'",
      ["*1\r\n$x\r\n"] = "Protocol error: invalid bulk length",
      ["*1\r\n$536870913\r\n"] = "Protocol error: invalid bulk length",
      ["*1048577\r\n"] = "Protocol error: invalid multibulk length",
      ["*+1\r\n"] = "Protocol error: invalid multibulk length",
      ["*1\r\n$-1\r\n"] = "Protocol error: invalid bulk length",
    }
    local long = {  -- no end of line within 64 KiB
      [("x"):rep(70000)] = "Protocol error: too big inline request",
      ["*" .. ("1"):rep(70000)] = "Protocol error: too big mbulk count string",
      ["*1\r\n$" .. ("1"):rep(70000)] = "Protocol error: too big bulk count string",
    }
    for cases, after in pairs {[short] = "PING\r\n", [long] = ""} do
      for input, want in pairs(cases) do
        local c, s, done = util.pair {limit = 128 * 1024}
        c:write(input .. after)
        local argc, err = s:readresp({})
        assert.is_nil(argc)
        assert.equal(want, err)
        assert.is_false(s:readresp({}, true))
        done()
      end
    end
  end))

  it("checks its argument", helper.async(function()
    local _, s, done = util.pair()
    assert.matches("bad argument #2 .*%(table expected, got no value%)",
      helper.error_of(s.readresp, s))
    assert.matches("bad argument #2 .*%(table expected, got string%)",
      helper.error_of(s.readresp, s, "argv"))
    done()
  end))
end)

describe("lasync.resp_encode", function()
  it("encodes bulk strings, integers, the null bulk and arrays", function()
    local enc = lasync.resp_encode
    assert.equal("$3\r\nabc\r\n", enc("abc"))
    assert.equal("$0\r\n\r\n", enc(""))
    assert.equal("$5\r\na\0\r\nb\r\n", enc("a\0\r\nb"))
    for _, n in ipairs {255, 256, 257, 70000} do  -- made on the C stack up to 256
      local s = ("x"):rep(n)
      assert.equal(("$%d\r\n%s\r\n"):format(n, s), enc(s))
    end
    for _, n in ipairs {0, 7, -1, 10, 1234567890, math.maxinteger, math.mininteger} do
      assert.equal((":%d\r\n"):format(n), enc(n))
    end
    assert.equal("$-1\r\n", enc(nil))
    assert.equal("$-1\r\n", enc(false))
    assert.equal("*0\r\n", enc({}))
    assert.equal("*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n$0\r\n\r\n", enc({"a", {1, false}, ""}))
  end)

  it("names argument #1 and what it expects on anything else", function()
    for _, v in ipairs {1.5, true, print, {2.5}} do
      local ok, err = pcall(lasync.resp_encode, v)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'resp_encode' %(a string, an integer, nil, false or "
        .. "an array of them expected, got ", err)
    end
    local cycle = {}
    cycle[1] = cycle
    assert.error_matches(function() lasync.resp_encode(cycle) end,
      "arrays nested deeper than 32")
    assert.error_matches(function() lasync.resp_encode() end, "bad argument #1")
  end)
end)
