--- lasync.contextvars: task-local values, as Python's contextvars.
-- A context is an immutable table (var -> value); set() installs a new copy
-- in the running task (or callback), so a task started earlier, which holds
-- a reference to its creator's context, never sees later changes.
local core = require "lasync.core"
local checks = require "lasync.checks"
checks.internal()

---@class lasync.contextvars
local M = {}
local NIL = setmetatable({}, {__tostring = function() return "nil" end})

---@class lasync.ContextVar
local ContextVar = {}
ContextVar.__index = ContextVar
ContextVar.__name = "ContextVar"

function ContextVar.__tostring(self)
  return ("<ContextVar name=%q>"):format(self.name)
end

--- ContextVar(name, default): a new variable; default is optional.
---@param name string
---@param ... any the default (optional)
---@return lasync.ContextVar
function M.ContextVar(name, ...)
  checks.check(type(name) == "string", name, 1, "ContextVar", "string")
  return setmetatable({name = name, default = (...), has_default = select("#", ...) > 0},
                      ContextVar)
end

local function lookup(var)
  local ctx = core._get_context()
  local v = ctx and ctx[var]
  if v == NIL then return true, nil end
  return v ~= nil, v
end

--- var:get([default]): the value in the current context, else default, else
--- the variable's default; raises if there is none.
---@param ... any a default for this call (optional)
---@return any
function ContextVar:get(...)
  local found, v = lookup(self)
  if found then return v end
  if select("#", ...) > 0 then return (...) end
  if self.has_default then return self.default end
  error(("ContextVar %q has no value"):format(self.name), 2)
end

local function install(var, v)
  local new = {}
  for k, val in pairs(core._get_context() or {}) do new[k] = val end
  new[var] = v
  core._set_context(new)
end

-- Who holds the current context: the running task, else the running loop,
-- whose callbacks each run in a context of their own but are not told
-- apart here, else the main program. A context is replaced at each set, so
-- its holder, not the table, says which context a token was made in.
local MAIN = {}
local function holder()
  return core.current_task() or core.get_running_loop() or MAIN
end

--- var:set(v): sets it in the current context; returns a token for reset.
---@param v any
---@return table token for reset
function ContextVar:set(v)
  local found, old = lookup(self)
  install(self, v == nil and NIL or v)
  return {var = self, found = found, old = old, holder = holder(), used = false}
end

local function bad_token(why)
  checks.argerror(1, "reset", why)
end

--- var:reset(token): restores the value from before the set that made
--- token; a token serves once, in the context where it was made.
---@param token table
function ContextVar:reset(token)
  if type(token) ~= "table" or token.var ~= self then
    bad_token("token of this ContextVar expected")
  end
  if token.used then bad_token("token has already been used once") end
  if token.holder ~= holder() then bad_token("token was created in a different context") end
  token.used = true
  if token.found then
    install(self, token.old == nil and NIL or token.old)
  else
    install(self, nil)
  end
end

return M
