-- Issue 10: a waiting method of a sync primitive or a queue, called
-- outside a task where it would have to wait, says so as sleep and await
-- do ("get called outside a task"), not "no running event loop". Each
-- call is made with no loop running, on an object in the state that
-- makes it wait.
local lasync = require "lasync"
local helper = require "helper"

local function locked(class, ...)
  local p = class(...)
  p:acquire()
  return p
end

local function full(class)
  local q = class(1)
  q:put_nowait(1)
  return q
end

local function unfinished(class)
  local q = class()
  q:put_nowait(1)
  return q
end

-- name -> {the method's name in the message, a call that would wait}
local calls = {
  ["Lock:acquire"] = {"acquire", function() locked(lasync.Lock):acquire() end},
  ["Event:wait"] = {"wait", function() lasync.Event():wait() end},
  ["Condition:wait"] = {"wait", function() locked(lasync.Condition):wait() end},
  ["Condition:wait_for"] = {"wait_for", function()
    locked(lasync.Condition):wait_for(function() return false end)
  end},
  ["Semaphore:acquire"] = {"acquire", function() lasync.Semaphore(0):acquire() end},
  ["BoundedSemaphore:acquire"] = {"acquire", function()
    locked(lasync.BoundedSemaphore, 1):acquire()
  end},
  ["Barrier:wait"] = {"wait", function() lasync.Barrier(2):wait() end},
}
for _, class in ipairs {"Queue", "LifoQueue", "PriorityQueue"} do
  calls[class .. ":get"] = {"get", function() lasync[class](1):get() end}
  calls[class .. ":put"] = {"put", function() full(lasync[class]):put(2) end}
  calls[class .. ":join"] = {"join", function() unfinished(lasync[class]):join() end}
end

describe("issue 10: waiting outside a task", function()
  it("every waiting method says it was called outside a task", function()
    assert.is_nil(require("lasync.core").get_running_loop())  -- no loop at all
    local names = {}
    for name in pairs(calls) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      local method, call = calls[name][1], calls[name][2]
      local err = tostring(helper.error_of(call))
      assert(err:find(method .. " called outside a task", 1, true),
        ("%s: %s"):format(name, err))
    end
  end)
end)
