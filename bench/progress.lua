--- bench/progress.lua: a progress line for long runs (`make bench`, `make
-- fuzz`), pure Lua. On a terminal it redraws one line on stderr,
--   bench 7/23 · core: task switch · 0:41 left
-- and clears it before anything else is printed; elsewhere (a pipe, CI's
-- log) it prints one plain line per step,
--   [7/23] core: task switch (0:41 left)
-- Time left is the mean time of the units finished so far times the units
-- left; "?" before the first one finishes.
--
--   local p = progress.new(total, label[, opts])
--   p:step(what)        the next unit, `what`, starts (the previous is done)
--   p:set(done, what)   `done` units are finished, `what` runs (fuzz counts)
--   p:note(text)        a line of other output, printed above the progress
--   p:done()            clears the line (terminal) or prints a last one
--
-- opts: stream (default io.stderr), tty (default: whether stderr is a
-- terminal), clock (seconds, default os.time).
local M = {}
M.__index = M

--- Whether the process's stderr is a terminal (the shell inherits it).
function M.stderr_is_tty()
  return os.execute("[ -t 2 ]") == true
end

function M.new(total, label, opts)
  assert(math.type(total) == "integer" and total >= 0,
         "progress.new: total: a non-negative integer expected")
  opts = opts or {}
  local tty = opts.tty
  if tty == nil then tty = M.stderr_is_tty() end
  local clock = opts.clock or os.time
  return setmetatable({total = total, label = label, finished = 0,
    stream = opts.stream or io.stderr, tty = tty, clock = clock,
    start = clock(), shown = false}, M)
end

--- "m:ss" (or "h:mm:ss") of a number of seconds.
function M.clock_text(s)
  s = math.floor(s + 0.5)
  local h, m = s // 3600, s // 60 % 60
  if h > 0 then return ("%d:%02d:%02d"):format(h, m, s % 60) end
  return ("%d:%02d"):format(m, s % 60)
end

--- The time left as text, from the mean time of the finished units.
function M:left()
  if self.finished == 0 then return "?" end
  local mean = (self.clock() - self.start) / self.finished
  return M.clock_text(mean * math.max(0, self.total - self.finished))
end

--- The line for unit n of total, what running (without newline).
function M:line(n, what)
  if self.tty then
    return ("%s %d/%d · %s · %s left"):format(self.label, n, self.total, what, self:left())
  end
  return ("[%d/%d] %s (%s left)"):format(n, self.total, what, self:left())
end

-- Terminal lines are cut to WIDTH characters: a wrapped line cannot be
-- redrawn with \r.
local WIDTH = 79

local function cut(s)
  if (utf8.len(s) or 0) <= WIDTH then return s end
  return s:sub(1, utf8.offset(s, WIDTH + 1) - 1)
end

function M:show(n, what)
  self.n = n
  if self.tty then
    self.stream:write("\r", cut(self:line(n, what)), "\27[K")
    self.shown = true
  else
    self.stream:write(self:line(n, what), "\n")
  end
  self.stream:flush()
end

--- Clears the terminal's progress line, if one is drawn.
function M:clear()
  if self.shown then
    self.stream:write("\r\27[K")
    self.shown = false
  end
end

--- Unit `what` starts; the one before it (if any) is finished.
function M:step(what)
  if self.started then self.finished = self.finished + 1 end
  self.started, self.what = true, what
  self:show(math.min(self.finished + 1, self.total), what)
end

--- `done` units are finished (clamped to total); `what` is running.
function M:set(done, what)
  self.finished, self.what = math.min(done, self.total), what
  self:show(self.finished, what)
end

--- Prints text (a line of other output) above the progress line.
function M:note(text)
  local redraw = self.shown
  self:clear()
  self.stream:write(text, "\n")
  if redraw then self:show(self.n, self.what) else self.stream:flush() end
end

--- The end: clears the line on a terminal, else prints the elapsed time.
function M:done()
  if self.tty then
    self:clear()
  else
    self.stream:write(("[%d/%d] %s: done in %s\n"):format(self.total, self.total,
      self.label, M.clock_text(self.clock() - self.start)))
  end
  self.stream:flush()
end

return M
