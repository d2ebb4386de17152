--- The cases of spec/socket_compat_spec.lua, each a function(S, P) of a
-- LuaSocket-like module S and the peer's ports P ({tcp=, udp=, closed=})
-- returning its results as a table of plain values: run on Debian's
-- LuaSocket by spec/socklibs/luasocket_case.lua (a process of its own)
-- and on lasync.socket in a task by the spec.
-- The results of a call, trailing nils left out: LuaSocket pushes
-- `data, nil, nil` where a Lua function returns `data`; only select("#")
-- tells them apart.
local function pack(...)
  local r = table.pack(...)
  while r.n > 0 and r[r.n] == nil do r.n = r.n - 1 end
  return r
end

-- tostring of a LuaSocket object without its address: "tcp{client}".
local function shape(o)
  local s = tostring(o)
  return s:match("^(.-): 0x%x+$") or s
end

-- The peer's script name is the first line a TCP client sends.
local function open(S, P, script, timeout)
  local c = S.tcp()
  assert(c:connect("127.0.0.1", P.tcp))
  c:settimeout(timeout or 2)
  if script then assert(c:send(script .. "\n")) end
  return c
end

-- Note: Debian's LuaSocket 3.1 takes "*l" and "*a" only (not "l", "a"),
-- and its getsockname gives the port as a string, getpeername as a number.

-- Sockets in a select result replaced by their names.
local function named(t, names)
  local list, set = {}, {}
  for i, s in ipairs(t) do list[i] = names[s] or "?" end
  for k in pairs(t) do
    if type(k) ~= "number" then set[#set + 1] = names[k] or "?" end
  end
  table.sort(set)
  return {list = list, set = set}
end

local cases = {}
local function case(name, fn) cases[#cases + 1] = {name = name, fn = fn} end

-- A case on one connection to the peer's script (timeout: settimeout's,
-- default 2 s): fn(c) returns the results; the connection is closed after.
local function conn_case(name, script, timeout, fn)
  case(name, function(S, P)
    local c = open(S, P, script, timeout)
    local r = fn(c)
    c:close()
    return r
  end)
end

case("connect to a closed port: nil, 'connection refused'", function(S, P)
  local c = S.tcp()
  local r = pack(c:connect("127.0.0.1", P.closed))
  c:close()
  return {r, pack(S.connect("127.0.0.1", P.closed))}
end)

case("tostring shapes: master, client, closed; close returns 1", function(S, P)
  local c = S.tcp()
  local before = shape(c)
  local ok = c:connect("127.0.0.1", P.tcp)
  local client = shape(c)
  c:send("silent\n")
  return {before, ok, client, c:close(), shape(c)}
end)

conn_case("receive '*l' strips CR LF and LF; 'closed' with the partial line", "lines", nil,
  function(c)
    return {pack(c:receive("*l")), pack(c:receive("*l")), pack(c:receive()),
            pack(c:receive("*l")), pack(c:receive("*l"))}
  end)

conn_case("receive '*a' reads to the end; again: nil, 'closed', ''", "lines", nil, function(c)
  return {pack(c:receive("*a")), pack(c:receive("*a"))}
end)

-- LuaSocket 3.1 counts the prefix in the count: (3, "pre-") reads nothing.
conn_case("receive a count, with a prefix; 'closed' with the rest", "count", nil, function(c)
  return {pack(c:receive(4)), pack(c:receive(3, "pre-")), pack(c:receive(5, "ab")),
          pack(c:receive(10)), pack(c:receive(1))}
end)

conn_case("receive '*l' and '*a' with a prefix", "lines", nil, function(c)
  return {pack(c:receive("*l", ">")), pack(c:receive("*a", "<"))}
end)

conn_case("receive a count of 0, with and without a prefix", "count", nil, function(c)
  return {pack(c:receive(0)), pack(c:receive(0, "p")), pack(c:receive("*a"))}
end)

conn_case("settimeout(0.3): nil, 'timeout', partial (with its prefix)", "partial", 0.3,
  function(c)
    return {pack(c:receive(10, "p:")), pack(c:receive("*l")), pack(c:receive(2))}
  end)

conn_case("settimeout(0): nil, 'timeout' at once; data already there is returned", "partial",
  nil, function(c)
    local first = pack(c:receive(3))
    return {pack(c:settimeout(0)), first, pack(c:receive(1)), pack(c:receive("*l")),
            pack(c:receive("*a"))}
  end)

conn_case("'closed' after the peer closes, for each pattern", "count", nil, function(c)
  return {pack(c:receive("*a")), pack(c:receive(1)), pack(c:receive("*l"))}
end)

conn_case("send(data, i, j) returns the last index sent", "echo", nil, function(c)
  local r = {pack(c:send("hello world", 3, 7)), pack(c:send("abc", 2)),
             pack(c:send("xyz", -2)), pack(c:send("")), pack(c:send("abc", 3, 2))}
  r[#r + 1] = pack(c:receive(9))
  return r
end)

conn_case("shutdown('send'): the peer sees the end, replies reach us", "echo", nil, function(c)
  c:send("abc")
  return {pack(c:shutdown("send")), pack(c:receive("*a"))}
end)

conn_case("large lines and bodies (over 64 KiB) across many reads", "big", nil, function(c)
  local line, all = pack(c:receive("*l")), pack(c:receive("*a"))
  -- Lengths and errors, not 170 kB of data, when they differ.
  return {line[1] == ("x"):rep(100000), all[1] == ("y"):rep(70000), #(line[1] or line[3]),
          #(all[1] or all[3]), line[2], all[2]}
end)

case("getsockname and getpeername: ip, port, family", function(S, P)
  local c = open(S, P, "silent")
  local ip, port, fam = c:getsockname()
  local pip, pport, pfam = c:getpeername()
  c:close()
  return {ip, type(port), tonumber(port) > 0, fam, pip, type(pport), tonumber(pport) == P.tcp,
          pfam}
end)

case("dns.toip('localhost')", function(S)
  return pack(S.dns.toip("localhost"))
end)

case("udp: sendto and receivefrom", function(S, P)
  local u = S.udp()
  u:settimeout(2)
  local r = {shape(u), pack(u:setsockname("127.0.0.1", 0)),
             pack(u:sendto("ping", "127.0.0.1", P.udp))}
  local data, ip, port = u:receivefrom()
  r[#r + 1] = {data, ip, type(port), tonumber(port) == P.udp}
  r[#r + 1] = pack(u:close())
  return r
end)

case("udp: setpeername, send, receive, getpeername", function(S, P)
  local u = S.udp()
  u:settimeout(2)
  local r = {pack(u:setpeername("127.0.0.1", P.udp)), shape(u), pack(u:send("hi")),
             pack(u:receive())}
  local ip, port, fam = u:getpeername()
  r[#r + 1] = {ip, type(port), tonumber(port) == P.udp, fam}
  u:close()
  return r
end)

case("udp: 'timeout' when nothing comes", function(S)
  local u = S.udp()
  u:setsockname("127.0.0.1", 0)
  u:settimeout(0.1)
  local r = {pack(u:receivefrom()), pack(u:receive())}
  u:close()
  return r
end)

case("select: ready and not ready sockets", function(S, P)
  local a, b = open(S, P, "partial"), open(S, P, "silent")
  local names = {[a] = "a", [b] = "b"}
  local r1, w1, e1 = S.select({a, b}, nil, 2)
  local r2, w2, e2 = S.select({b}, nil, 0.1)
  local r3, w3, e3 = S.select(nil, {b}, 2)
  local r4, w4, e4 = S.select({}, {}, 0)
  a:close()
  b:close()
  return {{named(r1, names), named(w1, names), e1}, {named(r2, names), named(w2, names), e2},
          {named(r3, names), named(w3, names), e3}, {named(r4, names), named(w4, names), e4}}
end)

case("server: bind, listen, accept with and without a client", function(S)
  local srv = S.tcp()
  local r = {pack(srv:bind("127.0.0.1", 0)), pack(srv:listen(8)), shape(srv),
             pack(srv:settimeout(0.1)), pack(srv:accept())}
  local _, port = srv:getsockname()
  local c = S.tcp()
  r[#r + 1] = pack(c:connect("127.0.0.1", port))
  srv:settimeout(2)
  local s = srv:accept()
  s:settimeout(2)
  local _, cport = c:getsockname()
  local _, sport = s:getpeername()
  r[#r + 1] = {shape(s), tonumber(cport) == tonumber(sport)}
  c:send("hi\n")
  r[#r + 1] = pack(s:receive())
  for _, o in ipairs {c, s, srv} do o:close() end
  return r
end)

-- A Lua literal for v: nil, booleans, numbers, strings, tables of these.
local function literal(v)
  if type(v) ~= "table" then return type(v) == "string" and ("%q"):format(v) or tostring(v) end
  local out = {}
  for k, x in pairs(v) do out[#out + 1] = ("[%s]=%s"):format(literal(k), literal(x)) end
  return "{" .. table.concat(out, ",") .. "}"
end

-- The case runner's serialiser, beside the cases.
cases.literal = literal

return cases
