--- lasync.coroutine: a drop-in for Lua's `coroutine` library whose `resume`
-- and `wrap` pass lasync suspensions made inside a user coroutine (a
-- generator, an iterator) through to the enclosing task, so code inside a
-- generator may await.
local core = require "lasync.core"
local checks = require "lasync.checks"
checks.internal()

local SUSPEND = core._SUSPEND
local resume, yield, status = coroutine.resume, coroutine.yield, coroutine.status
local close = coroutine.close

---@class lasync.coroutine: coroutinelib
local M = {}
for k, v in pairs(coroutine) do M[k] = v end

-- The coroutines resumed here: the core lets their code wait (a plain
-- coroutine's wait would come back to its resumer as a yield).
local driven = setmetatable({}, {__mode = "k"})
core._set_driven(driven)

-- The coroutines suspended in a forwarded suspension. The task that
-- resumed one waits for its wake-up to resume it again; another resume
-- would take that wake-up and leave the task waiting forever. So they
-- count as active but not running ("normal"), as a Lua coroutine that
-- resumed another one.
local forwarding = setmetatable({}, {__mode = "k"})

local function resume_forwarded(co, ...)
  forwarding[co] = nil
  return resume(co, ...)
end

-- A suspension is forwarded up (to the task or to an outer forwarding
-- coroutine) and whatever the task sends back (nothing, or a thrown
-- cancellation) is passed down into the inner coroutine.
local function forward(co, ok, ...)
  if ok and (...) == SUSPEND and status(co) == "suspended" then
    forwarding[co] = true
    return forward(co, resume_forwarded(co, yield(...)))
  end
  return ok, ...
end

--- Like coroutine.resume, with lasync suspensions passed through; refuses
--- a coroutine suspended in one, as Lua refuses a non-suspended coroutine.
---@param co thread
---@param ... any
---@return boolean ok
---@return any ... the values yielded or returned, or the error
function M.resume(co, ...)
  if forwarding[co] then return false, "cannot resume non-suspended coroutine" end
  if type(co) == "thread" then driven[co] = true end
  return forward(co, resume(co, ...))
end

--- Like coroutine.status; "normal" for a coroutine suspended in a
--- forwarded lasync suspension.
---@param co thread
---@return "running"|"suspended"|"normal"|"dead"
function M.status(co)
  if forwarding[co] then return "normal" end
  return status(co)
end

--- Like coroutine.close; refuses a coroutine suspended in a forwarded
--- lasync suspension, as Lua refuses a normal coroutine.
---@param co thread
---@return boolean ok
---@return any err
function M.close(co)
  if forwarding[co] then error("cannot close a normal coroutine", 2) end
  return close(co)
end

local function unwrap(co, ok, ...)
  if ok then return ... end
  local err = ...
  if status(co) == "dead" then close(co) end
  error(err, 0)
end

--- Like coroutine.wrap, with lasync suspensions passed through.
---@param fn function
---@return fun(...): ...
function M.wrap(fn)
  -- a function: coroutine.create takes no other callable
  checks.check(type(fn) == "function", fn, 1, "wrap", "function")
  local co = coroutine.create(fn)
  return function(...)
    return unwrap(co, M.resume(co, ...))
  end
end

return M
