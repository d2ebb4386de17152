--- lasync.combinators: the coroutine helpers of docs/reference.md §5 (gather, wait,
-- wait_for, timeout, timeout_at, shield, as_completed, task_group) and
-- ensure_future, which they share.
-- Semantics follow Python's asyncio (3.12/3.13, with the later fixes to
-- TaskGroup): the comments name the asyncio piece each part mirrors.
-- Misuse (a bad argument, a call outside a task) raises a string error at
-- once; operational outcomes are the error objects of lasync.core.
local core = require "lasync.core"

local CancelledError, TimeoutError = core.CancelledError, core.TimeoutError
local is_future, await = core.is_future, core.await
local future_fail = core._future_fail
local unpack, select, pcall, error = table.unpack, select, pcall, error
local type, getmetatable, setmetatable = type, getmetatable, setmetatable

---@class lasync.combinators
local M = {}

-- ---------------------------------------------------------------- checks --

local checks = require "lasync.checks"
checks.internal()
local misuse, argerror, check = checks.misuse, checks.argerror, checks.check
local is_callable, check_task = checks.is_callable, checks.task

local function is_awaitable(v)
  return is_future(v) or is_callable(v)
end

local function is_number_or_nil(v)
  return v == nil or type(v) == "number"
end

local AWAITABLE = "future, task or function"

-- ------------------------------------------------------------ shared bits --

-- A validated awaitable as a future: a function becomes a task.
local function to_future(aw, ...)
  if is_future(aw) then return aw end
  return core.spawn(aw, ...)
end

--- ensure_future(aw, ...): aw itself if it is a future or a task; a new
--- task running aw(...) on the running loop if it is a function.
---@param aw lasync.Future|function
---@param ... any
---@return lasync.Future
function M.ensure_future(aw, ...)
  check(is_awaitable(aw), aw, 1, "ensure_future", AWAITABLE)
  return to_future(aw, ...)
end

local function outcome(ok, ...)
  return not ok or select("#", ...) > 0, (...)
end

-- Whether a done future failed, and its error: a CancelledError if it was
-- cancelled. The error may be nil (error(nil)): exception() returns no
-- value on success, one on failure. Looking marks the error retrieved.
local function failure(fut)
  return outcome(pcall(fut.exception, fut))
end

local function release(waiter)
  if not waiter:done() then waiter:set_result() end
end

-- Raise the error of a pcall that failed, as it was.
local function reraise(ok, err)
  if not ok then error(err, 0) end
end

-- ----------------------------------------------------------------- gather --

-- The table of first values (errors in place) once every child is done.
local function gathered(children, n)
  local r = {n = n}
  for i = 1, n do
    local c = children[i]
    local failed, err = failure(c)
    if failed then r[i] = err else r[i] = (c:result()) end
  end
  return r
end

-- The future gather awaits, as asyncio's _GatheringFuture: it fails with
-- the first child error (unless return_exceptions) or holds the results.
local function gathering(children, n, return_exceptions)
  local outer, nfinished = core.Future(), 0
  local function on_done(fut)
    nfinished = nfinished + 1
    if outer:done() then return failure(fut) end  -- marks errors retrieved
    if not return_exceptions then
      local failed, err = failure(fut)
      if failed then return future_fail(outer, err) end
    end
    if nfinished == n then outer:set_result(gathered(children, n)) end
  end
  for i = 1, n do
    if not children[i]:done() then children[i]:add_done_callback(on_done) end
  end
  for i = 1, n do  -- children already done count at once, as in asyncio
    if children[i]:done() then on_done(children[i]) end
  end
  return outer
end

-- The awaiting task was cancelled: cancel the children and return only
-- once they all finished, as a cancelled _GatheringFuture does. Awaiting a
-- child passes a further cancellation of the task on to it.
local function cancel_children(children, n, msg)
  for i = 1, n do children[i]:cancel(msg) end
  for i = 1, n do
    local c = children[i]
    while not c:done() do pcall(await, c) end
  end
end

-- Gather the validated awaitables children[1..n] (replaced by futures).
local function gather_all(children, n, return_exceptions)
  for i = 1, n do children[i] = to_future(children[i]) end
  if n == 0 then return {n = 0} end
  local outer = gathering(children, n, return_exceptions)
  local ok, r = pcall(await, outer)
  if ok then return r end
  if outer:cancelled() then cancel_children(children, n, r.message) end
  error(r, 0)
end

local GATHER_OPTS = {return_exceptions = checks.BOOLEAN}

-- gather(list, opts): the list form.
local function gather_list(list, opts)
  local n = checks.list(list, 1, "gather", is_awaitable, AWAITABLE)
  checks.options(opts, 2, "gather", GATHER_OPTS)
  check_task("gather")
  local children = {}
  for i = 1, n do children[i] = list[i] end
  return gather_all(children, n, opts and opts.return_exceptions)
end

--- gather(...): awaits every argument (future, task, or function, which is
--- spawned as a task) and returns the first result value of each, in
--- argument order, nils included. The first error is raised at once (the
--- others keep running). Cancelling the awaiting task cancels every child
--- and waits for them before the CancelledError propagates.
---
--- gather(list, opts): when the first argument is a table that is not
--- callable, it is the list of awaitables (items 1..list.n or #list) and a
--- table {n = , ...} of first values is returned instead. opts:
--- `return_exceptions = true` puts each error (a CancelledError for a
--- cancelled child) in place of its value instead of raising it. A child
--- that fails with error(nil) is a failure: gather raises nil, or leaves nil
--- in its place, which looks like a nil result.
---@param ... any
---@return any ... the first result of each awaitable (a table with n for a list)
function M.gather(...)
  local first = ...
  if type(first) == "table" and not is_callable(first) then
    return gather_list(...)
  end
  local args = table.pack(...)
  for i = 1, args.n do check(is_awaitable(args[i]), args[i], i, "gather", AWAITABLE) end
  check_task("gather")
  return unpack(gather_all(args, args.n, false), 1, args.n)
end

-- ------------------------------------------------------------------- wait --

local WAIT_OPTS = {
  timeout = checks.NUMBER,
  return_when = checks.one_of("ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"),
}

-- Suspend until return_when is met for fs[1..n] or the timeout passes
-- (asyncio's _wait).
local function wait_until(fs, n, timeout, return_when)
  local waiter, counter, h = core.Future(), n, nil
  local function on_completion(f)
    counter = counter - 1
    if counter <= 0 or return_when == "FIRST_COMPLETED"
        or (return_when == "FIRST_EXCEPTION" and not f:cancelled()
            and failure(f)) then
      if h then h:cancel() end
      release(waiter)
    end
  end
  if timeout then h = waiter:get_loop():call_later(timeout, release, waiter) end
  for i = 1, n do fs[i]:add_done_callback(on_completion) end
  local ok, err = pcall(await, waiter)
  if h then h:cancel() end
  for i = 1, n do fs[i]:remove_done_callback(on_completion) end
  reraise(ok, err)
end

local function split(fs, n)
  local done, pending = {}, {}
  for i = 1, n do
    local f = fs[i]
    local into = f:done() and done or pending
    into[#into + 1] = f
  end
  return done, pending
end

--- wait(list, opts): suspends until the futures or tasks of list are done
--- as opts.return_when says ("ALL_COMPLETED", the default,
--- "FIRST_COMPLETED" or "FIRST_EXCEPTION") or opts.timeout seconds passed;
--- returns the lists done, pending (in list order). Nothing is cancelled on
--- timeout. As in asyncio, functions are not accepted (the caller could not
--- tell the tasks made of them apart): spawn them first.
---@param fs lasync.Future[]
---@param opts? {timeout?: number, return_when?: "ALL_COMPLETED"|"FIRST_COMPLETED"|"FIRST_EXCEPTION"}
---@return lasync.Future[] done
---@return lasync.Future[] pending
function M.wait(fs, opts)
  local n = checks.list(fs, 1, "wait", is_future, "future or task")
  if n == 0 then argerror(1, "wait", "list of futures is empty") end
  checks.options(opts, 2, "wait", WAIT_OPTS)
  check_task("wait")
  wait_until(fs, n, opts and opts.timeout,
             opts and opts.return_when or "ALL_COMPLETED")
  return split(fs, n)
end

-- ---------------------------------------------------------------- timeout --

-- The timer callback: cancel the task (asyncio's Timeout._on_timeout).
local function expire(st)
  st.expired = true
  st.task:cancel()
end

-- After fn: a CancelledError that our expiry caused becomes a TimeoutError
-- (asyncio's Timeout.__aexit__); uncancel() tells ours from one requested
-- by someone else, which must propagate untouched.
local function leave(st, h, ok, ...)
  h:cancel()
  if st.expired and st.task:uncancel() <= st.cancelling and not ok
      and CancelledError:is((...)) then
    error(TimeoutError("timed out", {cause = (...)}), 0)
  end
  if not ok then error((...), 0) end
  return ...
end

-- Run fn(...) in task with a deadline at loop time `when` (nil: none).
local function within(task, when, fn, ...)
  if when == nil then return fn(...) end
  local loop = task:get_loop()
  local st = {task = task, cancelling = task:cancelling(), expired = false}
  local h
  if when <= loop:time() then h = loop:call_soon(expire, st)
  else h = loop:call_at(when, expire, st) end
  return leave(st, h, pcall(fn, ...))
end

local function after(task, delay)
  return delay and task:get_loop():time() + delay
end

--- timeout(delay, fn, ...): runs fn(...) in the current task; if it is not
--- done within delay seconds it is cancelled and TimeoutError is raised
--- instead of the CancelledError. Returns fn's results; nil delay: no
--- deadline. A cancellation of the task by anyone else propagates as is.
---@param delay? number
---@param fn function
---@param ... any
---@return any ... fn's results
function M.timeout(delay, fn, ...)
  check(is_number_or_nil(delay), delay, 1, "timeout", "number or nil")
  checks.callable(fn, 2, "timeout")
  local task = check_task("timeout")
  return within(task, after(task, delay), fn, ...)
end

--- timeout_at(when, fn, ...): as timeout, with a deadline on the loop's
--- clock (lasync.time()); nil: none.
---@param when? number
---@param fn function
---@param ... any
---@return any ... fn's results
function M.timeout_at(when, fn, ...)
  check(is_number_or_nil(when), when, 1, "timeout_at", "number or nil")
  checks.callable(fn, 2, "timeout_at")
  return within(check_task("timeout_at"), when, fn, ...)
end

-- ---------------------------------------------------------------- wait_for --

-- Cancel fut and wait until it is done, without awaiting fut itself, so
-- that this wait stays cancellable (asyncio's _cancel_and_wait).
local function cancel_and_wait(fut)
  local waiter = core.Future()
  local function wake() release(waiter) end
  fut:add_done_callback(wake)
  fut:cancel()
  local ok, err = pcall(await, waiter)
  fut:remove_done_callback(wake)
  reraise(ok, err)
end

local function or_timeout(ok, ...)
  if ok then return ... end
  if CancelledError:is((...)) then
    error(TimeoutError("timed out", {cause = (...)}), 0)
  end
  error((...), 0)
end

--- wait_for(aw, timeout): awaits aw (a future or task, or a function run in
--- the current task) and returns its results; after timeout seconds aw is
--- cancelled, the cancellation is waited for and TimeoutError is raised. If
--- aw absorbs the cancellation, what it then returns or raises is the
--- outcome. timeout nil: no deadline. timeout <= 0: a done future gives its
--- outcome at once, a pending one is cancelled at once (a function is
--- spawned and cancelled, so it never runs).
---@param aw lasync.Future|function
---@param timeout? number
---@return any ... aw's results
function M.wait_for(aw, timeout)
  check(is_awaitable(aw), aw, 1, "wait_for", AWAITABLE)
  check(is_number_or_nil(timeout), timeout, 2, "wait_for", "number or nil")
  local task = check_task("wait_for")
  if timeout ~= nil and timeout <= 0 then
    local fut = to_future(aw)
    if fut:done() then return fut:result() end
    cancel_and_wait(fut)
    return or_timeout(pcall(fut.result, fut))
  end
  if is_future(aw) then return within(task, after(task, timeout), await, aw) end
  return within(task, after(task, timeout), aw)
end

-- ----------------------------------------------------------------- shield --

--- shield(aw): a future that mirrors aw (a future, a task, or a function
--- spawned as a task): cancelling it, or the task awaiting it, leaves aw
--- running. aw itself is returned if it is already done.
---@param aw lasync.Future|function
---@return lasync.Future
function M.shield(aw)
  check(is_awaitable(aw), aw, 1, "shield", AWAITABLE)
  local inner = to_future(aw)
  if inner:done() then return inner end
  local outer = inner:get_loop():create_future()
  local function on_inner(f)
    if outer:done() then return failure(f) end  -- marks errors retrieved
    if f:cancelled() then return outer:cancel() end
    local failed, err = failure(f)
    if failed then future_fail(outer, err) else outer:set_result(f:result()) end
  end
  inner:add_done_callback(on_inner)
  outer:add_done_callback(function()
    if not inner:done() then inner:remove_done_callback(on_inner) end
  end)
  return outer
end

-- ----------------------------------------------------------- as_completed --

-- Iteration state: the futures done but not yet yielded are st[head..tail].
local Completion = {}

-- The generic for's closing value: on break or error too, the timer and
-- the callbacks go.
function Completion:__close()
  if self.handle then self.handle:cancel() end
  for i = 1, self.n do self.fs[i]:remove_done_callback(self.on_done) end
end

local function completed(st, f)
  if st.timed_out then return end
  st.tail = st.tail + 1
  st[st.tail] = f
  st.pending = st.pending - 1
  if st.pending == 0 and st.handle then st.handle:cancel() end
  if st.waiter then release(st.waiter) end
end

local function as_completed_timeout(st)
  st.timed_out = true
  if st.waiter then release(st.waiter) end
end

-- The iterator: the next future done, suspending until there is one.
local function next_completed(st)
  if st.head <= st.tail then
    local f = st[st.head]
    st[st.head], st.head, st.left = nil, st.head + 1, st.left - 1
    return f
  end
  if st.left == 0 then return nil end
  if st.timed_out then error(TimeoutError("timed out"), 0) end
  st.waiter = core.Future()
  await(st.waiter)
  st.waiter = nil
  return next_completed(st)
end

-- The futures of list[1..len], functions spawned, each future once; and
-- their count.
local function distinct_futures(list, len)
  local fs, seen = {}, {}
  for i = 1, len do
    local f = to_future(list[i])
    if not seen[f] then
      seen[f] = true
      fs[#fs + 1] = f
    end
  end
  return fs, #fs
end

--- as_completed(list, timeout): an iterator over the futures of list
--- (functions are spawned as tasks) in the order they complete, suspending
--- until the next one is done: `for f in as_completed(fs) do local v =
--- f:await() end` (f is done, so await does not suspend). When timeout
--- seconds pass with futures still pending, the iterator raises
--- TimeoutError (after yielding those already done). A future listed twice
--- is yielded once (asyncio works on the set of them); each function item
--- is a task of its own.
---@param list (lasync.Future|function)[]
---@param timeout? number
---@return fun(): lasync.Future|nil
function M.as_completed(list, timeout)
  local len = checks.list(list, 1, "as_completed", is_awaitable, AWAITABLE)
  check(is_number_or_nil(timeout), timeout, 2, "as_completed", "number or nil")
  local fs, n = distinct_futures(list, len)
  local st = setmetatable({fs = fs, n = n, head = 1, tail = 0, left = n,
                           pending = n, timed_out = false}, Completion)
  st.on_done = function(f) completed(st, f) end
  for i = 1, n do fs[i]:add_done_callback(st.on_done) end
  if timeout and n > 0 then
    local loop = core.get_running_loop() or misuse("no running event loop")
    st.handle = loop:call_later(timeout, as_completed_timeout, st)
  end
  return next_completed, st, nil, st
end

-- ------------------------------------------------------------- task_group --

-- A task group (asyncio's TaskGroup). Its pending children are kept in
-- spawning order in `tasks`; `slot` maps a child to its index there.
---@class lasync.TaskGroup
local TaskGroup = {}
TaskGroup.__index = TaskGroup
TaskGroup.__name = "TaskGroup"

local function untrack(tg, t)
  local tasks, slot = tg.tasks, tg.slot
  local i, last = slot[t], #tasks
  slot[t] = nil
  if i ~= last then
    tasks[i] = tasks[last]
    slot[tasks[i]] = i
  end
  tasks[last] = nil
end

-- errors is a list with n, which counts an error(nil) too.
local function add_error(tg, err)
  local errors = tg.errors
  errors.n = errors.n + 1
  errors[errors.n] = err
end

local function abort(tg)
  tg.aborting = true
  for i = 1, #tg.tasks do tg.tasks[i]:cancel() end
end

-- asyncio's TaskGroup._on_task_done: the first failure aborts the group
-- and cancels the parent, so that a body still waiting stops waiting.
local function on_task_done(tg, t)
  untrack(tg, t)
  if #tg.tasks == 0 and tg.completed then release(tg.completed) end
  if t:cancelled() then return end
  local failed, err = failure(t)
  if not failed then return end
  add_error(tg, err)
  if not tg.aborting and not tg.parent_cancel_requested then
    abort(tg)
    tg.parent_cancel_requested = true
    tg.parent:cancel()
  end
end

--- tg:spawn(fn, ...) (also tg:create_task): starts fn(...) as a child task
--- of the group and returns it. Raises once the group is finished or is
--- shutting down after a failure or a cancellation.
---@param fn function
---@param ... any
---@return lasync.Task
function TaskGroup:spawn(fn, ...)
  if getmetatable(self) ~= TaskGroup then checks.bad_self(self, TaskGroup, "spawn") end
  checks.callable(fn, 1, "spawn")
  if self.exiting and #self.tasks == 0 then misuse("task group is finished") end
  if self.aborting then misuse("task group is shutting down") end
  local t = self.parent:get_loop():create_task(fn, ...)
  self.tasks[#self.tasks + 1] = t
  self.slot[t] = #self.tasks
  t:add_done_callback(self.on_done)
  return t
end

TaskGroup.create_task = TaskGroup.spawn

-- Wait until no child is pending; a cancellation of the parent meanwhile
-- aborts the group. Returns the cancellation to propagate (asyncio's
-- _aexit loop).
local function join(tg, propagate)
  while #tg.tasks > 0 do
    tg.completed = tg.completed or core.Future()
    local ok, err = pcall(await, tg.completed)
    if not ok and not tg.aborting then
      propagate = err
      abort(tg)
    end
    tg.completed = nil
  end
  return propagate
end

local function group_error(errors)
  local n = errors.n
  return core.TaskGroupError(("unhandled errors in a task group (%d error%s)")
                             :format(n, n == 1 and "" or "s"), {errors = errors})
end

-- asyncio's TaskGroup.__aexit__, after the body ended with ok, ....
local function leave_group(tg, ok, ...)
  local err = not ok and (...) or nil
  local cancelled = not ok and CancelledError:is(err)
  tg.exiting = true
  if not ok and not tg.aborting then abort(tg) end
  local propagate = join(tg, cancelled and err or nil)
  -- Undo our own cancel of the parent; it comes with an error, which
  -- takes priority over any CancelledError.
  if tg.parent_cancel_requested then tg.parent:uncancel() end
  if propagate ~= nil and tg.errors.n == 0 then error(propagate, 0) end
  if not ok and not cancelled then add_error(tg, err) end
  if tg.errors.n > 0 then
    if tg.parent:cancelling() > 0 then  -- keep an outside cancel pending
      tg.parent:uncancel()
      tg.parent:cancel()
    end
    error(group_error(tg.errors), 0)
  end
  return ...
end

--- task_group(fn): calls fn(tg) in the current task and returns its results
--- once every child spawned with tg:spawn(fn, ...) has finished. When a
--- child fails, the body (if still waiting) and the other children are
--- cancelled and a TaskGroupError is raised whose `errors` lists every error
--- of the children and of the body (cancellations excluded) as items
--- 1..errors.n (an error(nil) leaves a hole there). When the task
--- is cancelled, the children are cancelled and waited for, and the
--- CancelledError propagates.
---@param fn fun(tg: lasync.TaskGroup): ...
---@return any ... fn's results
function M.task_group(fn)
  checks.callable(fn, 1, "task_group")
  local tg = setmetatable({parent = check_task("task_group"), tasks = {}, slot = {},
                           errors = {n = 0}, exiting = false, aborting = false,
                           parent_cancel_requested = false}, TaskGroup)
  tg.on_done = function(t) on_task_done(tg, t) end
  return leave_group(tg, pcall(fn, tg))
end

return M
