--- `lasync serve --workers 3` under load while its workers are killed and
-- reloaded (issue 16, crashes): the short version of `make crash`. The
-- load is bench/crash_load.lua's, in this process (long-lived connections
-- checked byte for byte, connection churn), against bench/crash_echo.lua,
-- whose greeting names the worker of each connection. Three kill -9 (of
-- a worker stuck in a computation) and two SIGHUPs in about 11 s: the
-- master restarts each killed worker, no
-- connection of another worker loses a byte, and no new connection fails
-- but those a killed worker had taken (with its own listening socket per
-- worker, the kernel reset the connections waiting in a socket that closed).
local lasync = require "lasync"
local helper = require "helper"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")
if ROOT == "" then ROOT = "./" end
local load = dofile(ROOT .. "bench/crash_load.lua")
local WORKERS = 3

-- The master's children: its workers, by pid.
local function workers_of(master)
  local f = io.open(("/proc/%d/task/%d/children"):format(master, master))
  local list = {}
  if not f then return list end
  for p in f:read("a"):gmatch("%d+") do list[#list + 1] = tonumber(p) end
  f:close()
  return list
end

-- Polls fn until it returns a true value, for up to `seconds`.
local function poll(what, seconds, fn)
  for _ = 1, seconds * 100 * helper.SLOWDOWN do
    local v = fn()
    if v then return v end
    lasync.sleep(0.01)
  end
  error("timed out waiting for " .. what, 2)
end

-- `lasync serve bench/crash_echo.lua --workers 3` on a free port:
-- {p=, log=, port=} once every worker listens.
local function serve()
  local p = lasync.create_subprocess_exec({ROOT .. "scripts/lasync", "serve",
    "bench/crash_echo.lua", "--workers", tostring(WORKERS), "--grace", "1",
    "--listen", "127.0.0.1:0"}, {stderr = "pipe", stdin = "null", stdout = "null", cwd = ROOT})
  local srv = {p = p, log = {}, listening = 0}
  srv.reader = lasync.spawn(function()
    for line in p.stderr:lines() do
      srv.log[#srv.log + 1] = line
      srv.port = srv.port or tonumber(line:match("the workers listen on port (%d+)"))
      if line:find("listening on") then srv.listening = srv.listening + 1 end
    end
    p.stderr:close()
  end)
  poll("the workers", 10, function() return srv.listening >= WORKERS end)
  return srv
end

local function count(srv, pattern)
  local n = 0
  for _, line in ipairs(srv.log) do
    if line:find(pattern) then n = n + 1 end
  end
  return n
end

-- kill -9 a worker stuck in a long computation (a watchdog's doing): the
-- one a new connection reached, once it has been busy for 0.25 s, so that
-- connections wait for it in the accept queue; adds its pid to killed.
local function kill_busy(srv, killed)
  local rd, wr = lasync.open_connection("127.0.0.1", srv.port)
  local victim = tonumber(rd:readline():match("^(%d+)\n$"))
  wr:write("busy 1000\n")
  lasync.sleep(0.25)
  killed[victim] = true
  assert(require("lasync.core").sys.kill(victim, "SIGKILL"))
  pcall(rd.read, rd, 10)  -- the end of input or a reset
  wr:close()
end

-- SIGHUP, then wait until the old workers are gone; adds their pids to retired.
local function reload(srv, retired)
  local old = workers_of(srv.p.pid)
  local stops = count(srv, "the new workers listen: stopping")
  srv.p:send_signal("SIGHUP")
  poll("the new workers", 10, function() return count(srv, "the new workers listen") > stops end)
  poll("the old workers gone", 10, function() return #workers_of(srv.p.pid) == WORKERS end)
  for _, p in ipairs(old) do retired[p] = true end
end

describe("lasync serve --workers 3 under kill -9 and SIGHUP", function()
  it("restarts the killed workers; the others lose nothing; a reload drops nothing",
     helper.async(function()
    local srv = serve()
    local killed, retired = {}, {}
    local done = lasync.spawn(load.run, srv.port, 11, {long = 12, churn = 150, burst = 15})
    local steps = {
      {1.5, kill_busy}, {3, kill_busy}, {4.5, reload}, {7.5, kill_busy}, {9, reload}}
    local t0 = lasync.time()
    for _, s in ipairs(steps) do
      lasync.sleep(math.max(0, t0 + s[1] - lasync.time()))
      s[2](srv, s[2] == reload and retired or killed)
    end
    local r = done:await()
    poll("the restarted workers", 5, function() return #workers_of(srv.p.pid) == WORKERS end)
    srv.p:terminate()
    assert.equal(0, srv.p:wait())
    srv.reader:await()
    local report = load.report(r)
    -- each killed worker was restarted
    assert.equal(3, count(srv, "was killed by SIGKILL"), report)
    assert.equal(3, count(srv, "restarting worker"), report)
    -- no byte of any connection came back wrong; the long-lived ones lost
    -- were a killed worker's, or an old one's closed as its grace ended
    assert.equal(0, r.corrupt, report)
    assert.is_true(r.msgs > 0, report)
    for _, l in ipairs(r.lost) do
      assert.is_true(killed[l.pid] or retired[l.pid] or false, report)
    end
    -- every new connection that failed was one a killed worker had taken:
    -- none was refused or reset before a worker took it, none on a reload
    for _, c in ipairs(r.churn) do
      if not c.ok then assert.is_true(c.pid ~= nil and killed[c.pid] or false, report) end
    end
    assert.equal(0, r.gap, report)
    assert.is_true(r.attempts >= 1000, report)
  end, 30))
end)
