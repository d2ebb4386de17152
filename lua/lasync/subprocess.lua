--- lasync.subprocess: create_subprocess_exec and create_subprocess_shell
-- (docs/reference.md §9). src/subprocess.c starts the child (posix_spawn)
-- and gives its pidfd; the pipes are lasync streams (src/stream.c, over a
-- pipe's end). The loop watches the pidfd (or, without pidfds, the exit
-- pipe src/subprocess.c writes once SIGCHLD reaped the child): when the
-- child ends it is reaped at once (never a blocking wait, never another
-- process's child), and its wait() callers go on.
-- Lifetime, as asyncio: the loop holds a running child's Process, so one
-- dropped is reaped when it ends. Once the loop closes it is no longer
-- watched: when the Process is collected, the child is killed and reaped
-- and its pidfd and pipes close.
local core = require "lasync.core"
local checks = require "lasync.checks"
local combinators = require "lasync.combinators"
checks.internal()

local type, pairs, pcall, error, setmetatable, getmetatable =
  type, pairs, pcall, error, setmetatable, getmetatable
local argerror = checks.argerror

---@class lasync.subprocess
local M = {}

---@class lasync.Process
---@field pid integer
---@field stdin lasync.StreamWriter|nil
---@field stdout lasync.StreamReader|nil
---@field stderr lasync.StreamReader|nil
---@field returncode integer|nil nil while it runs; -signum if a signal killed it
local Process = {__name = "lasync.Process"}
Process.__index = Process

-- ---------------------------------------------------------------- checks --

local IO = checks.one_of("pipe", "inherit", "null")
local STDERR = checks.one_of("pipe", "inherit", "null", "stdout")
local OPTS = {stdin = IO, stdout = IO, stderr = STDERR, limit = checks.count(),
              env = checks.option("table", "a table of strings (name -> value)"),
              cwd = checks.option("string", "a string")}

local function has_nul(s) return s:find("\0", 1, true) ~= nil end

local function check_argv(argv, fname)
  local n = checks.list(argv, 1, fname, function(v)
    return type(v) == "string" and not has_nul(v)
  end, "string without \\0")
  if n == 0 then argerror(1, fname, "argv must not be empty") end
end

-- opts.env: names without "=" or "\0" (not empty), values without "\0".
local function check_env(env, fname)
  for k, v in pairs(env) do
    if type(k) ~= "string" or type(v) ~= "string" then
      argerror(2, fname, ("opts.env must be a table of strings (name -> value),"
        .. " got %s -> %s"):format(checks.typename(k), checks.typename(v)))
    end
    if k == "" or k:find("[=%z]") or has_nul(v) then
      argerror(2, fname, ("opts.env: bad variable name or value %q"):format(k))
    end
  end
end

local function check_opts(opts, fname)
  opts = checks.options(opts, 2, fname, OPTS)
  if opts.env then check_env(opts.env, fname) end
  if opts.cwd and has_nul(opts.cwd) then argerror(2, fname, "opts.cwd must not contain \\0") end
  return opts
end

-- ----------------------------------------------------------------- Process --

-- The pidfd is readable: the child ended (the loop calls this once it has;
-- reap() says nil if not yet). Its wait() callers go on.
local function exited(p)
  local rc = p._child:reap()
  if rc == nil then return end
  p._loop:remove_reader(p._child:fileno())
  p._child:close()
  p.returncode = rc
  for f in pairs(p._waiters) do
    if not f:done() then f:set_result(rc) end
  end
end

local function pipe(fd, mode, limit)
  return fd and core._pipe_stream(fd, mode, limit) or nil
end

local function start(argv, opts, fname)
  local loop = checks.task(fname):get_loop()
  local child, i, o, e = core._spawn(argv, opts.stdin or "inherit",
    opts.stdout or "inherit", opts.stderr or "inherit", opts.env, opts.cwd)
  local p = setmetatable({pid = child:pid(), _child = child, _loop = loop,
                          _waiters = {}}, Process)
  p.stdin, p.stdout = pipe(i, "w", opts.limit), pipe(o, "r", opts.limit)
  p.stderr = pipe(e, "r", opts.limit)
  loop:add_reader(child:fileno(), exited, p)
  return p
end

--- create_subprocess_exec(argv, opts) -> Process: runs argv[1] (searched in
--- PATH unless it has a "/") with argv as its arguments. opts: stdin,
--- stdout, stderr ("pipe", "inherit" (default), "null"; stderr also
--- "stdout"), env (the child's whole environment), cwd, limit (the pipes').
---@param argv string[]
---@param opts? table stdin, stdout, stderr, env, cwd, limit
---@return lasync.Process
function M.create_subprocess_exec(argv, opts)
  check_argv(argv, "create_subprocess_exec")
  return start(argv, check_opts(opts, "create_subprocess_exec"), "create_subprocess_exec")
end

--- create_subprocess_shell(cmd, opts) -> Process: runs cmd with /bin/sh -c.
---@param cmd string
---@param opts? table as create_subprocess_exec's
---@return lasync.Process
function M.create_subprocess_shell(cmd, opts)
  local fname = "create_subprocess_shell"
  checks.check(type(cmd) == "string", cmd, 1, fname, "string")
  if has_nul(cmd) then argerror(1, fname, "command must not contain \\0") end
  return start({"/bin/sh", "-c", cmd}, check_opts(opts, fname), fname)
end

local function check_self(self, fname)
  if getmetatable(self) ~= Process then checks.bad_self(self, Process, fname) end
end

--- wait() -> returncode, once the child has ended. Cancelling it leaves
--- the process as it was.
---@return integer returncode
function Process:wait()
  check_self(self, "wait")
  if self.returncode == nil then
    local f = core.Future()
    self._waiters[f] = true
    local ok, err = pcall(f.await, f)
    self._waiters[f] = nil
    if not ok then error(err, 0) end
  end
  return self.returncode
end

local function read_all(stream)
  local data = stream:read(-1)
  stream:close()
  return data
end

-- Write the input and close stdin; a child that does not read it all
-- (closed its stdin, or ended) is no failure, as in asyncio.
local function feed(stdin, input)
  if input and #input > 0 then
    stdin:write(input)
    local ok, err = pcall(stdin.drain, stdin)
    if not ok and not (core.BrokenPipeError:is(err) or core.ConnectionResetError:is(err)) then
      error(err, 0)
    end
  end
  stdin:close()
end

-- A failure of one pipe is raised as itself, not as a TaskGroupError.
local function unwrap(ok, ...)
  if ok then return ... end
  local err = ...
  if core.TaskGroupError:is(err) and err.errors.n == 1 then err = err.errors[1] end
  error(err, 0)
end

--- communicate(input) -> stdout, stderr: writes input (a string, or nil)
--- to stdin and closes it, reads stdout and stderr to their ends, all at
--- once, then waits for the child. A pipe not made gives nil.
---@param input? string
---@return string|nil stdout
---@return string|nil stderr
function Process:communicate(input)
  check_self(self, "communicate")
  checks.check(input == nil or type(input) == "string", input, 1, "communicate", "string or nil")
  if input and not self.stdin then checks.misuse("communicate: input given, but stdin is not a pipe") end
  local out, err
  unwrap(pcall(combinators.task_group, function(tg)
    if self.stdout then tg:spawn(function() out = read_all(self.stdout) end) end
    if self.stderr then tg:spawn(function() err = read_all(self.stderr) end) end
    if self.stdin then feed(self.stdin, input) end
  end))
  self:wait()
  return out, err
end

--- send_signal(sig): sig a number or a name ("SIGTERM"). A child that has
--- ended is not signalled (returns false), as asyncio's Popen does.
---@param sig integer|string
---@return boolean sent false once the child has ended
function Process:send_signal(sig)
  check_self(self, "send_signal")
  return self._child:send_signal(sig)
end

--- Sends SIGTERM; false once the child has ended.
---@return boolean
function Process:terminate() return self:send_signal("SIGTERM") end

--- Sends SIGKILL; false once the child has ended.
---@return boolean
function Process:kill() return self:send_signal("SIGKILL") end

function Process:__tostring()
  local state = self.returncode == nil and "running" or "returncode=" .. self.returncode
  return ("<Process pid=%d %s>"):format(self.pid, state)
end

M.Process = Process

return M
