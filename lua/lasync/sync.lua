--- lasync.sync: the synchronisation primitives of docs/reference.md §7: Lock, Event,
-- Condition, Semaphore, BoundedSemaphore and Barrier.
-- The algorithms are those of Python asyncio's locks.py (3.13), comments
-- name the piece each part mirrors. Waiters are served in the order they
-- began to wait, and a waiter that is cancelled (or timed out) leaves no
-- trace: no lock stays held, no unit of a semaphore is lost, and a wake-up
-- already handed to it passes on to the next waiter.
-- Nothing is allocated by an uncontended acquire or release, and a task
-- that must wait makes no Future either: it parks (`core._park`) in the
-- primitive's list of waiters until woken (`core._unpark`) or cancelled.
-- Waiting calls must be made from a task.
-- Misuse raises a string error at the caller's line.
local core = require "lasync.core"

local CancelledError, BrokenBarrierError = core.CancelledError, core.BrokenBarrierError
local pcall, error, setmetatable = pcall, error, setmetatable
local isyieldable = coroutine.isyieldable
local ALL = math.maxinteger

---@class lasync.sync
local M = {}

-- ---------------------------------------------------------------- checks --

local checks = require "lasync.checks"
checks.internal()
local misuse, bad_self, check_callable, check_count =
  checks.misuse, checks.bad_self, checks.callable, checks.integer

-- A class: the metatable of its instances is also their method table.
local function new_class(name)
  local c = {__name = name}
  c.__index = c
  return c
end

-- The class of each instance. Methods check self with one table index,
-- which works whatever self is (a number, nil...) and costs far less than
-- a call to getmetatable.
local KIND = setmetatable({}, {__mode = "k"})

local function new(class, fields)
  local o = setmetatable(fields, class)
  KIND[o] = class
  return o
end

-- --------------------------------------------------------------- waiters --
-- The tasks waiting, parked, in the order they came: a core._WaitList.
-- Each waiter leaves it by itself once it ran again (w:park);
-- unpark(w, n) wakes the first n not woken yet.

local new_waiters = core._WaitList
-- Its methods, called as functions: w:park() looks the method up through
-- the metatable, which costs a Lock ~700 instructions more per acquire
-- and release (13,234 against 12,508, bench/sync.lua under callgrind).
local WaitList = core._WaitListMethods
local park, unpark, unpark_first, first, count =
  WaitList.park, WaitList.unpark, WaitList.unpark_first, WaitList.first, WaitList.count

-- Is some waiter of w not cancelled? (A cancelled one has not run yet to
-- leave.)
local function has_live(w)
  return count(w, true) > 0
end

-- ------------------------------------------------------ with and guard --

local function released(self, ok, ...)
  self:release()
  if not ok then error((...), 0) end
  return ...
end

-- The `with` method of class: fn(...) holding self; released when fn
-- returns, raises or is cancelled.
local function with_method(class)
  return function(self, fn, ...)
    if KIND[self] ~= class then bad_self(self, class, "with") end
    check_callable(fn, 1, "with")
    self:acquire()
    return released(self, pcall(fn, ...))
  end
end

-- What guard() returns: closing it releases its owner. Each primitive
-- makes one, the first time, and hands it out every time.
local Guard = {__name = "Guard"}

function Guard.__close(g)
  g.owner:release()
end

-- The `guard` method of class: acquires, then returns a to-be-closed value
-- that releases: `local _ <close> = lock:guard()`.
local function guard_method(class)
  return function(self)
    if KIND[self] ~= class then bad_self(self, class, "guard") end
    self:acquire()
    local g = self._guard
    if not g then
      g = setmetatable({owner = self}, Guard)
      self._guard = g
    end
    return g
  end
end

-- ------------------------------------------------------------------ Lock --

---@class lasync.Lock
---@field with fun(self: lasync.Lock, fn: function, ...): ... fn(...) holding it
---@field guard fun(self: lasync.Lock): any acquires; a <close> value releases
local Lock = new_class("Lock")

--- Lock(): a mutual exclusion lock, not owned by a task: any task may
--- release it. Waiters acquire it in the order they began to wait.
---@return lasync.Lock
function M.Lock()
  return new(Lock, {_locked = false, _waiters = new_waiters()})
end

-- asyncio's Lock._wake_up_first: make sure the first waiter will run (one
-- woken or cancelled already will: it takes the lock, or passes it on if
-- cancelled). The one woken is kept in _woken until it ran: a wake-up
-- counts as done, never as cancelled, so while it heads the waiters
-- acquire() knows at once that it must wait, without asking each waiter
-- whether it was cancelled.
local function wake_up_first(lock)
  local t = unpark_first(lock._waiters)
  if t then lock._woken = t end
end

--- lock:acquire(): waits until the lock is free and takes it; returns
--- true. A free lock is taken at once unless tasks that are not cancelled
--- wait for it (fairness).
---@return true
function Lock:acquire()
  if KIND[self] ~= Lock then bad_self(self, Lock, "acquire") end
  local w = self._waiters
  if not self._locked then
    local head = first(w)
    if head == nil or head ~= self._woken and not has_live(w) then
      self._locked = true
      return true
    end
  end
  local ok, err = park(w, "acquire")
  self._woken = nil
  if not ok then
    -- Cancelled (maybe after release() woke us): a free lock must still
    -- pass to the first waiter.
    if not self._locked then wake_up_first(self) end
    error(err, 0)
  end
  self._locked = true
  return true
end

--- lock:release(): frees the lock and wakes the first waiter. Raises if
--- the lock is not held.
function Lock:release()
  if KIND[self] ~= Lock then bad_self(self, Lock, "release") end
  if not self._locked then misuse("Lock is not acquired") end
  self._locked = false
  local t = unpark_first(self._waiters)  -- wake_up_first, inline
  if t then self._woken = t end
end

--- lock:locked(): true if the lock is held.
---@return boolean
function Lock:locked()
  if KIND[self] ~= Lock then bad_self(self, Lock, "locked") end
  return self._locked
end

--- lock:with(fn, ...): runs fn(...) holding the lock and returns its
-- results; the lock is released when fn returns, raises (the error is
-- raised again) or is cancelled.
Lock.with = with_method(Lock)

--- lock:guard(): acquires the lock, then returns a to-be-closed value that
-- releases it: `local _ <close> = lock:guard()`.
Lock.guard = guard_method(Lock)

-- "waiters:N" after a state, as asyncio's reprs show it.
local function with_waiters(extra, w)
  local n = count(w)
  if n > 0 then return ("%s, waiters:%d"):format(extra, n) end
  return extra
end

function Lock:__tostring()
  return ("<Lock [%s]>"):format(with_waiters(self._locked and "locked" or "unlocked",
                                             self._waiters))
end

-- ----------------------------------------------------------------- Event --

--- Event(): a flag that tasks can wait for; it starts unset. In C
-- (core.Event, src/task.c): is_set(), set() (sets the flag and wakes every
-- waiter), clear(), wait() (true at once if the flag is set, else when
-- set() is called; the task parks meanwhile).
M.Event = core.Event

-- ------------------------------------------------------------- Condition --

---@class lasync.Condition
---@field with fun(self: lasync.Condition, fn: function, ...): ... fn(...) holding it
---@field guard fun(self: lasync.Condition): any acquires; a <close> value releases
local Condition = new_class("Condition")

--- Condition(lock): a condition variable over lock (a Lock; default: a new
--- one). Tasks wait() on it until another notifies them.
---@param lock? lasync.Lock the lock to use (default a new one)
---@return lasync.Condition
function M.Condition(lock)
  checks.check(lock == nil or KIND[lock] == Lock, lock, 1, "Condition", "Lock or nil")
  return new(Condition, {_lock = lock or M.Lock(), _waiters = new_waiters()})
end

--- cond:acquire(), cond:release(), cond:locked(): those of its lock.
---@return true
function Condition:acquire()
  if KIND[self] ~= Condition then bad_self(self, Condition, "acquire") end
  return self._lock:acquire()
end

--- Releases the lock.
function Condition:release()
  if KIND[self] ~= Condition then bad_self(self, Condition, "release") end
  self._lock:release()
end

--- Whether the lock is held.
---@return boolean
function Condition:locked()
  if KIND[self] ~= Condition then bad_self(self, Condition, "locked") end
  return self._lock._locked
end

-- Take the lock back, whatever it takes (asyncio's Condition.wait): a
-- cancellation meanwhile is held back and returned once the lock is held.
local function reacquire(lock)
  local cancelled
  while true do
    local ok, err = pcall(lock.acquire, lock)
    if ok then return cancelled end
    if not CancelledError:is(err) then error(err, 0) end
    cancelled = err
  end
end

-- The end of wait(): the outcome of the wait for a notify, then of taking
-- the lock back (the later error wins, as in asyncio). On an error, one
-- other waiter is notified in case the notify was ours.
local function end_wait(cond, ok, err, reok, reerr)
  if not reok or reerr ~= nil then ok, err = false, reerr end
  if ok then return true end
  unpark(cond._waiters, 1)
  error(err, 0)
end

-- Condition.wait, for the method named fname (in its errors).
local function cond_wait(cond, fname)
  local lock = cond._lock
  if not lock._locked then misuse("cannot wait on un-acquired lock") end
  if not (core.current_task() and isyieldable()) then
    park(cond._waiters, fname)  -- raises, before the lock is released
  end
  lock:release()
  local ok, err = park(cond._waiters, fname)
  return end_wait(cond, ok, err, pcall(reacquire, lock))
end

--- cond:wait(): releases the lock, waits until notified, takes the lock
--- back and returns true. The lock is held again when wait returns or
--- raises, a cancellation included. Raises if the lock is not held.
---@return true
function Condition:wait()
  if KIND[self] ~= Condition then bad_self(self, Condition, "wait") end
  return cond_wait(self, "wait")
end

--- cond:wait_for(pred): waits until pred() is true (it is called holding
--- the lock, first before any wait); returns pred's last value.
---@param pred fun(): any
---@return any pred's last value
function Condition:wait_for(pred)
  if KIND[self] ~= Condition then bad_self(self, Condition, "wait_for") end
  check_callable(pred, 1, "wait_for")
  local result = pred()
  while not result do
    cond_wait(self, "wait_for")
    result = pred()
  end
  return result
end

--- cond:notify(n): wakes up to n (default 1) waiters; they return from
--- wait() once they got the lock back. Raises if the lock is not held.
---@param n? integer how many to wake (default 1)
function Condition:notify(n)
  if KIND[self] ~= Condition then bad_self(self, Condition, "notify") end
  if n == nil then n = 1 else n = check_count(n, 1, "notify", 0) end
  if not self._lock._locked then misuse("cannot notify on un-acquired lock") end
  unpark(self._waiters, n)
end

--- cond:notify_all(): wakes every waiter. Raises if the lock is not held.
function Condition:notify_all()
  if KIND[self] ~= Condition then bad_self(self, Condition, "notify_all") end
  if not self._lock._locked then misuse("cannot notify on un-acquired lock") end
  local w = self._waiters
  unpark(w, ALL)
end

--- cond:with(fn, ...), cond:guard(): as those of a Lock, on the lock.
Condition.with = with_method(Condition)
Condition.guard = guard_method(Condition)

function Condition:__tostring()
  return ("<Condition [%s]>"):format(with_waiters(
    self._lock._locked and "locked" or "unlocked", self._waiters))
end

-- ------------------------------------------------------------- Semaphore --

---@class lasync.Semaphore
---@field with fun(self: lasync.Semaphore, fn: function, ...): ... fn(...) holding it
---@field guard fun(self: lasync.Semaphore): any acquires; a <close> value releases
local Semaphore = new_class("Semaphore")
---@class lasync.BoundedSemaphore: lasync.Semaphore
local BoundedSemaphore = new_class("BoundedSemaphore")

local function check_semaphore(self, fname)
  local class = KIND[self]
  if class ~= Semaphore and class ~= BoundedSemaphore then bad_self(self, Semaphore, fname) end
end

local function semaphore(value, fname, class)
  value = value == nil and 1 or check_count(value, 1, fname, 0)
  return new(class, {_value = value, _bound = value, _waiters = new_waiters()})
end

--- Semaphore(n): a counter of n units (default 1, a non-negative
--- integer); acquire() takes one, waiting while there is none, release()
--- gives one back.
---@param n? integer the units (default 1)
---@return lasync.Semaphore
function M.Semaphore(n)
  return semaphore(n, "Semaphore", Semaphore)
end

--- BoundedSemaphore(n): a Semaphore whose release() raises if it would
--- hold more than n units.
---@param n? integer the units (default 1)
---@return lasync.BoundedSemaphore
function M.BoundedSemaphore(n)
  return semaphore(n, "BoundedSemaphore", BoundedSemaphore)
end

-- Semaphore.locked of asyncio: no unit, or tasks wait before us (FIFO).
local function sem_locked(self)
  local w = self._waiters
  return self._value == 0 or has_live(w)
end

-- asyncio's Semaphore._wake_up_next: hand a unit to the first waiter not
-- woken yet; false if there was none.
local function wake_up_next(self)
  if unpark(self._waiters, 1) == 0 then return false end
  self._value = self._value - 1
  return true
end

--- sem:acquire(): takes a unit, waiting (in turn) until there is one;
--- returns true.
---@return true
function Semaphore:acquire()
  check_semaphore(self, "acquire")
  if not sem_locked(self) then
    self._value = self._value - 1
    return true
  end
  local ok, err, woken = park(self._waiters, "acquire")
  -- Woken (handed a unit) but cancelled before running: give it back.
  if not ok and woken then
    self._value = self._value + 1
  end
  -- Units may have come back while we waited: wake as many as they serve.
  while self._value > 0 and wake_up_next(self) do end
  if not ok then error(err, 0) end
  return true
end

--- sem:release(): gives a unit back and wakes the first waiter.
function Semaphore:release()
  check_semaphore(self, "release")
  self._value = self._value + 1
  wake_up_next(self)
end

--- sem:locked(): true if acquire() would wait.
---@return boolean
function Semaphore:locked()
  check_semaphore(self, "locked")
  return sem_locked(self)
end

--- sem:with(fn, ...), sem:guard(): as those of a Lock.
Semaphore.with = with_method(Semaphore)
Semaphore.guard = guard_method(Semaphore)

local function sem_tostring(self)
  local extra = sem_locked(self) and "locked" or ("unlocked, value:%d"):format(self._value)
  return ("<%s [%s]>"):format(KIND[self].__name, with_waiters(extra, self._waiters))
end

Semaphore.__tostring = sem_tostring

for _, name in ipairs {"acquire", "locked"} do BoundedSemaphore[name] = Semaphore[name] end
BoundedSemaphore.with = with_method(BoundedSemaphore)
BoundedSemaphore.guard = guard_method(BoundedSemaphore)
BoundedSemaphore.__tostring = sem_tostring

--- bsem:release(): as Semaphore's; raises if every unit is already back.
function BoundedSemaphore:release()
  if KIND[self] ~= BoundedSemaphore then
    bad_self(self, BoundedSemaphore, "release")
  end
  if self._value >= self._bound then misuse("BoundedSemaphore released too many times") end
  self._value = self._value + 1
  wake_up_next(self)
end

-- --------------------------------------------------------------- Barrier --
-- asyncio's Barrier, a Condition and a state: "filling" while tasks
-- arrive, "draining" while the released ones leave, "resetting" while
-- those reset() broke leave, "broken" after abort(). Tasks arriving while
-- it drains or resets wait for the next round.

---@class lasync.Barrier
---@field parties integer
local Barrier = new_class("Barrier")

--- Barrier(parties): a barrier for parties tasks (a positive integer):
--- each wait() returns once parties tasks are waiting.
---@param parties integer how many tasks it waits for
---@return lasync.Barrier
function M.Barrier(parties)
  parties = check_count(parties, 1, "Barrier", 1)
  return new(Barrier, {parties = parties, _cond = M.Condition(), _state = "filling",
                       _count = 0})
end

local function broken(msg)
  error(BrokenBarrierError(msg))
end

-- asyncio's _block: wait while the barrier drains or resets.
local function block(b)
  while b._state == "draining" or b._state == "resetting" do b._cond:wait() end
  if b._state == "broken" then broken("Barrier aborted") end
end

-- asyncio's _release: the last task releases the others.
local function trip(b)
  b._state = "draining"
  b._cond:notify_all()
end

-- asyncio's _wait: wait until filling ends; a reset or abort breaks it.
local function wait_tripped(b)
  while b._state == "filling" do b._cond:wait() end
  if b._state == "broken" or b._state == "resetting" then
    broken("Abort or reset of barrier")
  end
end

-- asyncio's _exit: the last task out lets the next round fill.
local function exit(b)
  if b._count > 0 then return end
  if b._state == "resetting" or b._state == "draining" then b._state = "filling" end
  b._cond:notify_all()
end

-- Barrier.wait under the condition's lock.
local function pass(b)
  block(b)
  local index = b._count
  b._count = index + 1
  local ok, err = pcall(index + 1 == b.parties and trip or wait_tripped, b)
  b._count = b._count - 1
  exit(b)
  if not ok then error(err, 0) end
  return index
end

--- barrier:wait(): waits until parties tasks wait, then returns this
--- task's index (0 to parties - 1, in order of arrival). Raises
--- BrokenBarrierError if the barrier is broken or reset meanwhile.
---@return integer index from 0 to parties - 1
function Barrier:wait()
  if KIND[self] ~= Barrier then bad_self(self, Barrier, "wait") end
  return self._cond:with(pass, self)
end

-- Under the lock: break the barrier (abort), or reset it, then tell every
-- waiter.
local function set_state(b, abort)
  local cond = b._cond
  cond:acquire()
  if abort then b._state = "broken"
  elseif b._count > 0 then b._state = "resetting"
  else b._state = "filling" end
  cond:notify_all()
  cond:release()
end

--- barrier:reset(): back to the empty filling state; tasks waiting get
--- BrokenBarrierError. (It takes the barrier's lock, so it may suspend.)
function Barrier:reset()
  if KIND[self] ~= Barrier then bad_self(self, Barrier, "reset") end
  set_state(self, false)
end

--- barrier:abort(): breaks the barrier: tasks waiting and every later
--- wait() get BrokenBarrierError, until reset(). (It may suspend.)
function Barrier:abort()
  if KIND[self] ~= Barrier then bad_self(self, Barrier, "abort") end
  set_state(self, true)
end

--- barrier:n_waiting(): how many tasks wait while it fills.
---@return integer
function Barrier:n_waiting()
  if KIND[self] ~= Barrier then bad_self(self, Barrier, "n_waiting") end
  return self._state == "filling" and self._count or 0
end

--- barrier:broken(): true after abort(), until reset().
---@return boolean
function Barrier:broken()
  if KIND[self] ~= Barrier then bad_self(self, Barrier, "broken") end
  return self._state == "broken"
end

function Barrier:__tostring()
  local extra = self._state
  if extra ~= "broken" then
    extra = ("%s, waiters:%d/%d"):format(extra, self:n_waiting(), self.parties)
  end
  return ("<Barrier [%s]>"):format(extra)
end

return M
