--- lasync.checks: the argument checks of every pure-Lua module and of the
-- `lasync` command, in one place so that they mean one thing and say it
-- one way: "bad argument #n to 'fname' (<what> expected, got <got>)", and
-- "opts.<name> must be <what>, got <got>" for an option.
-- An error is raised at the user's call: past every frame of a module that
-- declared itself internal, whichever helper found the misuse.
local core = require "lasync.core"

local type, getmetatable, rawget, error, pairs, tostring =
  type, getmetatable, rawget, error, pairs, tostring
local tointeger = math.tointeger

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

--- Raises "calling 'fname' on bad self (<class.__name> expected, got ...)".
function M.bad_self(self, class, fname)
  M.misuse(("calling '%s' on bad self (%s expected, got %s)")
           :format(fname, class.__name, M.typename(self)))
end

--- The running task; raises "fname called outside a task" if there is none.
function M.task(fname)
  return core.current_task() or M.misuse(fname .. " called outside a task")
end

-- ---------------------------------------------------------------- values --

--- The type name an error message shows: a value's __name if it has one.
function M.typename(v)
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or type(v)
end

-- What a message shows of v, which is not what was expected: its value
-- when it is a number or a string of type t (its type was right, its value
-- not: -1 for a count), else its type name.
local function got(v, t)
  if type(v) == t and t == "number" then return tostring(v) end
  if type(v) == t and t == "string" then return ("%q"):format(v) end
  return M.typename(v)
end

--- Is v a function, or a value with a __call metamethod? (Lua 5.4 calls
-- any non-nil __call, a callable table included.)
function M.is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

--- The text of an error value, as lua.c shows it; but for a table with
-- no __tostring, its `message` field if that is a string.
function M.errtext(e)
  local mt = getmetatable(e)
  if type(e) == "string" or type(e) == "number" or (mt and mt.__tostring) then
    return tostring(e)
  end
  local msg = type(e) == "table" and rawget(e, "message")
  if type(msg) == "string" then return msg end
  return ("(error object is a %s value)"):format(type(e))
end

-- ------------------------------------------------------------- arguments --

--- Unless ok, raises "bad argument #n to 'fname' (<what> expected, got
-- <type of v>)".
function M.check(ok, v, n, fname, what)
  if not ok then
    M.argerror(n, fname, ("%s expected, got %s"):format(what, M.typename(v)))
  end
end

--- v (argument n) must be callable; what names it (default "function").
function M.callable(v, n, fname, what)
  M.check(M.is_callable(v), v, n, fname, what or "function")
end

--- v (argument n) as an integer from min to max (default: no bound);
-- what names that range (default "non-negative integer" for min 0,
-- "positive integer" for min 1).
function M.integer(v, n, fname, min, max, what)
  local i = type(v) == "number" and tointeger(v)
  if not i or i < min or (max and i > max) then
    what = what or (min == 0 and "non-negative integer" or "positive integer")
    M.argerror(n, fname, ("%s expected, got %s"):format(what, got(v, "number")))
  end
  return i
end

--- The list at argument n: a table (not callable) whose items 1..(list.n
-- or #list) all satisfy ok (`what` names them); returns that length.
function M.list(list, n, fname, ok, what)
  M.check(type(list) == "table" and not M.is_callable(list), list, n, fname,
          "list (" .. what .. ")")
  local len = list.n or #list
  for i = 1, len do
    if not ok(list[i]) then
      M.argerror(n, fname, ("item %d: %s expected, got %s")
                 :format(i, what, M.typename(list[i])))
    end
  end
  return len
end

-- --------------------------------------------------------------- options --

--- An option of type t (a type() name) whose value satisfies test, if
-- given; what completes "opts.<name> must be ...". For M.options.
function M.option(t, what, test)
  return {t = t, what = what, test = test}
end

M.BOOLEAN = M.option("boolean", "a boolean")
M.NUMBER = M.option("number", "a number")
--- An option that the function using it checks itself.
M.ANY = M.option(nil, nil)

-- The most a server's limits take (start_server's read_timeout,
-- write_timeout, max_buffer): seconds as the C core keeps them (a float:
-- about a week), output as a 32-bit count. `lasync serve` checks its flags
-- against these too, so that a bad value is a usage error there.
M.SERVER_LIMITS_MAX = {read_timeout = 604800, write_timeout = 604800, max_buffer = 0xffffffff}

--- An integer option from 1 to max (default: no bound).
function M.count(max)
  return M.option("number", "a positive integer" .. (max and (" (at most %d)"):format(max) or ""),
    function(v)
      local i = tointeger(v)
      return i ~= nil and i > 0 and i <= (max or math.maxinteger)
    end)
end

--- A string option, one of the strings listed.
function M.one_of(...)
  local set, shown = {}, {}
  for i, s in ipairs {...} do
    set[s] = true
    shown[i] = ("%q"):format(s)
  end
  local what = table.concat(shown, ", ", 1, #shown - 1) .. " or " .. shown[#shown]
  return M.option("string", what, function(v) return set[v] == true end)
end

local function check_option(spec, k, v, n, fname)
  if spec == nil then M.argerror(n, fname, ("unknown option '%s'"):format(tostring(k))) end
  if spec.t == nil or (type(v) == spec.t and (not spec.test or spec.test(v))) then return end
  M.argerror(n, fname, ("opts.%s must be %s, got %s"):format(k, spec.what, got(v, spec.t)))
end

local NO_OPTS = {}  -- never written

--- opts (argument n): nil, or a table whose every key is in specs, which
-- maps an option's name to its M.option. Returns opts, or for nil an
-- empty table (read only: it is shared).
function M.options(opts, n, fname, specs)
  if opts == nil then return NO_OPTS end
  M.check(type(opts) == "table", opts, n, fname, "table of options or nil")
  for k, v in pairs(opts) do check_option(specs[k], k, v, n, fname) end
  return opts
end

return M
