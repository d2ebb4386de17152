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
