--- lasync.http.serve under load: 200 concurrent keep-alive clients.
local lasync = require "lasync"
local helper = require "helper"
local util = require "http_util"

describe("lasync.http.serve under load", function()
  it("serves 200 concurrent keep-alive clients", helper.async(function()
    local peers = {}
    local srv, port = util.serve(function(req)
      peers[req.peer.port] = (peers[req.peer.port] or 0) + 1
      lasync.sleep(0)
      return 200, req.path
    end, {backlog = 512})
    local function client(i)
      local r, w = lasync.open_connection("127.0.0.1", port)
      local got = {}
      for j = 1, 5 do
        w:write(("GET /%d/%d HTTP/1.1\r\nHost: h\r\n\r\n"):format(i, j))
        local head = r:readuntil("\r\n\r\n")
        got[j] = r:readexactly(tonumber(head:match("Content%-Length: (%d+)")))
      end
      w:close()
      return table.concat(got, " ")
    end
    local tasks = {}
    for i = 1, 200 do tasks[i] = lasync.spawn(client, i) end
    for i, t in ipairs(tasks) do
      assert.equal(("/%d/1 /%d/2 /%d/3 /%d/4 /%d/5"):format(i, i, i, i, i), t:await())
    end
    local n = 0
    for _, count in pairs(peers) do
      assert.equal(5, count)  -- five requests on each connection
      n = n + 1
    end
    assert.equal(200, n)
    util.stop(srv)
  end, {deadline = 20}))
end)
