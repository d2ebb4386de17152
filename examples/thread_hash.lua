--- Hashes files in worker threads while a server in the same script keeps
-- answering: `scripts/lasync run examples/thread_hash.lua FILE...`.
-- Prints one line per file as sha256sum does ("HEX  FILE"), then how many
-- requests the server answered while the threads were hashing.
--
-- SHA-256 is written in plain Lua here, inside the function sent to the
-- threads: a CPU-bound job that would stall every connection if it ran on
-- the loop. The function has no upvalue (only _ENV): it travels to the
-- thread as bytecode, and reads its file there (blocking I/O, off the loop).
local lasync = require "lasync"

local function sha256_file(path)
  local M = 0xffffffff
  local k = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  }
  local h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
  local w = {}

  local function rotr(x, n) return ((x >> n) | (x << (32 - n))) & M end

  local function block(s, pos)  -- the 64 bytes of s from pos
    for i = 1, 16 do w[i], pos = string.unpack(">I4", s, pos) end
    for i = 17, 64 do
      local a, b = w[i - 15], w[i - 2]
      local s0 = rotr(a, 7) ~ rotr(a, 18) ~ (a >> 3)
      local s1 = rotr(b, 17) ~ rotr(b, 19) ~ (b >> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M
    end
    local a, b, c, d, e, f, g, hh = table.unpack(h)
    for i = 1, 64 do
      local t1 = (hh + (rotr(e, 6) ~ rotr(e, 11) ~ rotr(e, 25)) +
                  ((e & f) ~ (~e & g)) + k[i] + w[i]) & M
      local t2 = ((rotr(a, 2) ~ rotr(a, 13) ~ rotr(a, 22)) +
                  ((a & b) ~ (a & c) ~ (b & c))) & M
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & M, c, b, a, (t1 + t2) & M
    end
    for i, v in ipairs {a, b, c, d, e, f, g, hh} do h[i] = (h[i] + v) & M end
  end

  local file = assert(io.open(path, "rb"))
  local rest, len = "", 0
  while true do
    local chunk = file:read(1 << 16)
    if not chunk then break end
    len = len + #chunk
    rest = rest .. chunk
    local full = #rest - #rest % 64
    for pos = 1, full, 64 do block(rest, pos) end
    rest = rest:sub(full + 1)
  end
  file:close()
  rest = rest .. "\128" .. ("\0"):rep((55 - len) % 64) .. string.pack(">I8", len * 8)
  for pos = 1, #rest, 64 do block(rest, pos) end
  return string.format(("%08x"):rep(8), table.unpack(h))
end

-- The server: answers every line with "pong N".
local served = 0
local server = lasync.start_server(function(reader, writer)
  for _ in reader:lines() do
    served = served + 1
    writer:write("pong " .. served .. "\n")
    writer:drain()
  end
end, "127.0.0.1", 0)
local _, port = server:sockname()

-- The files, each in a worker thread, all at once.
local hashing = {}
for i, path in ipairs(arg) do
  hashing[i] = lasync.spawn(lasync.to_thread, sha256_file, path)
end

-- A client asks the server again and again until every hash is done: each
-- answer came while the threads were working.
local reader, writer = lasync.open_connection("127.0.0.1", port)
local answered = 0
local function all_done()
  for _, t in ipairs(hashing) do if not t:done() then return false end end
  return true
end
repeat
  writer:write("ping\n")
  assert(reader:readline():match("^pong %d+\n$"))
  answered = answered + 1
until all_done()
writer:close()
writer:wait_closed()

for i, path in ipairs(arg) do print(hashing[i]:await() .. "  " .. path) end
print(("the server answered %d requests while the threads were hashing")
      :format(answered))
server:close()
server:wait_closed()
