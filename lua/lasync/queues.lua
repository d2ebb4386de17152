--- lasync.queues: the queues of docs/reference.md §7: Queue (first in, first out),
-- LifoQueue (last in, first out) and PriorityQueue (least first).
-- They are written in C (src/queue.c, core.new_queue), after Python
-- asyncio's queues.py (3.13, with shutdown): putters wait while the queue
-- is full, getters while it is empty, each woken in the order it began to
-- wait. A getter or putter that is cancelled (or timed out) leaves no
-- trace: no item is lost, taken twice or added, and a wake-up already
-- handed to it passes on to the next in line.
-- nil cannot be put in a queue (it could not be told from "no item"); any
-- other value can, false included.
-- put() on a queue that is not full and get() on one that is not empty
-- allocate nothing (beyond the queue's own storage), and a task that must
-- wait makes no Future either: it parks in the queue's list of getters,
-- putters or joiners until woken or cancelled.
-- Waiting calls must be made from a task.
-- Misuse raises a string error at the caller's line; QueueFull, QueueEmpty
-- and QueueShutDown are lasync.core error objects.
-- This module checks the constructors' arguments.
local core = require "lasync.core"

local new_queue = core.new_queue

---@class lasync.queues
local M = {}

local checks = require "lasync.checks"
checks.internal()

-- maxsize (argument 1): nil (0) or a non-negative integer.
local function check_maxsize(v, fname)
  if v == nil then return 0 end
  return checks.integer(v, 1, fname, 0, nil, "non-negative integer or nil")
end

--- Queue(maxsize): a first in, first out queue holding up to maxsize items
--- (a non-negative integer; 0 or nil: no limit).
---@param maxsize? integer
---@return lasync.Queue
function M.Queue(maxsize)
  return new_queue(0, check_maxsize(maxsize, "Queue"))
end

--- LifoQueue(maxsize): a queue whose get() returns the item put last.
---@param maxsize? integer
---@return lasync.Queue
function M.LifoQueue(maxsize)
  return new_queue(1, check_maxsize(maxsize, "LifoQueue"))
end

--- PriorityQueue(maxsize, less): a queue whose get() returns its least
--- item: the one no other is less than, by less(a, b) (default a < b).
--- Items that compare equal come out in no particular order.
---@param maxsize? integer
---@param less? fun(a: any, b: any): boolean default a < b
---@return lasync.Queue
function M.PriorityQueue(maxsize, less)
  maxsize = check_maxsize(maxsize, "PriorityQueue")
  if less ~= nil then checks.callable(less, 2, "PriorityQueue", "function or nil") end
  return new_queue(2, maxsize, less)
end

return M
