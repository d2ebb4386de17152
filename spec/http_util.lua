--- Helpers shared by the HTTP server specs (spec/http/*_spec.lua): a
-- server on 127.0.0.1 with a free port, clients no one here wrote (curl,
-- Python's http.client) run as subprocesses, and raw connections.
--   local util = require "http_util"
local lasync = require "lasync"
local http = require "lasync.http"
local helper = require "helper"

local M = {}

--- Serves handler on 127.0.0.1 (opts as http.serve's); returns the
-- server and its port.
function M.serve(handler, opts)
  opts = opts or {}
  opts.host, opts.port = "127.0.0.1", 0
  local srv = http.serve(handler, opts)
  local _, port = srv:sockname()
  return srv, port
end

--- Closes srv and waits until every connection has ended.
M.stop = require("streams_util").stop

--- A shell word for s.
function M.quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Polls fn() every 10 ms until it returns a true value; returns it.
function M.poll(fn)
  while true do
    local v = fn()
    if v then return v end
    lasync.sleep(0.01)
  end
end

--- Creates an empty file at path; returns path.
function M.touch(path)
  assert(io.open(path, "w")):close()
  return path
end

local runs = 0

--- Runs argv in the background (lasync has no subprocesses yet: a shell
-- runs it, its output goes to files) and waits, the loop running, until
-- it exits; returns its stdout, stderr and exit status. The clients run
-- without the sanitizer runtime that `make test-asan` preloads: they are
-- not lasync, and LeakSanitizer fails them on their own leaks.
function M.run(argv)
  local words = {"env", "-u", "LD_PRELOAD"}
  for _, a in ipairs(argv) do words[#words + 1] = M.quote(tostring(a)) end
  runs = runs + 1
  local base = ("%s-http-%d-%d"):format(os.tmpname(), runs, math.random(1e9))
  local out, err, status = base .. ".out", base .. ".err", M.touch(base .. ".status")
  assert(os.execute(("(%s >%s 2>%s </dev/null; echo $? >%s) &"):format(
    table.concat(words, " "), out, err, status)))
  local code = M.poll(function() return tonumber(helper.read_file(status)) end)
  local o, e = helper.read_file(out), helper.read_file(err)
  for _, path in ipairs {base, out, err, status} do os.remove(path) end
  return o, e, code
end

--- curl -sS ARGS...: its stdout, stderr and exit status.
function M.curl(...)
  return M.run {"curl", "-sS", ...}
end

--- Debian's Python 3, where the python3-* packages of `make test`'s
-- dependencies are (another python3 may come first in PATH).
M.PYTHON = "/usr/bin/python3"

--- Runs the Python 3 program src (its argv: the port then args); returns
-- its stdout, failing with its stderr when it fails.
function M.python(src, port, ...)
  local out, err, code = M.run {M.PYTHON, "-c", src, tostring(port), ...}
  assert(code == 0, err)
  return out
end

--- Starts a Python server that writes its port to the file named by its
-- argument after words (a shell command, quoted) and before args (shell
-- words): pyserver.py, the WebSocket peer. Returns {port=, pid=, stop=};
-- stop() kills it by its pid.
function M.start_python(scratch, name, words, args)
  local portfile = scratch.tmp(name .. "-port")
  os.remove(portfile)
  local p = assert(io.popen(("%s %s %s >/dev/null 2>&1 & echo $!")
    :format(words, M.quote(portfile), args or "")))
  local pid = p:read("l")
  p:close()
  local port
  for _ = 1, 500 do  -- 10 s at most
    local f = io.open(portfile)
    if f then
      port = f:read("n")
      f:close()
      break
    end
    os.execute("sleep 0.02")
  end
  assert(port, name .. ": the Python server did not start")
  return {port = port, pid = pid, stop = function() os.execute("kill " .. pid) end}
end

--- http://127.0.0.1:port/path
function M.url(port, path)
  return ("http://127.0.0.1:%d%s"):format(port, path or "/")
end

--- Writes data on a new connection to port, then reads until the server
-- closes it; returns what it sent.
function M.raw(port, data)
  local r, w = lasync.open_connection("127.0.0.1", port)
  w:write(data)
  local got = r:read(-1)
  w:close()
  return got
end

--- The responses in data (raw HTTP/1.1 with Content-Length bodies):
-- a list of {status=, headers= (lowercased names), body=}.
function M.responses(data)
  local list, pos = {}, 1
  while pos <= #data do
    local head_end = assert(data:find("\r\n\r\n", pos, true), "no end of head")
    local head = data:sub(pos, head_end - 1)
    local res = {status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)")), headers = {}}
    for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
      res.headers[name:lower()] = value
    end
    local n = tonumber(res.headers["content-length"] or 0)
    res.body = data:sub(head_end + 4, head_end + 3 + n)
    list[#list + 1] = res
    pos = head_end + 4 + n
  end
  return list
end

return M
