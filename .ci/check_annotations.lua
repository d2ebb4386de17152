-- Checks the LuaLS annotations (docs/editor.md) against docs/reference.md,
-- since LuaLS itself is not packaged for Debian 12. `make lint` runs it.
--   lua5.4 .ci/check_annotations.lua [-v] [--ref FILE] SOURCE...
-- Fails (exit 1, one line per problem) when
--   * a public name of the reference (a backquoted `x.name(`, `x:name(`,
--     `name(` or `x.name{`) has no annotated definition: a function
--     preceded by `---` comments, or a `---@field name` of a class;
--   * such a definition lacks a `---@param` for one of its arguments;
--   * a `---@param` names an argument the function it documents does not take.
-- -v lists every name found and where it resolved.
local verbose, ref, sources = false, "docs/reference.md", {}
local i = 1
while arg[i] do
  if arg[i] == "-v" then verbose = true
  elseif arg[i] == "--ref" then i = i + 1; ref = arg[i]
  else sources[#sources + 1] = arg[i] end
  i = i + 1
end

-- What the reference's prefixes stand for (the variable names its text uses);
-- a prefix not listed, or none, may be any class.
local PREFIX = {
  lasync = {"lasync"}, loop = {"lasync.Loop"}, f = {"lasync.Future"}, t = {"lasync.Task"},
  h = {"lasync.Handle", "lasync.TimerHandle", "lasync.http.Headers"},
  headers = {"lasync.http.Headers"}, ws = {"lasync.WebSocket"}, req = {"lasync.http.Request"},
  res = {"lasync.http.Response"}, http = {"lasync.http"}, ltest = {"lasync.test"},
  socket = {"lasync.socket"}, dns = {"lasync.socket.dns"}, ssl = {"lasync.socket.ssl"},
  tg = {"lasync.TaskGroup"}, Class = {"lasync.ErrorClass"},
}
-- Calls in the reference's text that are Lua's or the user's, not lasync's.
local NOT_API = {}
for w in ([[error pcall tostring pairs ipairs select require print assert type
  setmetatable it describe function handler fn less pred on_start on_stop
  Class lines waitpid]]):gmatch("%S+") do NOT_API[w] = true end
local LUA_LIBS = {coroutine = true, string = true, table = true, debug = true,
                  os = true, io = true, math = true, package = true}

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

-- (a) The public names: {name=, classes=, line=}, from inline code spans
-- outside ``` blocks.
local function doc_names(path)
  local names, fenced, n = {}, false, 0
  for line in io.lines(path) do
    n = n + 1
    if line:match("^%s*```") then fenced = not fenced
    elseif not fenced then
      for span in line:gmatch("`([^`]+)`") do
        local chain, name = span:match("^([%w_.:]-)([%a_][%w_]*)[({]")
        local qual = chain and chain:match("([%w_]+)[.:]$")
        local lib = chain and chain:match("^([%w_]+)")
        if name and not (chain == "" and NOT_API[name]) and not LUA_LIBS[lib] then
          names[#names + 1] = {name = name, classes = qual and PREFIX[qual], line = n}
        end
      end
    end
  end
  return names
end

-- (b) The annotations. defs["Class.name"] and defs_by_name[name] = true;
-- parents[Class] = {...}. Classes: `---@class` before `local X =` names
-- X's class; a module's `M` without one is its file's module name.
local defs, by_name, parents, aliases = {}, {}, {}, {}
local function define(class, name)
  defs[class .. "." .. name], by_name[name] = true, true
end

-- The arguments of a function line, `self` included for `a:b(...)`.
local function arguments(sep, args)
  local set = {}
  if sep == ":" then set.self = true end
  for a in args:gmatch("[^,%s]+") do set[a] = true end
  return set
end

-- A function line after a doc block: every @param must be an argument.
-- It annotates the function when every argument has a @param; a block that
-- has some @param and misses one is a problem.
local function check_function(path, n, class, sep, name, args, params)
  local takes, complete, some = arguments(sep, args), true, next(params) ~= nil
  for p in pairs(params) do
    if not takes[p] then
      problem("%s:%d: ---@param %s: %s%s%s takes no argument '%s'", path, n, p,
              class, sep, name, p)
    end
  end
  for a in pairs(takes) do
    if a ~= "self" and a ~= "_" and not params[a] then
      complete = false
      if some then
        problem("%s:%d: %s%s%s: argument '%s' has no ---@param", path, n, class, sep, name, a)
      end
    end
  end
  if complete then define(class, name) end
end

local function scan(path)
  local module = path:match("([%w_/]+)%.lua$"):gsub("^.-lasync/", "lasync/")
                     :gsub("/init$", ""):gsub("/", ".")
  local local_class, doc, pending_class = {M = module}, nil, nil
  local n = 0
  for line in io.lines(path) do
    n = n + 1
    local c, ps = line:match("^%s*%-%-%-@class ([%w_.]+):?%s*(.*)")
    local field = line:match("^%s*%-%-%-@field ([%w_]+)")
    local var = line:match("^local ([%w_]+)")
    -- `local core = require "lasync.core"`; `M.x = core.y` or
    -- `M.x = require("m").y`: x is m's y
    local req_var, req = line:match('^local ([%w_]+) = require%s*%(?%s*"([%w_.]+)"')
    if req_var then local_class[req_var] = req end
    local alias, from, target = line:match("^M%.([%w_]+) = (.-)%.([%w_]+)$")
    from = from and (from:match('^require%s*%(?%s*"([%w_.]+)"%)?$') or local_class[from])
    if from then aliases[#aliases + 1] = {local_class.M, alias, from, target} end
    local owner, sep, name, args = line:match("^%s*function ([%w_.]-)([.:]?)([%w_]+)%(([^)]*)%)")
    if c then
      pending_class, parents[c] = c, {}
      for p in ps:gmatch("[%w_.]+") do table.insert(parents[c], p) end
    end
    if field and pending_class then define(pending_class, field) end
    if line:match("^%s*%-%-%-") then
      doc = doc or {}
      local p = line:match("^%s*%-%-%-@param ([%w_.]+)")
      if p then doc[p:gsub("%?$", "")] = true end
    elseif var and pending_class then
      local_class[var], pending_class, doc = pending_class, nil, nil
    elseif owner and doc then
      check_function(path, n, local_class[owner] or (owner ~= "" and owner or module), sep,
                     name, args, doc)
      doc = nil
    else
      doc, pending_class = nil, nil
    end
  end
end

-- Whether class or one of its parents defines name.
local function has(class, name, seen)
  if defs[class .. "." .. name] then return true end
  seen = seen or {}
  if seen[class] then return false end
  seen[class] = true
  for _, p in ipairs(parents[class] or {}) do
    if has(p, name, seen) then return true end
  end
  return false
end

for _, path in ipairs(sources) do scan(path) end
-- A module's copies (module, x, from, y): its x is annotated when from's y is.
for _, a in ipairs(aliases) do
  if has(a[3], a[4]) then define(a[1], a[2]) end
end

-- (c) Every public name resolved.
local found = doc_names(ref)
for _, e in ipairs(found) do
  local ok, where = false, "any class"
  if e.classes then
    where = table.concat(e.classes, "|")
    for _, c in ipairs(e.classes) do ok = ok or has(c, e.name) end
  else
    ok = by_name[e.name] or false
  end
  if verbose then print(("%s:%d: %s (%s): %s"):format(ref, e.line, e.name, where,
                                                     ok and "annotated" or "MISSING")) end
  if not ok then problem("%s:%d: %s (%s) has no annotation", ref, e.line, e.name, where) end
end

if #problems > 0 then
  io.stderr:write(table.concat(problems, "\n"), "\n")
  io.stderr:write(("check_annotations: %d problems\n"):format(#problems))
  os.exit(1)
end
print(("check_annotations: %d public names of %s annotated"):format(#found, ref))
