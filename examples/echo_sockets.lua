--- asyncio's classic echo server on low-level sockets, line for line:
-- an accept loop that starts a task per client, which receives with
-- loop:sock_recv and sends back with loop:sock_sendall.
--   lua5.4 examples/echo_sockets.lua [port]     (default 15555; 0: any)
-- then `nc 127.0.0.1 15555`; "quit" ends a client's session.
local lasync = require "lasync"
local socket = require "lasync.socket"

local function handle_client(client)
  local loop = lasync.get_running_loop()
  local request = nil
  while request ~= "quit" do
    request = loop:sock_recv(client, 255)
    if request == "" then break end  -- the client went away
    loop:sock_sendall(client, request)
    request = request:gsub("%s+$", "")
  end
  client:close()
end

local function run_server(port, on_listening)
  local server = socket.tcp()
  assert(server:bind("127.0.0.1", port))
  server:listen(8)
  server:settimeout(0)
  local loop = lasync.get_running_loop()
  if on_listening then on_listening(server) end
  while true do
    local client = loop:sock_accept(server)
    loop:create_task(handle_client, client)
  end
end

if ... == "module" then return {run_server = run_server, handle_client = handle_client} end
lasync.run(run_server, tonumber(arg[1]) or 15555, function(server)
  print(("listening on %s:%d"):format(server:getsockname()))
end)
