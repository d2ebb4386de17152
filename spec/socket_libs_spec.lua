--- Real libraries written for LuaSocket, no one here wrote them, running
-- unchanged inside tasks through lasync.socket.install() (issue 14, item
-- 4): Debian's lua-redis against redis-server, LuaSocket's own socket.http
-- with ltn12 sinks against lasync.http, socket.smtp against Python's
-- aiosmtpd. Each server is started here and stopped by PID.
local lasync = require "lasync"
local helper = require "helper"
local http_util = require "http_util"
local compat = require "socklibs.compat"

local HERE = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

-- Runs fn inside a task (deadline: 20 s) with install() done;
-- package.loaded is put back afterwards.
local function async_installed(fn)
  return helper.async(function() return compat.installed(fn) end, 20)
end

-- Runs fn(1) .. fn(n) in n tasks of a task group: the first error cancels
-- the others and is raised.
local function run_tasks(n, fn)
  local ok, err = pcall(lasync.task_group, function(tg)
    for i = 1, n do tg:spawn(fn, i) end
  end)
  if not ok then error(type(err) == "table" and err.errors and err.errors[1] or err, 0) end
end

-- A task sleeping 10 ms at a time until stop() is called; stop() returns
-- the number of ticks and the longest gap between two of them.
local function ticker()
  local ticks, gap, running = 0, 0, true
  local t = lasync.spawn(function()
    local last = lasync.time()
    while running do
      lasync.sleep(0.01)
      local now = lasync.time()
      ticks, gap, last = ticks + 1, math.max(gap, now - last), now
    end
  end)
  return function()
    running = false
    t:await()
    return ticks, gap
  end
end

-- lua-redis 2.0.5's pipeline() stores each command's parser, always nil,
-- with table.insert(t, #requests, nil): Lua 5.3+ rejects that ("position
-- out of bounds"; 5.1 did not check), whatever the sockets. While this
-- describe runs, table.insert accepts it as 5.1 did; nothing else changes.
local insert = table.insert
local function lua51_insert(t, ...)
  if select("#", ...) == 2 then
    local pos, v = ...
    if v == nil and pos > #t + 1 then return end
  end
  return insert(t, ...)
end

describe("lua-redis over lasync.socket", function()
  local server

  setup(function()
    server = compat.start_redis()
    table.insert = lua51_insert  -- luacheck: ignore 122
  end)
  teardown(function()
    table.insert = insert  -- luacheck: ignore 122
    if server then server.stop() end
  end)

  it("50 tasks: SET/GET/INCR and pipelines, while a 10 ms ticker keeps its beat",
    async_installed(function()
      local redis = require "redis"
      local N, ROUNDS = 50, 60
      local stop = ticker()
      local start = lasync.time()
      run_tasks(N, function(i)
        local c = redis.connect("127.0.0.1", server.port)
        for r = 1, ROUNDS do
          local key, value = ("k:%d:%d"):format(i, r), ("v%d-%d-"):format(i, r) .. ("x"):rep(i * 10)
          assert(c:set(key, value))
          assert.equal(value, c:get(key))
          c:incr("lasync:counter")
        end
        local replies = c:pipeline(function(p)
          for r = 1, ROUNDS do
            p:set(("p:%d:%d"):format(i, r), tostring(i * r))
            p:get(("p:%d:%d"):format(i, r))
            p:incrby("lasync:piped", r)
          end
        end)
        assert.equal(3 * ROUNDS, #replies)
        for r = 1, ROUNDS do assert.equal(tostring(i * r), replies[3 * r - 1]) end
        c:quit()
      end)
      local elapsed = lasync.time() - start
      local ticks, gap = stop()
      local c = redis.connect("127.0.0.1", server.port)
      assert.equal(N * ROUNDS, tonumber(c:get("lasync:counter")))
      assert.equal(N * ROUNDS * (ROUNDS + 1) // 2, tonumber(c:get("lasync:piped")))
      assert.equal("v7-3-" .. ("x"):rep(70), c:get("k:7:3"))
      c:quit()
      -- Blocking sockets would freeze the ticker for the whole work: one gap
      -- as long as the work. Bounds loose enough for valgrind's slowness.
      local beat = ("%d ticks, longest gap %.3f s, in %.3f s of work"):format(ticks, gap, elapsed)
      assert.is_true(ticks >= 1 and ticks >= elapsed / 0.01 / 20, beat)
      assert.is_true(gap < math.max(elapsed / 2, 0.15), beat)
    end))

  it("docs/luasocket.md shows examples/redis_tasks.lua as it is", function()
    local page = helper.read_file("docs/luasocket.md")
    local section = assert(page:match("\n## Using LuaSocket libraries\n(.*)"))
    assert.equal(helper.read_file("examples/redis_tasks.lua"), section:match("```lua\n(.-)```"))
  end)

  it("examples/redis_tasks.lua runs as docs/luasocket.md shows", function()
    local out, code = helper.shell(("REDIS_PORT=%d scripts/lasync run examples/redis_tasks.lua 2>&1")
      :format(server.port))
    assert.equal(0, code, out)
    assert.equal("counter = 1000 after 100 tasks\nk:42 = 42\n", out)
  end)
end)

describe("socket.http over lasync.socket", function()
  it("20 tasks at once, bodies into ltn12 sinks; a POST from an ltn12 source",
    async_installed(function()
      local http, ltn12 = require "socket.http", require "ltn12"
      local srv, port = http_util.serve(function(req)
        if req.method == "POST" then return 201, "got:" .. req.body end
        local n = tonumber(req.path:match("^/(%d+)$"))
        return 200, ("%d;"):format(n):rep(n * 100)
      end)
      local bodies = {}
      run_tasks(20, function(i)
        local sink = {}
        local one, code, headers = http.request {
          url = http_util.url(port, "/" .. i), sink = ltn12.sink.table(sink)}
        assert.same({1, 200}, {one, code})
        bodies[i] = table.concat(sink)
        assert.equal(tostring(#bodies[i]), headers["content-length"])
      end)
      for i = 1, 20 do assert.equal(("%d;"):format(i):rep(i * 100), bodies[i]) end
      local sink = {}
      local one, code = http.request {
        url = http_util.url(port, "/post"), method = "POST",
        source = ltn12.source.string("hello"), sink = ltn12.sink.table(sink),
        headers = {["content-length"] = "5"}}
      assert.same({1, 201, "got:hello"}, {one, code, table.concat(sink)})
      -- The simple form: the body as the first result.
      assert.equal(("3;"):rep(300), (http.request(http_util.url(port, "/3"))))
      http_util.stop(srv)
    end))
end)

describe("socket.smtp over lasync.socket", function()
  local sink, scratch, mails

  setup(function()
    scratch = helper.scratch()
    mails = scratch.tmp("mails")
    sink = http_util.start_python(scratch, "smtp",
      "env -u LD_PRELOAD " .. http_util.PYTHON .. " " .. http_util.quote(HERE .. "socklibs/smtp_sink.py"),
      http_util.quote(mails))
  end)
  teardown(function()
    if sink then sink.stop() end
    scratch.cleanup()
  end)

  it("socket.smtp.send delivers a message to aiosmtpd", async_installed(function()
    local smtp = require "socket.smtp"
    local r = table.pack(smtp.send {
      from = "<alice@example.org>", rcpt = {"<bob@example.org>", "<carol@example.org>"},
      server = "127.0.0.1", port = sink.port,
      source = smtp.message {
        headers = {to = "bob@example.org", subject = "lasync"},
        body = "hello from a task\r\nsecond line"}})
    assert.same({1, n = 1}, r)
    local got = http_util.poll(function()
      local f = io.open(mails)
      local s = f and f:read("a")
      if f then f:close() end
      return s and s:find("\nEND\n") and s
    end)
    assert.truthy(got:find("FROM alice@example.org\nRCPT bob@example.org\nRCPT carol@example.org\n", 1, true))
    assert.truthy(got:find("Subject: lasync\r\n", 1, true), got)
    assert.truthy(got:find("hello from a task\r\nsecond line", 1, true), got)
  end))
end)
