--- ws_chat.lua: a chat in the browser, over WebSocket.
--   lasync serve examples/ws_chat.lua --http --listen 127.0.0.1:8080
-- then open http://127.0.0.1:8080/ in several browser windows: every
-- message one sends appears in all of them.
--   GET /      the page (plain HTML and a few lines of JavaScript)
--   GET /chat  the WebSocket: each text message received goes to every
--              connected browser
-- Each browser has a queue of at most QUEUE messages and a task that
-- sends them; one whose queue is full is too slow to keep up and is
-- dropped with close code 1008, so that it never stalls the others.
-- The clients are in this module's tables, so in one process: it refuses
-- to start under --workers (as examples/chat.lua does).
local lasync = require "lasync"
local http = require "lasync.http"

local QUEUE = 100      -- messages a browser may be behind
local MAX_TEXT = 1000  -- longest message, in bytes

local clients = {}     -- ws -> its queue
local seq = 0          -- browsers ever connected: their names

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>lasync chat</title>
<style>body{font-family:sans-serif;margin:2em}#log{list-style:none;padding:0}
#log li{padding:.2em 0;border-bottom:1px solid #ddd}</style></head>
<body><h1>lasync chat</h1>
<form id="form"><input id="text" autocomplete="off" size="50" placeholder="Say something">
<button>Send</button></form>
<ul id="log"></ul>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/chat");
const log = document.getElementById("log"), text = document.getElementById("text");
ws.onmessage = (e) => {
  const li = document.createElement("li");
  li.textContent = e.data;
  log.appendChild(li);
};
ws.onopen = () => document.body.dataset.state = "open";
ws.onclose = (e) => document.body.dataset.state = "closed " + e.code;
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  if (text.value) ws.send(text.value);
  text.value = "";
};
</script></body></html>
]]

-- Queues text for every browser; one whose queue is full is dropped.
local function broadcast(text)
  for ws, queue in pairs(clients) do
    if queue:full() then
      clients[ws] = nil
      ws:close(1008, "too slow: more than " .. QUEUE .. " messages behind")
    else
      queue:put_nowait(text)
    end
  end
end

-- Sends a browser's queue, in the order queued, as fast as it reads;
-- ends once the WebSocket is closed (send raises).
local function sender(ws, queue)
  repeat local ok = pcall(ws.send, ws, queue:get()) until not ok
end

local function chat(req)
  local ws = http.websocket(req, {max_message_size = MAX_TEXT})
  local queue = lasync.Queue(QUEUE)
  seq = seq + 1
  local name = "guest" .. seq
  clients[ws] = queue
  local task = lasync.spawn(sender, ws, queue)
  broadcast(name .. " joined")
  while true do
    local text = ws:receive()
    if not text then break end
    broadcast(name .. ": " .. text)
  end
  task:cancel()
  if clients[ws] then
    clients[ws] = nil
    broadcast(name .. " left")
  end
end

local function handler(req)
  if req.path == "/" then
    return 200, PAGE, {["Content-Type"] = "text/html; charset=utf-8"}
  elseif req.path == "/chat" then
    return chat(req)
  end
  return 404, "not found\n"
end

local function on_start(_, workers)
  if workers > 1 then
    error(("the chat keeps its clients in one process: serve it without --workers "
      .. "(with %d workers it would be %d separate chats)"):format(workers, workers), 0)
  end
end

return {handler = handler, on_start = on_start}
