--- Every fenced code block of README.md and docs/*.md runs as shown, and
-- prints what the page says it prints. The convention (docs/development.md,
-- "Code blocks in the docs"):
--   ```lua   a whole program, run in a scratch folder of its page: with
--            `lua5.4` when it calls lasync.run, with `lasync test` when it
--            is a busted spec (it calls describe), else with `lasync run`.
--            A first line `-- NAME.lua: ...` names its file.
--   ```sh    run with /bin/sh in that folder; `$ ` lines are commands, the
--            lines after each one what it prints.
--   ```text  what the block before printed, when the line introducing it
--            ends in "prints:"; otherwise text, not run.
--   ```json  a configuration shown: it must parse as JSON.
-- An HTML comment right before a block changes that:
--   <!-- not run: REASON -->          not run (REASON is required)
--   <!-- continues the block above --> appended to the lua block above,
--                                      which runs only as a whole with it
--   <!-- file: NAME -->               written to NAME (it must compile),
--                                      for a later sh block to run
--   <!-- same as PATH -->             must equal the checkout's file PATH,
--                                      or that file without its opening
--                                      comment lines
--   <!-- background -->               a sh command left running (a server):
--                                      its page's port must accept, and it
--                                      is stopped by PID after the page
-- In expected output `...` matches any text. The ports 8080 and 6379 in a
-- block are free ports the spec picks for the page (and the output says
-- 8080 and 6379 again); log times and pids are normalised. The folder holds links to the checkout's lua/,
-- examples/, docs/, README.md, spec/fixtures/ and the build under test
-- (as build/), and scripts/lasync and lua5.4 wrappers (the sanitizer
-- preload goes to lasync's processes only, as command_spec.lua does).
local lasync = require "lasync"
local helper = require "helper"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")
if ROOT == "" then ROOT = "./" end
ROOT = helper.shell("unset LD_PRELOAD; cd " .. ROOT .. " && pwd"):match("[^\n]+") .. "/"
local BUILD = os.getenv("LASYNC_BUILD") or "build"
local PRELOAD = os.getenv("LD_PRELOAD") or ""

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs a shell script without the sanitizer preload; returns its output
-- (stdout and stderr) and exit status.
local function sh(script)
  return helper.shell("unset LD_PRELOAD; { " .. script .. "\n} 2>&1")
end

local write = helper.write_file

-- The blocks of a page: {line, lang, text, mark, intro}, where mark is the
-- HTML comment right before the fence and intro the text line before.
local function blocks_of(path)
  local list, lines = {}, {}
  for l in (helper.read_file(ROOT .. path) .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  local i = 1
  while i <= #lines do
    local indent, lang = lines[i]:match("^(%s*)```(%S*)%s*$")
    if indent then
      local b, body = {line = i, lang = lang}, {}
      local j = i - 1
      while j > 0 and lines[j]:match("^%s*$") do j = j - 1 end
      b.mark = j > 0 and lines[j]:match("^%s*<!%-%- (.-) %-%->%s*$")
      b.intro = j > 0 and lines[j] or ""
      i = i + 1
      while not lines[i]:match("^%s*```%s*$") do
        body[#body + 1] = lines[i]:sub(#indent + 1)
        i = i + 1
        assert(i <= #lines, path .. ":" .. b.line .. ": the block is not closed")
      end
      b.text = table.concat(body, "\n") .. "\n"
      list[#list + 1] = b
    end
    i = i + 1
  end
  return list
end

-- A Lua pattern for expected output: `...` matches anything.
local function pattern(expected)
  local p = expected:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("%%%.%%%.%%%.", ".-")
  return "^" .. p .. "$"
end

-- The ports a page's blocks name, replaced by free ones.
local PORTS = {"8080", "6379"}

local function normalise(out, ports)
  out = out:gsub("%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z", "TIME")
  out = out:gsub("lasync%[%d+%]", "lasync[PID]")
  for shown, real in pairs(ports or {}) do
    out = out:gsub("%f[%d]" .. real .. "%f[%D]", shown)
  end
  return out
end

local function check_output(expected, out, ports)
  local want, got = normalise(expected), normalise(out, ports)
  if not got:match(pattern(want)) then
    error(("printed:\n%s\nexpected:\n%s"):format(got, want), 0)
  end
end

-- A free port on 127.0.0.1 (bound to 0, then let go).
local function free_port()
  return lasync.run(function()
    local s = lasync.start_server(function() end, "127.0.0.1", 0)
    local _, port = s:sockname()
    s:close()
    s:wait_closed()
    return port
  end)
end

-- Waits (at most 10 s) until 127.0.0.1:port accepts a connection.
local function wait_port(port)
  lasync.run(function()
    for _ = 1, 200 do
      local ok, _, w = pcall(lasync.open_connection, "127.0.0.1", port)
      if ok then w:close() return end
      lasync.sleep(0.05)
    end
    error("nothing listens on port " .. port .. " after 10 s", 0)
  end)
end

-- A page's scratch folder, with links into the checkout and wrappers
-- that give lasync's processes the sanitizer preload.
local function scratch_dir()
  local dir = sh("mktemp -d"):match("[^\n]+")
  -- The programs blocks start inherit the preload: LeakSanitizer would
  -- fail the ones that never free (sort), which are no part of lasync.
  write(dir .. "/lsan.supp", "leak:/usr/bin/sort\n")
  local wrap = "#!/bin/sh\nLD_PRELOAD=%s LSAN_OPTIONS=suppressions=" .. dir .. "/lsan.supp exec %s \"$@\"\n"
  local out, code = sh(([[
    cd %s && mkdir scripts spec && ln -s %slua %sexamples %sdocs %sREADME.md . &&
    ln -s %s%s build && ln -s %sspec/fixtures spec/fixtures
  ]]):format(quote(dir), ROOT, ROOT, ROOT, ROOT, ROOT, BUILD, ROOT))
  assert(code == 0, out)
  write(dir .. "/scripts/lasync", wrap:format(quote(PRELOAD), quote(ROOT .. "scripts/lasync")))
  write(dir .. "/scripts/lua5.4", wrap:format(quote(PRELOAD), "/usr/bin/lua5.4"))
  write(dir .. "/.curlrc", "silent\nshow-error\n")  -- no progress meter, as at a terminal
  sh("chmod +x " .. quote(dir) .. "/scripts/*")
  return dir
end

-- The page's state while its blocks run: the folder, the port, the
-- background processes.
local Page = {}
Page.__index = Page

function Page:subst(script)
  for shown, real in pairs(self.ports) do
    script = script:gsub("%f[%d]" .. shown .. "%f[%D]", tostring(real))
  end
  return script
end

function Page:shell(script)
  script = self:subst(script)
  return sh(("cd %s && CURL_HOME=%s PATH=%s/scripts:\"$PATH\" timeout 20 /bin/sh -c %s </dev/null"):format(
    quote(self.dir), quote(self.dir), quote(self.dir), quote(script)))
end

-- The ports of PORTS that text names, as a set.
local function ports_in(text)
  local set = {}
  for _, port in ipairs(PORTS) do
    if text:match("%f[%d]" .. port .. "%f[%D]") then set[port] = true end
  end
  return set
end

-- Stops (SIGTERM, SIGKILL after 5 s) the background processes that hold
-- one of the ports of `set`, or all of them.
function Page:stop(set)
  local kept = {}
  for _, bg in ipairs(self.background) do
    local hit = not set
    for port in pairs(set or {}) do hit = hit or bg.ports[port] end
    if hit then
      sh(([[
        kill -TERM %s 2>/dev/null; i=0
        while kill -0 %s 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
        kill -KILL %s 2>/dev/null]]):format(bg.pid, bg.pid, bg.pid))
    else
      kept[#kept + 1] = bg
    end
  end
  self.background = kept
end

-- Starts a command in the background, once the processes holding its
-- ports (those `shown` names, default script) are stopped, and waits for
-- its ports; returns its log's path.
function Page:start(script, shown)
  local ports = ports_in(shown or script)
  self:stop(ports)
  local log = ("%s/background%d.log"):format(self.dir, #self.background + 1)
  local out = sh(("cd %s && CURL_HOME=%s PATH=%s/scripts:\"$PATH\" /bin/sh -c %s >%s 2>&1 </dev/null & echo $!"):format(
    quote(self.dir), quote(self.dir), quote(self.dir), quote("exec " .. self:subst(script)), quote(log)))
  self.background[#self.background + 1] = {pid = assert(out:match("^(%d+)"), out), ports = ports}
  for port in pairs(ports) do wait_port(self.ports[port]) end
  return log
end

-- The commands of a console block (`$ ` lines, `\` continuing) and what
-- each prints.
local function commands(text)
  local list = {}
  for l in text:gmatch("(.-)\n") do
    local cur = list[#list]
    if cur and cur.cmd:match("\\$") then
      cur.cmd = cur.cmd .. "\n" .. l
    elseif l:match("^%$ ") then
      list[#list + 1] = {cmd = l:sub(3), out = ""}
    else
      assert(cur, "a console block must start with a `$ ` line")
      cur.out = cur.out .. l .. "\n"
    end
  end
  return list
end

-- The file a program is saved as: its first line's `-- NAME.lua:` or one
-- named after its line.
local function file_name(b, suffix)
  return b.text:match("^%-%- ([%w_/.]+%.lua)[: ]") or ("block" .. b.line .. suffix .. ".lua")
end

function Page:run_lua(b)
  local spec = b.text:match("%f[%w]describe%(")
  local name = file_name(b, spec and "_spec" or "")
  write(self.dir .. "/" .. name, self:subst(b.text))
  local how = spec and "lasync test" or b.text:match("lasync%.run%(") and "lua5.4" or "lasync run"
  if b.mark == "background" then
    self:start(how .. " " .. quote(name), b.text)
    return
  end
  local out, code = self:shell(how .. " " .. quote(name))
  assert(code == 0, ("%s %s exited %s:\n%s"):format(how, name, tostring(code), out))
  if spec then return end
  check_output(b.expected or "", out, self.ports)
end

function Page:run_sh(b)
  if not b.text:match("^%$ ") then
    local out, code = self:shell(b.text)
    assert(code == 0, ("exited %s:\n%s"):format(tostring(code), out))
    return check_output(b.expected or "", out, self.ports)
  end
  for _, c in ipairs(commands(b.text)) do
    if b.mark == "background" then
      local log = self:start(c.cmd)
      lasync.run(function()  -- the first lines come a moment after the port
        for _ = 1, 100 do
          if normalise(helper.read_file(log), self.ports):match(pattern(normalise(c.out) .. "...")) then return end
          lasync.sleep(0.05)
        end
      end)
      check_output(c.out .. "...", helper.read_file(log), self.ports)
    else
      local out, code = self:shell(c.cmd)
      assert(code == 0, ("%s exited %s:\n%s"):format(c.cmd, tostring(code), out))
      if out ~= "" and not out:match("\n$") then out = out .. "\n" end  -- a terminal's next line
      check_output(c.out, out, self.ports)
    end
  end
end

function Page:run(b)
  local mark = b.mark or ""
  if mark:match("^file: ") then
    local name = mark:match("^file: (%S+)$")
    write(self.dir .. "/" .. name, b.text)
    assert(loadfile(self.dir .. "/" .. name))
  elseif mark:match("^same as ") then
    local file = helper.read_file(ROOT .. mark:match("^same as (%S+)$"))
    local body = file
    while body:match("^%-%-") do body = body:gsub("^[^\n]*\n", "", 1) end
    if file ~= b.text then assert.equal(body, b.text) end
  elseif b.lang == "json" then
    write(self.dir .. "/block.json", b.text)
    local out, code = sh("/usr/bin/python3 -m json.tool " .. quote(self.dir .. "/block.json") .. " >/dev/null")
    assert(code == 0, "not JSON: " .. out)
  elseif b.lang == "lua" then
    self:run_lua(b)
  else
    self:run_sh(b)
  end
end

-- The runnable units of a page: blocks with their expected output, the
-- continued ones joined, the skipped ones counted.
local function units_of(path, counts)
  local units, problems, last = {}, {}, nil
  local function check(ok, msg)
    if not ok then problems[#problems + 1] = msg end
    return ok
  end
  for _, b in ipairs(blocks_of(path)) do
    local mark = b.mark or ""
    b.name = path .. ":" .. b.line
    if mark:match("^not run") then
      check(mark:match("^not run: %S"), b.name .. ": a skipped block needs a reason: <!-- not run: why -->")
      counts.skipped = counts.skipped + 1
      last = nil
    elseif b.lang == "text" and b.intro:match("prints:%s*$") then
      check(last and not last.expected, b.name .. ": an output block must follow a code block")
      last.expected = b.text
    elseif b.lang == "text" then
      counts.text = counts.text + 1
    elseif mark == "continues the block above" then
      if check(last and last.lang == "lua" and b.lang == "lua", b.name .. ": continues no lua block") then
        last.text = last.text .. b.text
        last.name = last.name .. "+" .. b.line
      end
    elseif check(b.lang == "lua" or b.lang == "sh" or b.lang == "json",
        b.name .. ": a block must be ```lua, ```sh, ```json or ```text (or marked not run), not ```"
        .. b.lang) then
      units[#units + 1] = b
      last = b
    end
  end
  return units, problems
end

local function pages()
  local list = {"README.md"}
  for p in sh("cd " .. quote(ROOT) .. " && ls docs/*.md"):gmatch("[^\n]+") do list[#list + 1] = p end
  return list
end

local counts = {run = 0, skipped = 0, text = 0}

for _, path in ipairs(pages()) do
  describe(path, function()
    local page = setmetatable({}, Page)
    lazy_setup(function()
      page.dir, page.ports, page.background = scratch_dir(), {}, {}
      for _, port in ipairs(PORTS) do page.ports[port] = free_port() end
    end)
    lazy_teardown(function()
      page:stop()
      sh("rm -rf " .. quote(page.dir))
    end)
    local units, problems = units_of(path, counts)
    for _, msg in ipairs(problems) do
      it(msg:match("^(%S-):? "), function() error(msg, 0) end)
    end
    for _, b in ipairs(units) do
      counts.run = counts.run + 1
      it(b.name, function() page:run(b) end)
    end
  end)
end

describe("the docs' code blocks", function()
  it("are counted", function()
    assert.is_true(counts.run >= 40, "blocks run: " .. counts.run)
    io.stderr:write(("docs blocks: %d run, %d skipped with a reason, %d text\n"):format(
      counts.run, counts.skipped, counts.text))
  end)
end)
