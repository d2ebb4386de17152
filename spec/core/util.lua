--- Helpers shared by the core specs: catching errors, running a Lua script
-- in a child process, this process's pid, and fds to watch.
--   local util = require "core.util"
local helper = require "helper"

local M = {}

M.error_of = helper.error_of

--- Asserts that fn(...) raises an error whose text contains every string
-- given in `parts` (plain find); returns the error text.
function M.raises(parts, fn, ...)
  local msg = tostring(M.error_of(fn, ...))
  for _, p in ipairs(parts) do
    assert(msg:find(p, 1, true), ("error %q lacks %q"):format(msg, p))
  end
  return msg
end

--- The pid of this Lua process (Linux: /proc/self/stat).
function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

local read_all = helper.read_file

--- Runs the Lua source `code` in a child lua5.4 with the same module paths
-- and the extra environment `env` (name -> value). Returns stdout, stderr
-- and the exit status.
function M.run_script(code, env)
  local script, out, err = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local vars = {}
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "='" .. v .. "'" end
  local cmd = ("env %s %s %s >%s 2>%s"):format(table.concat(vars, " "),
    os.getenv("LASYNC_LUA") or "lua5.4", script, out, err)
  local _, _, status = os.execute(cmd)
  local o, e = read_all(out), read_all(err)
  os.remove(script); os.remove(out); os.remove(err)
  return o, e, status
end

-- The fd number in this process of the open file whose /proc link is
-- `target` (a path).
local function fd_of(target)
  local ls = assert(io.popen("ls -l /proc/" .. M.pid() .. "/fd"))
  local fd
  for line in ls:lines() do
    local n, t = line:match("(%d+) %-> (.*)$")
    if t == target then fd = tonumber(n) end
  end
  ls:close()
  return assert(fd, "no fd open on " .. target)
end

--- Opens `path` with io.open in `mode`; returns the file and its fd.
function M.open_fd(path, mode)
  local f = assert(io.open(path, mode))
  return f, fd_of(path)
end

--- A new named pipe opened for reading and writing (Linux does not block
-- on that): returns the file, its fd, a function that closes and removes
-- it, and its path. Readable once written to (and flushed), writable while
-- its buffer has room.
function M.fifo()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkfifo " .. path))
  local f, fd = M.open_fd(path, "r+")
  return f, fd, function() f:close(); os.remove(path) end, path
end

return M
