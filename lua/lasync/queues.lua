--- lasync.queues: the queues of API.md §7: Queue (first in, first out),
-- LifoQueue (last in, first out) and PriorityQueue (least first).
-- The algorithms are those of Python asyncio's queues.py (3.13, with
-- shutdown): putters wait while the queue is full, getters while it is
-- empty, each woken in the order it began to wait. A getter or putter that
-- is cancelled (or timed out) leaves no trace: no item is lost, taken
-- twice or added, and a wake-up already handed to it passes on to the next
-- in line.
-- nil cannot be put in a queue (it could not be told from "no item"); any
-- other value can, false included.
-- put() on a queue that is not full and get() on one that is not empty
-- allocate nothing (beyond the queue's own storage), and a task that must
-- wait makes no Future either: it parks (core.park) in the queue's list of
-- getters, putters or joiners until woken (core.unpark) or cancelled.
-- Waiting calls must be made from a task.
-- Misuse raises a string error at the caller's line; QueueFull, QueueEmpty
-- and QueueShutDown are lasync.core error objects.
local core = require "lasync.core"

local QueueFull, QueueEmpty, QueueShutDown = core.QueueFull, core.QueueEmpty, core.QueueShutDown
local park_in, unpark_in, unpark_next, park_count =
  core.park_in, core.unpark_in, core.unpark_next, core.park_count
local error, type, tostring, pairs = error, type, tostring, pairs
local getmetatable, setmetatable = getmetatable, setmetatable

local M = {}

-- ---------------------------------------------------------------- checks --

local checks = require "lasync.checks"
checks.internal()
local misuse, argerror, typename = checks.misuse, checks.argerror, checks.typename


-- Every queue. Methods check self with one table index, which works
-- whatever self is (a number, nil...) and costs far less than a call to
-- getmetatable.
local QUEUES = setmetatable({}, {__mode = "k"})

local function bad_self(self, fname)
  misuse(("calling '%s' on bad self (queue expected, got %s)"):format(fname, typename(self)))
end

-- maxsize (argument 1): nil (0) or a non-negative integer.
local function check_maxsize(v, fname)
  if v == nil then return 0 end
  local i = type(v) == "number" and math.tointeger(v)
  if not i or i < 0 then
    local got = type(v) == "number" and tostring(v) or typename(v)
    argerror(1, fname, "non-negative integer or nil expected, got " .. got)
  end
  return i
end

-- --------------------------------------------------------------- waiters --
-- The tasks waiting (parked) to get, to put or for join(), in the order
-- they came: core.WaitLists. A getter or putter is taken off by the task
-- that wakes it (core.unpark_next); a joiner leaves by itself.

local new_waiters = core.WaitList

-- Wake every waiter of w, taking them off (getters and putters at shutdown).
local function wakeup_all(w)
  while unpark_next(w) do end
end

-- After a wait in w (getters or putters, through core.park_in with
-- taken) that failed with err (a cancellation): raise it, first passing
-- the wake-up we got (woken), if any, on to the next waiter if `usable` (q)
-- says the queue still allows what it was for. (park_in has taken us off
-- w if we were still in it.)
local function wait_failed(q, w, usable, err, woken)
  if woken and usable(q) then unpark_next(w) end
  error(err, 0)
end

-- ---------------------------------------------------------------- storage --
-- Every queue keeps its n items (q._n) in q._items; a class gives _put and
-- _get. Queue: items[head .. head + n - 1], starting again at 1 when empty.
-- LifoQueue: a stack items[1 .. n]. PriorityQueue: a binary heap
-- items[1 .. n] ordered by q._less.

local function fifo_put(q, v)
  q._items[q._head + q._n] = v
  q._n = q._n + 1
end

local function fifo_get(q)
  local items, head, n = q._items, q._head, q._n - 1
  local v = items[head]
  items[head] = nil
  q._n = n
  q._head = n == 0 and 1 or head + 1
  return v
end

local function lifo_put(q, v)
  local n = q._n + 1
  q._items[n] = v
  q._n = n
end

local function lifo_get(q)
  local items, n = q._items, q._n
  local v = items[n]
  items[n] = nil
  q._n = n - 1
  return v
end

-- Sift v up from the new last slot. Its place is found before anything
-- moves, so a `less` that raises leaves the heap as it was.
local function heap_put(q, v)
  local items, less, n = q._items, q._less, q._n + 1
  local i = n
  while i > 1 and less(v, items[i // 2]) do i = i // 2 end
  local j = n
  while j > i do
    items[j] = items[j // 2]
    j = j // 2
  end
  items[i] = v
  q._n = n
end

-- Take the least item: the last one goes down from the root to its place.
-- As in heap_put, the place is found before anything moves.
local function heap_get(q)
  local items, less, n = q._items, q._less, q._n - 1
  local top, last = items[1], items[n + 1]
  local i = 1
  while true do
    local c = 2 * i
    if c > n then break end
    if c < n and less(items[c + 1], items[c]) then c = c + 1 end
    if not less(items[c], last) then break end
    i = c
  end
  -- The items on the way from the root to i (its ancestors) move up.
  local depth, k = 0, i
  while k > 1 do k, depth = k // 2, depth + 1 end
  for shift = depth - 1, 0, -1 do
    local p = i >> shift
    items[p >> 1] = items[p]
  end
  items[n + 1] = nil
  if n > 0 then items[i] = last end
  q._n = n
  return top
end

local function less_than(a, b)
  return a < b
end

-- ------------------------------------------------------------------ Queue --

local Q = {}  -- the methods the three classes share

local function full(q)
  local max = q.maxsize
  return max > 0 and q._n >= max
end

local function not_full(q)
  return not full(q)
end

local function not_empty(q)
  return q._n > 0
end

local function new_queue(class, maxsize)
  local q = setmetatable({maxsize = maxsize, _items = {}, _head = 1, _n = 0,
                          _unfinished = 0, _shutdown = false,
                          _getters = new_waiters(), _putters = new_waiters(),
                          _joiners = new_waiters()}, class)
  QUEUES[q] = true
  return q
end

local function shut_down()
  error(QueueShutDown("Queue is shut down"))
end

--- q:put(v): puts v (not nil) in the queue, first waiting while it is full.
-- Raises QueueShutDown once the queue is shut down.
function Q:put(v)
  if not QUEUES[self] then bad_self(self, "put") end
  if v == nil then argerror(1, "put", "a queue item must not be nil") end
  local max = self.maxsize
  while max > 0 and self._n >= max do
    if self._shutdown then shut_down() end
    local ok, err, woken = park_in(self._putters, "put", true)
    if not ok then wait_failed(self, self._putters, not_full, err, woken) end
  end
  if self._shutdown then shut_down() end
  self:_put(v)
  self._unfinished = self._unfinished + 1
  unpark_next(self._getters)
end

--- q:put_nowait(v): puts v (not nil) at once; raises QueueFull if the
-- queue is full, QueueShutDown once it is shut down.
function Q:put_nowait(v)
  if not QUEUES[self] then bad_self(self, "put_nowait") end
  if v == nil then argerror(1, "put_nowait", "a queue item must not be nil") end
  if full(self) and not self._shutdown then error(QueueFull("Queue is full")) end
  return Q.put(self, v)  -- does not wait: not full, or raises
end

--- q:get(): removes and returns an item, first waiting while the queue is
-- empty. Raises QueueShutDown once the queue is shut down and empty (at
-- once after shutdown(true), which empties it).
function Q:get()
  if not QUEUES[self] then bad_self(self, "get") end
  while self._n == 0 do
    if self._shutdown then shut_down() end
    local ok, err, woken = park_in(self._getters, "get", true)
    if not ok then wait_failed(self, self._getters, not_empty, err, woken) end
  end
  local v = self:_get()
  unpark_next(self._putters)
  return v
end

--- q:get_nowait(): removes and returns an item at once; raises QueueEmpty
-- if there is none (QueueShutDown if the queue is shut down too).
function Q:get_nowait()
  if not QUEUES[self] then bad_self(self, "get_nowait") end
  if self._n == 0 and not self._shutdown then error(QueueEmpty("Queue is empty")) end
  return Q.get(self)  -- does not wait: not empty, or raises
end

--- q:qsize(): the number of items in the queue.
function Q:qsize()
  if not QUEUES[self] then bad_self(self, "qsize") end
  return self._n
end

--- q:empty(): true if the queue holds no item.
function Q:empty()
  if not QUEUES[self] then bad_self(self, "empty") end
  return self._n == 0
end

--- q:full(): true if the queue holds maxsize items (never when maxsize is
-- 0: unbounded).
function Q:full()
  if not QUEUES[self] then bad_self(self, "full") end
  return full(self)
end

local function wake_joiners(q)
  local w = q._joiners
  unpark_in(w, math.maxinteger)
end

--- q:task_done(): tells the queue that an item got from it was processed;
-- join() returns once every item put was. Raises if called more times
-- than items were put.
function Q:task_done()
  if not QUEUES[self] then bad_self(self, "task_done") end
  if self._unfinished <= 0 then misuse("task_done() called too many times") end
  self._unfinished = self._unfinished - 1
  if self._unfinished == 0 then wake_joiners(self) end
end

--- q:join(): waits until every item put was got and marked done with
-- task_done(); returns true.
function Q:join()
  if not QUEUES[self] then bad_self(self, "join") end
  if self._unfinished == 0 then return true end
  local ok, err = park_in(self._joiners, "join")
  if not ok then error(err, 0) end
  return true
end

--- q:shutdown(immediate): shuts the queue down: put() and put_nowait()
-- then raise QueueShutDown, get() raises it once the queue is empty. With
-- immediate true the queue is emptied first (each item removed counts as
-- done for join()). Every task waiting in put() or get() is woken: a
-- putter raises, a getter gets an item or raises.
function Q:shutdown(immediate)
  if not QUEUES[self] then bad_self(self, "shutdown") end
  if immediate ~= nil and type(immediate) ~= "boolean" then
    argerror(1, "shutdown", "boolean or nil expected, got " .. typename(immediate))
  end
  self._shutdown = true
  if immediate then
    self._unfinished = math.max(self._unfinished - self._n, 0)
    self._items, self._head, self._n = {}, 1, 0
    if self._unfinished == 0 then wake_joiners(self) end
  end
  wakeup_all(self._getters)
  wakeup_all(self._putters)
end

function Q:__tostring()
  local s = ("<%s maxsize=%d qsize=%d"):format(getmetatable(self).__name,
                                               self.maxsize, self._n)
  local getters, putters = park_count(self._getters), park_count(self._putters)
  if getters > 0 then s = s .. " getters=" .. getters end
  if putters > 0 then s = s .. " putters=" .. putters end
  if self._shutdown then s = s .. " shutdown" end
  return s .. ">"
end

-- A queue class: the shared methods, its storage, its name.
local function queue_class(name, put, get)
  local c = {__name = name, _put = put, _get = get}
  for k, f in pairs(Q) do c[k] = f end
  c.__index = c
  return c
end

local Queue = queue_class("Queue", fifo_put, fifo_get)

-- A Queue's own put and get: Q.put and Q.get with fifo_put and fifo_get
-- inline (a method lookup and a Lua call less per item). Keep them in step
-- with those.
function Queue:put(v)
  if not QUEUES[self] then bad_self(self, "put") end
  if v == nil then argerror(1, "put", "a queue item must not be nil") end
  local max = self.maxsize
  while max > 0 and self._n >= max do
    if self._shutdown then shut_down() end
    local ok, err, woken = park_in(self._putters, "put", true)
    if not ok then wait_failed(self, self._putters, not_full, err, woken) end
  end
  if self._shutdown then shut_down() end
  local n = self._n
  self._items[self._head + n] = v
  self._n = n + 1
  self._unfinished = self._unfinished + 1
  unpark_next(self._getters)
end

function Queue:get()
  if not QUEUES[self] then bad_self(self, "get") end
  local n = self._n
  while n == 0 do
    if self._shutdown then shut_down() end
    local ok, err, woken = park_in(self._getters, "get", true)
    if not ok then wait_failed(self, self._getters, not_empty, err, woken) end
    n = self._n
  end
  local items, head = self._items, self._head
  local v = items[head]
  items[head] = nil
  n = n - 1
  self._n = n
  self._head = n == 0 and 1 or head + 1
  unpark_next(self._putters)
  return v
end
local LifoQueue = queue_class("LifoQueue", lifo_put, lifo_get)
local PriorityQueue = queue_class("PriorityQueue", heap_put, heap_get)

--- Queue(maxsize): a first in, first out queue holding up to maxsize items
-- (a non-negative integer; 0 or nil: no limit).
function M.Queue(maxsize)
  return new_queue(Queue, check_maxsize(maxsize, "Queue"))
end

--- LifoQueue(maxsize): a queue whose get() returns the item put last.
function M.LifoQueue(maxsize)
  return new_queue(LifoQueue, check_maxsize(maxsize, "LifoQueue"))
end

--- PriorityQueue(maxsize, less): a queue whose get() returns its least
-- item: the one no other is less than, by less(a, b) (default a < b).
-- Items that compare equal come out in no particular order.
function M.PriorityQueue(maxsize, less)
  maxsize = check_maxsize(maxsize, "PriorityQueue")
  if less == nil then
    less = less_than
  elseif type(less) ~= "function" then
    local mt = getmetatable(less)
    if type(mt) ~= "table" or mt.__call == nil then
      argerror(2, "PriorityQueue", "function or nil expected, got " .. typename(less))
    end
  end
  local q = new_queue(PriorityQueue, maxsize)
  q._less = less
  return q
end

return M
