-- The HTTP client (docs/reference.md §10: request, get, post) against a
-- server no one here wrote: Python's http.server (spec/http/pyserver.py),
-- over http and https, started and stopped by its pid.
local helper = require "helper"
local util = require "http_util"
local lasync = require "lasync"
local http = require "lasync.http"

local HERE = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$")
local TLS = HERE .. "../fixtures/tls/"

local quote = util.quote

-- Starts pyserver.py (args: extra words).
local function start_python(scratch, name, args)
  return util.start_python(scratch, name, "python3 " .. quote(HERE .. "pyserver.py"), args)
end

describe("lasync.http client against Python's http.server", function()
  local scratch, py, pys = helper.scratch(), nil, nil
  local base, tbase

  lazy_setup(function()
    py = start_python(scratch, "http")
    pys = start_python(scratch, "https", ("--tls %s %s"):format(
      quote(TLS .. "server.pem"), quote(TLS .. "server.key")))
    base = ("http://127.0.0.1:%d"):format(py.port)
    tbase = ("https://localhost:%d"):format(pys.port)
  end)

  lazy_teardown(function()
    py.stop()
    pys.stop()
    scratch.cleanup()
  end)

  it("gets a body with its status, reason, version and headers", helper.async(function()
    local res = http.get(base .. "/hello")
    assert.are.same({200, "OK", "1.1", "hello"}, {res.status, res.reason, res.version, res.body})
    assert.are.equal("5", res.headers["content-length"])
    assert.are.equal("5", res.headers["Content-Length"])
  end))

  it("reuses a kept-alive connection for the same scheme, host and port", helper.async(function()
    local first = http.get(base .. "/conn").body
    assert.are.equal(first, http.get(base .. "/conn").body)
    assert.are.equal(first, http.get(base .. "/conn?again").body)
  end))

  it("retries on a new connection when a kept-alive one was closed", helper.async(function()
    for i = 1, 4 do
      assert.are.equal("dropped", http.get(base .. "/drop").body)
      -- the close seen before the next request (at_eof), or only by it
      if i % 2 == 0 then lasync.sleep(0.05) end
      assert.are.equal("hello", http.get(base .. "/hello").body)
    end
  end))

  it("sends the caller's headers and reads repeated ones", helper.async(function()
    local res = http.get(base .. "/headers", {headers = {["X-Test"] = "sent"}})
    assert.are.equal("sent", res.body)
    assert.are.same({"a=1", "b=2"}, res.headers:get_all("set-cookie"))
    assert.are.equal("a=1, b=2", res.headers["Set-Cookie"])
  end))

  it("posts a body", helper.async(function()
    assert.are.equal("POST data", http.post(base .. "/echo", "data").body)
    local res = http.request("PUT", base .. "/echo", {body = ("x"):rep(100000)})
    assert.are.equal("PUT " .. ("x"):rep(100000), res.body)
  end))

  it("decodes a chunked body and one that ends with the connection", helper.async(function()
    assert.are.equal("one two three", http.get(base .. "/chunked").body)
    assert.are.equal("until close", http.get(base .. "/close").body)
    assert.are.equal("hello", http.get(base .. "/hello").body)
  end))

  it("gives HEAD no body", helper.async(function()
    local res = http.request("HEAD", base .. "/hello")
    assert.are.same({200, "", "5"}, {res.status, res.body, res.headers["content-length"]})
    assert.are.equal("hello", http.get(base .. "/hello").body)  -- the connection is still in step
  end))

  it("follows redirects for GET, relative and absolute, unless told not to", helper.async(function()
    assert.are.same({200, "hello"}, {http.get(base .. "/redirect").status, http.get(base .. "/redirect").body})
    assert.are.equal("hello", http.get(base .. "/redirect-abs").body)
    local res = http.get(base .. "/redirect", {follow_redirects = false})
    assert.are.same({302, "/hello"}, {res.status, res.headers.location})
    assert.are.equal(302, http.post(base .. "/redirect", "x").status)  -- POST is not followed
  end))

  it("raises HTTPError after 10 redirects", helper.async(function()
    local err = helper.error_of(http.get, base .. "/loop")
    assert.is_true(lasync.HTTPError:is(err), tostring(err))
    assert.matches("redirects", tostring(err))
  end))

  it("returns a status of 400 or more as a response", helper.async(function()
    local res = http.get(base .. "/missing")
    assert.are.same({404, "no such thing"}, {res.status, res.body})
  end))

  it("raises HTTPError on a malformed response", helper.async(function()
    local err = helper.error_of(http.get, base .. "/garbage")
    assert.is_true(lasync.HTTPError:is(err), tostring(err))
  end))

  it("raises OSError when nothing listens", helper.async(function()
    local server = lasync.start_server(function() end, "127.0.0.1", 0)
    local _, port = server:sockname()
    server:close()
    server:wait_closed()
    local err = helper.error_of(http.get, ("http://127.0.0.1:%d/"):format(port))
    assert.is_true(lasync.ConnectionRefusedError:is(err), tostring(err))
  end))

  it("bounds the whole request with timeout", helper.async(function()
    local err = helper.error_of(http.get, base .. "/slow", {timeout = 0.2})
    assert.is_true(lasync.TimeoutError:is(err), tostring(err))
  end))

  it("streams a body with read, lines and close", helper.async(function()
    local res = http.get(base .. "/big", {stream = true})
    assert.are.same({200, nil}, {res.status, res.body})
    local total, part = 0, res:read(1000)
    while part ~= "" do
      assert.is_true(#part <= 1000)
      total = total + #part
      part = res:read(1000)
    end
    assert.are.equal(1 << 20, total)
    local n, last = 0, nil
    for line in http.get(base .. "/lines", {stream = true}):lines() do
      n, last = n + 1, line
    end
    assert.are.same({1000, "line 1000"}, {n, last})
    http.get(base .. "/big", {stream = true}):close()
    assert.are.equal("hello", http.get(base .. "/hello").body)
  end))

  it("speaks https, verifying the certificate", helper.async(function()
    local res = http.get(tbase .. "/hello", {ssl = {cafile = TLS .. "ca.pem"}})
    assert.are.same({200, "hello"}, {res.status, res.body})
    local err = helper.error_of(http.get, tbase .. "/hello")  -- the system's CAs do not know it
    assert.is_true(lasync.SSLCertVerificationError:is(err), tostring(err))
  end))

  it("names the argument a bad call got wrong", helper.async(function()
    assert.matches("bad argument #1 to 'get' %(an http:// or https:// URL expected, got 'ftp://x/'%)",
                   helper.error_of(http.get, "ftp://x/"))
    assert.matches("opts.stream must be a boolean", helper.error_of(http.get, base, {stream = 1}))
    assert.matches("bad argument #1 to 'request' %(method", helper.error_of(http.request, "GET X", base))
    assert.matches("unknown option 'bogus'", helper.error_of(http.get, base, {bogus = true}))
  end))

  it("refuses to run outside a task", function()
    assert.matches("get called outside a task", helper.error_of(http.get, base .. "/hello"))
  end)
end)

describe("lasync.http client against lasync's own server", function()
  -- Runs fn(base URL) with a lasync.http server of handler running.
  local function with_server(handler, fn)
    return helper.async(function()
      local server = http.serve(handler, {host = "127.0.0.1", port = 0})
      local _, port = server.server:sockname()
      local ok, err = pcall(fn, ("http://127.0.0.1:%d"):format(port))
      server:close()
      server:wait_closed()
      if not ok then error(err, 0) end
    end)
  end

  it("reads a streamed, chunked response whole and in parts", with_server(function(req)
    req:start_response(200, {["Content-Type"] = "text/plain"})
    for i = 1, 100 do req:write(("part %d\n"):format(i)) end
    req:finish()
  end, function(base)
    local res = http.get(base .. "/")
    assert.are.equal("chunked", res.headers["transfer-encoding"])
    local _, n = res.body:gsub("part %d+\n", "")
    assert.are.equal(100, n)
    local lines = {}
    for line in http.get(base .. "/", {stream = true}):lines() do lines[#lines + 1] = line end
    assert.are.same({100, "part 1", "part 100"}, {#lines, lines[1], lines[100]})
  end))

  it("serves 100 concurrent requests from one loop over pooled connections", with_server(function(req)
    return 200, req.method .. " " .. req.path .. "?" .. req.query .. " " .. req.body
  end, function(base)
    local tasks = {}
    for i = 1, 100 do
      tasks[i] = lasync.spawn(http.post, base .. "/n", tostring(i), {headers = {["X-N"] = i .. ""}})
    end
    for i, t in ipairs(tasks) do
      assert.are.same({200, "POST /n? " .. i}, {t:await().status, t:result().body})
    end
  end))
end)
