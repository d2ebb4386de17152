--- start_server's limits on each connection (docs/reference.md §8):
-- read_timeout (one read call), write_timeout (output that makes no
-- progress), max_buffer (unsent output), against lasync's own client
-- streams on 127.0.0.1 port 0: a client that drips, one that never reads.
local lasync = require "lasync"
local helper = require "helper"

-- Serves handler with opts; returns the server and a connected client
-- (reader and writer).
local function serve_one(handler, opts)
  local srv = lasync.start_server(handler, "127.0.0.1", 0, opts)
  local _, port = srv:sockname()
  local r, w = lasync.open_connection("127.0.0.1", port)
  return srv, r, w
end

-- Closes the client and the server, once every handler has finished.
local function shut(srv, w)
  w:close()
  srv:close()
  srv:wait_closed()
end

-- A handler that runs fn(reader, writer) and puts its error, or "ok", in
-- the queue.
local function recorded(q, fn)
  return function(r, w)
    local ok, err = pcall(fn, r, w)
    q:put_nowait(ok and "ok" or err)
  end
end

-- A task reading the client until the server closes the connection;
-- returns the bytes read (a reset ends it too).
local function read_to_end(r)
  return lasync.spawn(function()
    local n = 0
    while true do
      local ok, data = pcall(r.read, r, 65536)
      if not ok or data == "" then return n end
      n = n + #data
    end
  end)
end

describe("start_server read_timeout", function()
  it("closes a connection whose line drips in slower than the timeout", helper.async(function()
    local q = lasync.Queue()
    local srv, r, w = serve_one(recorded(q, function(rd) return rd:readline() end),
      {read_timeout = 0.3})
    local reading, sent = read_to_end(r), 0
    while not reading:done() and sent < 200 do  -- hang guard: 10 s of drip
      pcall(w.write, w, "x")
      sent = sent + 1
      lasync.sleep(0.05)
    end
    local err = q:get()
    assert.is_true(lasync.TimeoutError:is(err))
    assert.equal("ETIMEDOUT", err.code)
    assert.matches("read timed out: no complete read in 0.3 s", err.message, 1, true)
    assert.is_true(reading:done(), "the client still connected after 200 bytes")
    assert.is_true(sent < 200)
    shut(srv, w)
  end, 15))

  it("bounds each read call, not the connection", helper.async(function()
    local q = lasync.Queue()
    local srv, r, w = serve_one(recorded(q, function(rd, wr)
      for line in rd:lines() do wr:write(line .. "\n") end
    end), {read_timeout = 0.5})
    for i = 1, 15 do  -- 15 lines, 0.05 s apart: longer than one timeout in all
      w:write("line " .. i .. "\n")
      assert.equal("line " .. i .. "\n", r:readline())
      lasync.sleep(0.05)
    end
    w:write_eof()
    assert.equal("ok", q:get())
    shut(srv, w)
  end, 15))

  it("raises TimeoutError from read(), readexactly() and readuntil() too", helper.async(function()
    local q = lasync.Queue()
    local srv, r, w = serve_one(recorded(q, function(rd)
      local got = rd:readexactly(2)
      assert(got == "ab")
      return rd:readuntil("END")
    end), {read_timeout = 0.3})
    w:write("ab")
    w:write("E")  -- the separator never completes
    local err = q:get()
    assert.is_true(lasync.TimeoutError:is(err))
    assert.matches("read timed out", err.message, 1, true)
    assert.equal(0, read_to_end(r):await())
    shut(srv, w)
  end, 15))
end)

describe("start_server write_timeout", function()
  it("closes a connection whose peer never reads while the handler drains", helper.async(function()
    local q = lasync.Queue()
    local chunk = ("y"):rep(65536)
    local srv, r, w = serve_one(recorded(q, function(_, wr)
      for _ = 1, 10000 do  -- 640 MiB: a hang guard
        wr:write(chunk)
        wr:drain()
      end
    end), {write_timeout = 0.3})
    local err = q:get()  -- the client reads nothing until then
    assert.is_true(lasync.TimeoutError:is(err))
    assert.equal("ETIMEDOUT", err.code)
    assert.matches("write timed out: no output sent for 0.3 s", err.message, 1, true)
    assert.is_true(read_to_end(r):await() < 10000 * #chunk)
    shut(srv, w)
  end, 15))

  it("leaves a slow reader that makes progress alone", helper.async(function()
    local q = lasync.Queue()
    local chunk, n = ("z"):rep(65536), 16
    local srv, r, w = serve_one(recorded(q, function(_, wr)
      for _ = 1, n do
        wr:write(chunk)
        wr:drain()
      end
      wr:close()
    end), {write_timeout = 0.5})
    local got = 0
    while true do
      local data = r:read(16384)
      if data == "" then break end
      got = got + #data
      lasync.sleep(0.01)
    end
    assert.equal(n * #chunk, got)
    assert.equal("ok", q:get())
    shut(srv, w)
  end, 30))
end)

describe("start_server max_buffer", function()
  it("fails the write that takes unsent output past it", helper.async(function()
    local q = lasync.Queue()
    local chunk, wrote = ("m"):rep(65536), 0
    local srv, r, w = serve_one(recorded(q, function(_, wr)
      for _ = 1, 1000 do  -- 64 MiB: a hang guard
        wr:write(chunk)
        wrote = wrote + 1
      end
    end), {max_buffer = 1024 * 1024})
    local err = q:get()
    assert.is_true(lasync.OSError:is(err))
    assert.equal("ENOBUFS", err.code)
    assert.matches("unsent output passed max_buffer (1048576 bytes)", err.message, 1, true)
    assert.is_true(wrote < 1000)
    read_to_end(r):await()
    shut(srv, w)
  end, 15))

  it("applies to start_unix_server too", helper.async(function()
    local path = os.tmpname()
    os.remove(path)  -- a socket goes there
    local q = lasync.Queue()
    local srv = lasync.start_unix_server(recorded(q, function(_, wr)
      for _ = 1, 1000 do wr:write(("u"):rep(65536)) end
    end), path, {max_buffer = 65536})
    local r, w = lasync.open_unix_connection(path)
    assert.equal("ENOBUFS", q:get().code)
    read_to_end(r):await()
    shut(srv, w)
  end, 15))
end)

describe("start_server limits options", function()
  it("rejects values that are not positive numbers, naming the option", helper.async(function()
    local h = function() end
    for _, case in ipairs {
      {{read_timeout = 0}, "opts.read_timeout must be a positive number of seconds"},
      {{write_timeout = -1}, "opts.write_timeout must be a positive number of seconds"},
      {{read_timeout = "1"}, "opts.read_timeout must be a positive number of seconds"},
      {{max_buffer = 1.5}, "opts.max_buffer must be a positive integer"},
      {{max_buffer = 0}, "opts.max_buffer must be a positive integer"},
    } do
      local err = helper.error_of(lasync.start_server, h, "127.0.0.1", 0, case[1])
      assert.matches(case[2], tostring(err), 1, true)
    end
  end))
end)
