--- A line-based chat: `lasync serve examples/chat.lua` (or `make run`),
-- then `nc 127.0.0.1 8080` from several terminals. Every line a client
-- sends goes to every other client.
-- The clients are in this module's tables, so in one process: under
-- `--workers N` each worker would be a chat of its own. It refuses to
-- start there, and `lasync serve` exits 1.
local clients = {}  -- writer -> name
local count = 0     -- clients connected
local seq = 0       -- clients ever connected: their names

-- Sends text to every client but `from`. write() never suspends, so a
-- client that does not read holds up nobody: only its own buffer grows.
local function broadcast(from, text)
  for writer in pairs(clients) do
    if writer ~= from then writer:write(text) end
  end
end

local function handler(reader, writer)
  seq = seq + 1
  local name = "guest" .. seq
  clients[writer], count = name, count + 1
  writer:write(("welcome, %s: %d connected\n"):format(name, count))
  broadcast(writer, name .. " joined\n")
  local ok, err = pcall(function()
    for line in reader:lines() do broadcast(writer, ("%s: %s\n"):format(name, line)) end
  end)
  clients[writer], count = nil, count - 1
  broadcast(writer, name .. " left\n")
  if not ok then error(err, 0) end
end

-- on_start gets the worker's index and the number of workers.
local function on_start(_, workers)
  if workers > 1 then
    error(("the chat keeps its clients in one process: serve it without --workers "
      .. "(with %d workers it would be %d separate chats)"):format(workers, workers), 0)
  end
end

return {handler = handler, on_start = on_start}
