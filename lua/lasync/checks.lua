--- lasync.checks: the argument checks the pure-Lua modules share. An error
-- is raised at the user's call: past every frame of a module that declared
-- itself internal, whichever helper found the misuse.
local type, getmetatable, rawget, error = type, getmetatable, rawget, error

local M = {}

local internal = {}

--- Declares the calling module's frames internal: misuse() skips them.
function M.internal()
  internal[debug.getinfo(2, "S").source] = true
end

M.internal()

--- Raises msg at the first caller outside the internal modules.
function M.misuse(msg)
  local level = 2
  local info = debug.getinfo(level, "S")
  while info and internal[info.source] do
    level = level + 1
    info = debug.getinfo(level, "S")
  end
  error(msg, level)
end

--- Raises "bad argument #n to 'fname' (msg)" at the user's call.
function M.argerror(n, fname, msg)
  M.misuse(("bad argument #%d to '%s' (%s)"):format(n, fname, msg))
end

--- The type name an error message shows: a value's __name if it has one.
function M.typename(v)
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or type(v)
end

--- Is v a function, or a value with a __call metamethod?
function M.is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

return M
