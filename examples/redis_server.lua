--- A RESP2 server that redis-cli and redis-benchmark talk to:
-- `scripts/lasync serve examples/redis_server.lua --listen 127.0.0.1:6380`,
-- then `redis-cli -p 6380`. Strings only: PING, ECHO, SET (EX, PX, NX, XX,
-- KEEPTTL), GET, DEL, INCR, EXISTS, EXPIRE, TTL, MGET, MSET, DBSIZE, with
-- redis-server's error replies; inline commands (`PING` typed over nc) too.
-- Pipelining: every command already received is answered, and the whole
-- batch of replies goes out in one write, drained once.
-- The keyspace lives in this module's tables, so in one process: under
-- `--workers N` each worker has a keyspace of its own (a client sees only
-- its worker's keys); serve it without --workers for one store.
-- Keys expire when touched after their time, and a sweep every
-- SWEEP_S seconds drops the expired ones nobody touches. A SIGHUP
-- reload serves new connections from a new, empty keyspace.
local lasync = require "lasync"

local SWEEP_S = 1

local store = {}    -- key -> value (a string, or an integer INCR made)
local expires = {}  -- key -> when it expires, on lasync.time() (seconds)

local function alive(key)
  local at = expires[key]
  if at and at <= lasync.time() then
    store[key], expires[key] = nil, nil
  end
  return store[key]
end

local function sweep()
  while true do
    lasync.sleep(SWEEP_S)
    local now = lasync.time()
    for key, at in pairs(expires) do
      if at <= now then store[key], expires[key] = nil, nil end
    end
  end
end

-- Replies -----------------------------------------------------------------

local OK, PONG, NIL = "+OK\r\n", "+PONG\r\n", "$-1\r\n"
local NOT_INT = "-ERR value is not an integer or out of range\r\n"
local SYNTAX = "-ERR syntax error\r\n"

-- lasync.resp_encode makes the replies in C: a bulk string, or an integer
-- without the snprintf that tostring pays (most of an INCR's reply).
local encode = lasync.resp_encode
local type, tostring = type, tostring

-- A stored value's bulk reply: INCR keeps its counters as integers.
local function bulk(v)
  return encode(type(v) == "string" and v or tostring(v))
end

local int = encode

local function arity(name)
  return "-ERR wrong number of arguments for '" .. name .. "' command\r\n"
end

-- redis's string2ll: an optional '-', no '+', no leading zeros or spaces,
-- within 64 bits.
local function integer(s)
  if s == "0" or s:find("^%-?[1-9]%d*$") then return math.tointeger(tonumber(s)) end
end

-- Commands: each takes the argument list (argv[1] is the name) and its
-- length, and returns the reply. `arity` is redis's: n exact, -n at least n.
local commands = {}

-- Under its lower and upper case names: clients send either, and a
-- lookup of those needs no lower() per command.
local function def(name, n, fn)
  local c = {name = name, arity = n, fn = fn}
  commands[name], commands[name:upper()] = c, c
end

def("ping", -1, function(argv, argc)
  if argc == 1 then return PONG end
  if argc == 2 then return encode(argv[2]) end
  return arity("ping")
end)

def("echo", 2, function(argv) return encode(argv[2]) end)

def("get", 2, function(argv)
  local key = argv[2]
  local v = store[key]
  if expires[key] then v = alive(key) end  -- most keys have no expiry: no call
  if type(v) == "string" then return encode(v) end
  return v == nil and NIL or bulk(v)
end)

-- SET's options, as redis parses them: the last of EX/PX wins only if
-- given once; NX with XX, or two expiries, is a syntax error.
local function set_options(argv, argc)
  local o, i = {}, 4
  while i <= argc do
    local opt = argv[i]:upper()
    if opt == "NX" and not o.xx then o.nx = true
    elseif opt == "XX" and not o.nx then o.xx = true
    elseif opt == "KEEPTTL" and not o.ttl then o.keepttl = true
    elseif (opt == "EX" or opt == "PX") and not o.ttl and not o.keepttl and i < argc then
      local n = integer(argv[i + 1])
      if not n then return nil, NOT_INT end
      if n <= 0 or n > math.maxinteger // 1000 then
        return nil, "-ERR invalid expire time in 'set' command\r\n"
      end
      o.ttl, i = opt == "EX" and n or n / 1000, i + 1
    else
      return nil, SYNTAX
    end
    i = i + 1
  end
  return o
end

def("set", -3, function(argv, argc)
  local key = argv[2]
  if argc == 3 then  -- the common case, without a table
    store[key], expires[key] = argv[3], nil
    return OK
  end
  local o, err = set_options(argv, argc)
  if not o then return err end
  local exists = alive(key) ~= nil
  if (o.nx and exists) or (o.xx and not exists) then return NIL end
  store[key] = argv[3]
  if not o.keepttl then expires[key] = o.ttl and lasync.time() + o.ttl end
  return OK
end)

local function count(argv, argc, each)
  local n = 0
  for i = 2, argc do
    if alive(argv[i]) ~= nil then
      n = n + 1
      if each then each(argv[i]) end
    end
  end
  return int(n)
end

local function forget(key)
  store[key], expires[key] = nil, nil
end

def("del", -2, function(argv, argc) return count(argv, argc, forget) end)
def("exists", -2, function(argv, argc) return count(argv, argc) end)

-- INCR keeps the value as a Lua integer, so a counter is parsed once.
def("incr", 2, function(argv)
  local key = argv[2]
  local v = alive(key)
  local n = math.type(v) == "integer" and v or (v == nil and 0 or integer(v))
  if not n then return NOT_INT end
  if n == math.maxinteger then return "-ERR increment or decrement would overflow\r\n" end
  store[key] = n + 1  -- an expiry stays, as in redis
  return int(n + 1)
end)

def("expire", -3, function(argv, argc)
  local key, n = argv[2], integer(argv[3])
  if not n then return NOT_INT end
  if argc > 3 then return "-ERR Unsupported option " .. argv[4] .. "\r\n" end
  if n > math.maxinteger // 1000 or n < math.mininteger // 1000 then
    return "-ERR invalid expire time in 'expire' command\r\n"
  end
  if alive(key) == nil then return int(0) end
  if n <= 0 then forget(key) else expires[key] = lasync.time() + n end
  return int(1)
end)

def("ttl", 2, function(argv)
  local key = argv[2]
  if alive(key) == nil then return int(-2) end
  local at = expires[key]
  if not at then return int(-1) end
  return int(math.floor(at - lasync.time() + 0.5))  -- rounded, as redis
end)

def("dbsize", 1, function()
  local n = 0
  for _ in pairs(store) do n = n + 1 end  -- expired keys not yet swept count
  return int(n)
end)

def("mget", -2, function(argv, argc)
  local out = {"*" .. (argc - 1) .. "\r\n"}
  for i = 2, argc do
    local v = alive(argv[i])
    out[i] = v and bulk(v) or NIL
  end
  return table.concat(out)
end)

def("mset", -3, function(argv, argc)
  if argc % 2 == 0 then return arity("mset") end
  for i = 2, argc, 2 do store[argv[i]], expires[argv[i]] = argv[i + 1], nil end
  return OK
end)

-- redis quotes at most 128 bytes of the arguments, each followed by a space.
local function unknown(argv, argc)
  local args = {}
  local room = 128
  for i = 2, argc do
    if room <= 0 then break end
    local a = argv[i]:sub(1, room)
    args[#args + 1] = "'" .. a .. "' "
    room = room - #a - 3
  end
  return ("-ERR unknown command '%s', with args beginning with: %s\r\n")
    :format(argv[1]:sub(1, 128), table.concat(args))
end

local function execute(argv, argc)
  local name = argv[1]
  local c = commands[name] or commands[name:lower()]
  if not c then return unknown(argv, argc) end
  local a = c.arity
  if (a > 0 and argc ~= a) or argc < -a then return arity(c.name) end
  return c.fn(argv, argc)
end

-- Serving -----------------------------------------------------------------
-- reader:readresp frames the commands in C, into argv; with `true` it
-- does not wait, and returns false when no whole command is buffered:
-- the batch is then answered, in one write, and drained once.

local concat = table.concat

local function handler(reader, writer)
  local argv, out = {}, {}
  local readresp = reader.readresp  -- looked up once, not per command
  while true do
    local argc, err = readresp(reader, argv)
    local n = 0
    while argc do
      n = n + 1
      out[n] = execute(argv, argc)
      argc, err = readresp(reader, argv, true)
    end
    if err then  -- as redis-server: the error, then close
      n = n + 1
      out[n] = "-ERR " .. err .. "\r\n"
    end
    if n > 0 then writer:write(concat(out, "", 1, n)) end
    if argc == nil then return end  -- the end of input, or that error
    writer:drain()
  end
end

-- The sweep starts with the first connection of the module (so a SIGHUP
-- reload's new module, which starts with an empty keyspace, sweeps its
-- own) and is cancelled as the server stops.
local sweeper
return {
  handler = function(reader, writer)
    sweeper = sweeper or lasync.spawn(sweep)
    return handler(reader, writer)
  end,
  on_stop = function()
    if sweeper then sweeper:cancel() end
  end,
}
