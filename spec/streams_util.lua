--- Helpers shared by the stream specs (spec/streams_*_spec.lua): servers on
-- 127.0.0.1 with a free port, connected pairs of streams, resident memory.
--   local util = require "streams_util"
local lasync = require "lasync"

local M = {}

--- An echo handler (examples/echo.lua): sends back every chunk it reads
-- until the end of input.
M.echo = dofile(debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")
                .. "examples/echo.lua")

--- Starts a server for handler on 127.0.0.1; returns it and its port.
function M.server(handler, opts)
  local srv = lasync.start_server(handler, "127.0.0.1", 0, opts)
  local _, port = srv:sockname()
  return srv, port
end

--- Closes srv and waits until every handler has finished.
function M.stop(srv)
  srv:close()
  srv:wait_closed()
end

--- A connected pair: the client's stream and the server's (whose handler
-- waits until done() is called; done() then closes both and the server).
-- opts go to start_server (limit, ...).
function M.pair(opts)
  local got, finish = lasync.Future(), lasync.Future()
  local srv, port = M.server(function(r)
    got:set_result(r)
    finish:await()
  end, opts)
  local client = lasync.open_connection("127.0.0.1", port, opts)
  local server = got:await()
  return client, server, function()
    client:close()
    finish:set_result()
    M.stop(srv)
  end
end

--- Waits until w, closed with output its peer will never read, has let go
-- of its socket: its close ends when the peer's end closes (a reset, or
-- a broken pipe, fails it).
function M.wait_dropped(w)
  local ok, err = pcall(w.wait_closed, w)
  assert(ok or M.is("ConnectionError", err), err)
end

--- Writes each piece with a pause between, so that the reader gets them
-- as separate chunks.
function M.trickle(w, pieces, pause)
  for i, piece in ipairs(pieces) do
    if i > 1 then lasync.sleep(pause or 0.005) end
    w:write(piece)
  end
end

local page_size

--- This process's resident memory, in bytes (Linux: /proc/self/statm).
function M.rss()
  if not page_size then
    local p = assert(io.popen("getconf PAGESIZE"))
    page_size = assert(tonumber(p:read("l")))
    p:close()
  end
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident * page_size
end

--- Is err an instance of the lasync error class cls?
function M.is(cls, err)
  return lasync[cls]:is(err)
end

return M
