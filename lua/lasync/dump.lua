--- lasync.dump: dump_tasks(), what every pending task of the running loop
-- waits on, with its coroutine's traceback (docs/reference.md §4). The core
-- records what a parked task waits on (core._task_wait); this module only
-- formats it, so the dump costs nothing until it is asked for.
local core = require "lasync.core"
local checks = require "lasync.checks"
checks.internal()

local M = {}

local function is_lasync_frame(info)
  return info.what == "C" or info.source:find("/lasync/[%w_]+%.lua$") ~= nil
end

-- The lasync call the task is suspended in (the outermost of lasync's own
-- frames, e.g. "acquire", "to_thread", "wait") and that frame's level.
local function suspended_in(co)
  local name, at
  for level = 0, math.huge do
    local info = debug.getinfo(co, level, "Sn")
    if not info or not is_lasync_frame(info) then break end
    name, at = info.name or name, level
  end
  return name, at
end

local function show(v)
  if core.is_task(v) then return string.format("task %q", v:get_name()) end
  return tostring(v)
end

-- The first argument of a frame at or below level that is a future (what a
-- plain future's await keeps on its stack).
local function awaited_future(co, top)
  for level = 0, top or 0 do
    local _, v = debug.getlocal(co, level, 1)
    if core.is_future(v) then return v end
  end
end

-- What a parked task waits on, from core._task_wait's name and details.
local function parked(co, what, a, b)
  if what == "sleep" then return string.format("sleep, %.3f s left", a) end
  if a ~= nil then
    local peer = b and (a:find(":", 1, true) and "[" .. a .. "]:" .. b or a .. ":" .. b) or a
    return string.format("%s on stream, peer %s", what, peer)
  end
  if what == "waitlist" or what == "park" then
    local _, level = suspended_in(co)
    local _, obj = debug.getlocal(co, level or 0, 1)
    return obj ~= nil and show(obj) or what
  end
  return what
end

local function waits_on(t, co)
  local what, a, b = core._task_wait(t)
  if what == nil then return nil end
  local call, top = suspended_in(co)
  local desc
  if what == "future" then
    desc = show(a or awaited_future(co, top) or "a future")
  else
    desc = parked(co, what, a, b)
  end
  return call and string.format("%s (in %s)", desc, call) or desc
end

local function state_of(t, current)
  if t == current then return "running" end
  local st = core._park_state(t)
  if t:cancelling() > 0 then return "cancelling" end
  if st == "parked" or core._task_wait(t) then return "waiting" end
  return "ready"
end

local function indent(s) return (s:gsub("\n", "\n    ")) end

local function describe(t, current, out)
  local co = t:get_coro()
  out[#out + 1] = string.format("Task %q: %s", t:get_name(), state_of(t, current))
  local w = waits_on(t, co)
  if w then out[#out + 1] = "  waits on " .. w end
  out[#out + 1] = "  " .. indent(debug.traceback(co))
end

local function write_to(dest, text)
  if dest == nil then io.stderr:write(text)
  elseif type(dest) == "function" then dest(text)
  else dest:write(text) end
end

--- dump_tasks(dest): writes every pending task of the running loop (name,
--- state, what it waits on, traceback) to dest: io.stderr by default, a
--- file (anything with :write) or a function called with the text. Returns
--- the text.
---@param dest file*|{write: function}|fun(text: string)|nil
---@return string text the dump
function M.dump_tasks(dest)
  local kind = type(dest)
  if dest ~= nil and kind ~= "function" and kind ~= "userdata" and kind ~= "table" then
    checks.argerror(1, "dump_tasks", "file, function or nil expected, got " .. kind)
  end
  local loop = core.get_running_loop()
  if not loop then checks.misuse("dump_tasks: no running event loop") end
  local tasks, current = core.all_tasks(loop), core.current_task()
  local out = {string.format("-- lasync: %d pending task%s (pid %d) --",
    #tasks, #tasks == 1 and "" or "s", core.sys.getpid())}
  for _, t in ipairs(tasks) do describe(t, current, out) end
  local text = table.concat(out, "\n") .. "\n"
  write_to(dest, text)
  return text
end

return M
