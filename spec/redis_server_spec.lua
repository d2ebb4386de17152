--- examples/redis_server.lua under `lasync serve`, driven by redis-cli
-- and redis-benchmark (Debian's redis-tools), and by raw bytes where the
-- exact reply matters. The server runs in the background by a shell; the
-- spec finds its pid and port in its log and stops it by that pid.
local lasync = require "lasync"
local helper = require "helper"
local util = require "http_util"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")
local SERVE = "cd %s && (lasync serve examples/redis_server.lua --listen 127.0.0.1:0 "
  .. ">/dev/null 2>%s </dev/null; echo $? >%s) &"

describe("examples/redis_server.lua", function()
  local srv, port  -- the server {pid=, log=, status=} of each test, its port
  local scratch = helper.scratch()

  before_each(function()
    local log = util.touch(scratch.tmp("log"))
    local status = util.touch(scratch.tmp("status"))
    assert(os.execute(SERVE:format(util.quote(ROOT), log, status)))
    srv = {log = function() return helper.read_file(log) end, status = status}
    helper.run(function()
      port = tonumber(util.poll(function() return srv.log():match("listening on 127%.0%.0%.1:(%d+)") end))
    end)
    srv.pid = srv.log():match("lasync%[(%d+)%]")
  end)

  -- SIGTERM: it stops, running on_stop (the sweep's cancel), with status 0.
  after_each(function()
    assert(os.execute("kill -TERM " .. srv.pid))
    local code
    helper.run(function()
      code = util.poll(function() return tonumber(helper.read_file(srv.status)) end)
    end)
    assert.equal(0, code, srv.log())
  end)
  lazy_teardown(scratch.cleanup)

  -- redis-cli -p PORT ARGS...: its stdout.
  local function cli(...)
    local out, err, code = util.run {"redis-cli", "-p", port, ...}
    assert(code == 0, err)
    return out
  end

  -- The raw replies to the bytes sent at once on a new connection,
  -- once the server has answered want bytes' worth or closed.
  local function raw(data, want)
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write(data)
    local got = want and r:readexactly(want) or r:read(-1)
    w:close()
    return got
  end

  it("answers every command through redis-cli", helper.async(function()
    assert.equal("PONG\n", cli("PING"))
    assert.equal("hi there\n", cli("PING", "hi there"))
    assert.equal("echoed\n", cli("ECHO", "echoed"))
    assert.equal("OK\n", cli("SET", "k", "v"))
    assert.equal("v\n", cli("GET", "k"))
    assert.equal("\n", cli("GET", "missing"))
    assert.equal("OK\n", cli("SET", "k", "w", "XX"))
    assert.equal("\n", cli("SET", "k", "x", "NX"))
    assert.equal("w\n", cli("GET", "k"))
    assert.equal("\n", cli("SET", "nx", "x", "XX"))
    assert.equal("OK\n", cli("SET", "nx", "x", "NX"))
    assert.equal("1\n", cli("INCR", "n"))
    assert.equal("2\n", cli("INCR", "n"))
    assert.equal("2\n", cli("GET", "n"))
    assert.equal("OK\n", cli("SET", "big", "9223372036854775806"))
    assert.equal("9223372036854775807\n", cli("INCR", "big"))
    assert.equal("OK\n", cli("MSET", "a", "1", "b", "2"))
    assert.equal("1\n2\n\n", cli("MGET", "a", "b", "c"))
    assert.equal("3\n", cli("EXISTS", "a", "a", "b", "c"))
    assert.equal("2\n", cli("DEL", "a", "b", "c"))
    assert.equal("0\n", cli("EXISTS", "a"))
    assert.equal("4\n", cli("DBSIZE"))  -- k, nx, n, big
    assert.equal("PONG\n", cli("ping"))  -- names in any case
  end, {deadline = 30}))

  it("replies with redis-server's errors", helper.async(function()
    local function reply(...)
      local args = {...}
      local parts = {"*" .. #args .. "\r\n"}
      for _, a in ipairs(args) do parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n" end
      local r, w = lasync.open_connection("127.0.0.1", port)
      w:write(table.concat(parts))
      local line = r:readline()
      w:close()
      return line
    end
    assert.equal("-ERR unknown command 'FOO', with args beginning with: 'a' 'b c' \r\n",
      reply("FOO", "a", "b c"))
    assert.equal("-ERR unknown command 'nope', with args beginning with: \r\n", reply("nope"))
    assert.equal("-ERR wrong number of arguments for 'get' command\r\n", reply("GET"))
    assert.equal("-ERR wrong number of arguments for 'set' command\r\n", reply("set", "k"))
    assert.equal("-ERR wrong number of arguments for 'mset' command\r\n", reply("MSET", "a", "1", "b"))
    assert.equal("-ERR wrong number of arguments for 'ping' command\r\n", reply("PING", "a", "b"))
    assert.equal("+OK\r\n", reply("SET", "s", "text"))
    assert.equal("-ERR value is not an integer or out of range\r\n", reply("INCR", "s"))
    assert.equal("+OK\r\n", reply("SET", "z", "012"))
    assert.equal("-ERR value is not an integer or out of range\r\n", reply("INCR", "z"))
    assert.equal("+OK\r\n", reply("SET", "m", "9223372036854775807"))
    assert.equal("-ERR increment or decrement would overflow\r\n", reply("INCR", "m"))
    assert.equal("-ERR value is not an integer or out of range\r\n", reply("EXPIRE", "s", "soon"))
    assert.equal("-ERR value is not an integer or out of range\r\n", reply("SET", "k", "v", "EX", "x"))
    assert.equal("-ERR invalid expire time in 'set' command\r\n", reply("SET", "k", "v", "PX", "0"))
    assert.equal("-ERR syntax error\r\n", reply("SET", "k", "v", "NX", "XX"))
    assert.equal("-ERR syntax error\r\n", reply("SET", "k", "v", "EX", "1", "PX", "5"))
    assert.equal("-ERR syntax error\r\n", reply("SET", "k", "v", "EX"))
    assert.equal("-ERR Unsupported option NX\r\n", reply("EXPIRE", "s", "5", "NX"))
    -- a protocol error is answered, then the connection closed
    assert.equal("-ERR Protocol error: expected '$', got 'x'\r\n", raw("*1\r\nx\r\n"))
    assert.equal("+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
      raw("PING\r\n*1\r\n$-5\r\n"))
    assert.equal("-ERR Protocol error: invalid multibulk length\r\n", raw("*x\r\n"))
  end, {deadline = 30}))

  -- TTL rounds the seconds left, which may be a whole second less when
  -- the redis-cli calls before it took over half a second (under ASan)
  local function assert_ttl(key, want)
    local got = cli("TTL", key)
    assert.is_true(got == want .. "\n" or got == want - 1 .. "\n", ("TTL %s: %q"):format(key, got))
  end

  it("expires keys: EX and PX with TTL, on access and by the sweep", helper.async(function()
    assert.equal("OK\n", cli("SET", "ex", "v", "EX", "100"))
    assert_ttl("ex", 100)
    assert.equal("OK\n", cli("SET", "ex", "v", "KEEPTTL"))
    assert_ttl("ex", 100)
    assert.equal("OK\n", cli("SET", "plain", "v"))
    assert.equal("-1\n", cli("TTL", "plain"))
    assert.equal("-2\n", cli("TTL", "missing"))
    assert.equal("1\n", cli("EXPIRE", "plain", "50"))
    assert_ttl("plain", 50)
    assert.equal("0\n", cli("EXPIRE", "missing", "50"))
    assert.equal("OK\n", cli("SET", "ex", "v"))  -- SET drops the expiry
    assert.equal("-1\n", cli("TTL", "ex"))
    assert.equal("OK\n", cli("SET", "px", "v", "PX", "100"))
    lasync.sleep(0.3)
    assert.equal("\n", cli("GET", "px"))        -- expired on access
    assert.equal("-2\n", cli("TTL", "px"))
    assert.equal("2\n", cli("DBSIZE"))          -- ex, plain
    assert.equal("1\n", cli("EXPIRE", "plain", "0"))  -- now: deleted
    assert.equal("0\n", cli("EXISTS", "plain"))
    assert.equal("OK\n", cli("SET", "gone", "v", "PX", "50"))
    -- no one touches "gone": the sweep, every second, drops it
    util.poll(function() return cli("DBSIZE") == "1\n" end)
    assert.equal("-1\n", cli("TTL", "ex"))
  end, {deadline = 30}))

  it("answers a pipelined batch in order, inline commands too", helper.async(function()
    local cmds, want = {}, {}
    for i = 1, 2000 do
      cmds[#cmds + 1] = ("*3\r\n$3\r\nSET\r\n$%d\r\nk%d\r\n$1\r\n%d\r\n"):format(#tostring(i) + 1, i, i % 10)
      cmds[#cmds + 1] = ("*2\r\n$4\r\nINCR\r\n$%d\r\nk%d\r\n"):format(#tostring(i) + 1, i)
      want[#want + 1] = "+OK\r\n:" .. (i % 10 + 1) .. "\r\n"
    end
    cmds[#cmds + 1] = "PING\r\n\r\nECHO  two \t \r\nECHO one two\r\n*0\r\nPING\n"
    want[#want + 1] = "+PONG\r\n$3\r\ntwo\r\n-ERR wrong number of arguments for 'echo' command\r\n+PONG\r\n"
    local expect = table.concat(want)
    assert.equal(expect, raw(table.concat(cmds), #expect))
    -- a command split across writes waits for its rest
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write("*2\r\n$4\r\nEC")
    lasync.sleep(0.05)
    w:write("HO\r\n$5\r\nhel")
    lasync.sleep(0.05)
    w:write("lo\r\n")
    assert.equal("$5\r\nhello\r\n", r:readexactly(11))
    w:close()
    -- redis-cli --pipe: raw protocol from stdin, replies counted
    local input = scratch.write("pipe", ("SET p 1\r\nINCR p\r\n"):rep(500) .. "GET p\r\n")
    local out, err, code = util.run {"sh", "-c", ("redis-cli -p %d --pipe < %s"):format(port, input)}
    assert.equal(0, code, err)
    assert.matches("errors: 0, replies: 1001", out)
    assert.equal("2\n", cli("GET", "p"))
  end, {deadline = 30}))

  it("passes a short redis-benchmark, pipelined", helper.async(function()
    local out, err, code = util.run {"redis-benchmark", "-p", port, "-n", "2000", "-P", "16",
      "-t", "ping,set,get,incr,mset", "-q"}
    assert.equal(0, code, err)
    out = out:gsub("[^\n]*\r", "")  -- the progress lines
    for _, test in ipairs {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET %(10 keys%)"} do
      assert.matches("\n?" .. test .. ": [%d.]+ requests per second", out)
    end
    assert.not_matches("[Ee]rror", out .. err)
  end, {deadline = 60}))
end)
