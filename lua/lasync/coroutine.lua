--- lasync.coroutine: a drop-in for Lua's `coroutine` library whose `resume`
-- and `wrap` pass lasync suspensions made inside a user coroutine (a
-- generator, an iterator) through to the enclosing task, so code inside a
-- generator may await.
local core = require "lasync.core"

local SUSPEND = core.SUSPEND
local resume, yield, status = coroutine.resume, coroutine.yield, coroutine.status

local M = {}
for k, v in pairs(coroutine) do M[k] = v end

-- A suspension is forwarded up (to the task or to an outer forwarding
-- coroutine) and whatever the task sends back (nothing, or a thrown
-- cancellation) is passed down into the inner coroutine.
local function forward(co, ok, ...)
  if ok and (...) == SUSPEND and status(co) == "suspended" then
    return forward(co, resume(co, yield(...)))
  end
  return ok, ...
end

--- Like coroutine.resume, with lasync suspensions passed through.
function M.resume(co, ...)
  return forward(co, resume(co, ...))
end

local function unwrap(co, ok, ...)
  if ok then return ... end
  local err = ...
  if status(co) == "dead" then coroutine.close(co) end
  error(err, 0)
end

--- Like coroutine.wrap, with lasync suspensions passed through.
function M.wrap(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'wrap' (function expected, got " .. type(fn) .. ")", 2)
  end
  local co = coroutine.create(fn)
  return function(...)
    return unwrap(co, M.resume(co, ...))
  end
end

return M
