---@meta lasync.core
-- LuaLS (lua-language-server) definitions of lasync.core, the C module
-- (src/*.c): its functions and the objects they make. Never required: the
-- real module is build/lasync/core.so. Why here, as lasync.types.core: the
-- rockspec installs it beside the Lua modules, so the one folder a user
-- gives LuaLS's `workspace.library` (docs/editor.md) has both, and the
-- name `---@meta lasync.core` above makes LuaLS answer
-- `require "lasync.core"` with it, while a name of its own keeps it from
-- shadowing the C module on the module path.
-- Only the public API (docs/reference.md) is described; the `_`-prefixed
-- internals of the core are left out on purpose.
-- @module lasync.core

---@class lasync.core
---@field VERSION string the version string, e.g. "0.1.0"
---@field Error lasync.ErrorClass the root of the error classes (§6)
---@field CancelledError lasync.ErrorClass
---@field TimeoutError lasync.ErrorClass
---@field InvalidStateError lasync.ErrorClass
---@field IncompleteReadError lasync.ErrorClass fields partial, expected
---@field LimitOverrunError lasync.ErrorClass field consumed
---@field QueueEmpty lasync.ErrorClass
---@field QueueFull lasync.ErrorClass
---@field QueueShutDown lasync.ErrorClass
---@field BrokenBarrierError lasync.ErrorClass
---@field TaskGroupError lasync.ErrorClass field errors
---@field OSError lasync.ErrorClass fields errno, code
---@field ConnectionError lasync.ErrorClass
---@field ConnectionRefusedError lasync.ErrorClass
---@field ConnectionResetError lasync.ErrorClass
---@field ConnectionAbortedError lasync.ErrorClass
---@field BrokenPipeError lasync.ErrorClass
---@field SSLError lasync.ErrorClass field reason
---@field SSLCertVerificationError lasync.ErrorClass fields verify_code, verify_message
---@field HTTPError lasync.ErrorClass field status
local core = {}

-- ------------------------------------------------------------ errors --

--- An error class (§6): a table; calling it makes an instance.
---@class lasync.ErrorClass
---@overload fun(message?: string, fields?: table): lasync.Error
local ErrorClass = {}

--- Whether v is an instance of this class or of a subclass.
---@param v any the value tested
---@return boolean
function ErrorClass:is(v) end

--- An instance of an error class; `tostring(e)` is "ClassName: message".
---@class lasync.Error
---@field message string
---@field code? string OSError: the errno name, such as "ECONNREFUSED"
---@field errno? integer OSError: the errno value
---@field errors? table TaskGroupError: the errors, items 1..errors.n
---@field partial? string IncompleteReadError: the bytes read before EOF
---@field expected? integer IncompleteReadError: how many were wanted
---@field consumed? integer LimitOverrunError
---@field status? integer HTTPError: the status of the answer
---@field reason? string SSLError: OpenSSL's reason
---@field verify_code? integer SSLCertVerificationError
---@field verify_message? string SSLCertVerificationError, e.g. "hostname mismatch"

-- ------------------------------------------------------------- loops --

--- An event loop (§2), from get_running_loop() or new_event_loop().
---@class lasync.Loop
---@field slow_callback_duration number debug mode: steps slower than this are reported (default 0.1 s)
local Loop = {}

--- The loop's monotonic clock, in seconds.
---@return number
function Loop:time() end

--- Schedules fn(...) for a later iteration of the loop.
---@param fn function the callback
---@param ... any its arguments
---@return lasync.Handle
function Loop:call_soon(fn, ...) end

--- Schedules fn(...) delay seconds from now.
---@param delay number seconds
---@param fn function the callback
---@param ... any its arguments
---@return lasync.TimerHandle
function Loop:call_later(delay, fn, ...) end

--- Schedules fn(...) at `when` on the clock of loop:time().
---@param when number the deadline
---@param fn function the callback
---@param ... any its arguments
---@return lasync.TimerHandle
function Loop:call_at(when, fn, ...) end

--- A new Future of this loop.
---@return lasync.Future
function Loop:create_future() end

--- A new Task of this loop running fn(...).
---@param fn function the task's body
---@param ... any its arguments
---@return lasync.Task
function Loop:create_task(fn, ...) end

--- Runs the loop until fut_or_fn is done (a function is made a task with
--- the extra arguments) and returns its results.
---@param fut_or_fn lasync.Future|function what to run
---@param ... any a function's arguments
---@return any ... the results
function Loop:run_until_complete(fut_or_fn, ...) end

--- Runs the loop until stop() is called.
function Loop:run_forever() end

--- Stops run_forever() after the current iteration.
function Loop:stop() end

--- Closes the loop (joins its worker threads, reports unretrieved errors).
function Loop:close() end

--- Whether the loop is closed.
---@return boolean
function Loop:is_closed() end

--- Whether the loop is running.
---@return boolean
function Loop:is_running() end

--- Calls fn(...) whenever fd is readable.
---@param fd integer a file descriptor
---@param fn function the callback
---@param ... any its arguments
function Loop:add_reader(fd, fn, ...) end

--- Stops watching fd for reading.
---@param fd integer
---@return boolean removed true if a callback was registered
function Loop:remove_reader(fd) end

--- Calls fn(...) whenever fd is writable.
---@param fd integer a file descriptor
---@param fn function the callback
---@param ... any its arguments
function Loop:add_writer(fd, fn, ...) end

--- Stops watching fd for writing.
---@param fd integer
---@return boolean removed true if a callback was registered
function Loop:remove_writer(fd) end

--- Calls fn(...) when the signal arrives.
---@param sig integer|string a number or a name such as "SIGTERM"
---@param fn function the callback
---@param ... any its arguments
function Loop:add_signal_handler(sig, fn, ...) end

--- Removes the handler of sig.
---@param sig integer|string a number or a name
---@return boolean removed true if a handler was registered
function Loop:remove_signal_handler(sig) end

--- Sets the exception handler, fn(loop, context); nil restores the default.
---@param fn? fun(loop: lasync.Loop, context: table)
function Loop:set_exception_handler(fn) end

--- The exception handler; nil while the default is in use.
---@return fun(loop: lasync.Loop, context: table)|nil
function Loop:get_exception_handler() end

--- The default handler: prints the report to stderr.
---@param context table message, exception, future, task, handle, traceback
function Loop:default_exception_handler(context) end

--- Sends context to the exception handler.
---@param context table message and, where they apply, exception, future, task, handle, traceback
function Loop:call_exception_handler(context) end

--- Turns debug mode on or off (§1).
---@param b boolean
function Loop:set_debug(b) end

--- Whether debug mode is on.
---@return boolean
function Loop:get_debug() end

--- asyncio's sock_accept on a lasync.socket server (§12).
---@param s table a lasync.socket server object
---@return table client, table address {host, port, family}
function Loop:sock_accept(s) end

--- Up to n bytes from s as soon as some are there ("" at EOF).
---@param s table a lasync.socket object
---@param n integer the most bytes to return
---@return string
function Loop:sock_recv(s, n) end

--- Sends all of data on s.
---@param s table a lasync.socket object
---@param data string
function Loop:sock_sendall(s, data) end

--- Connects s to host:port.
---@param s table a lasync.socket object
---@param host string
---@param port integer
function Loop:sock_connect(s, host, port) end

-- ----------------------------------------------------------- handles --

--- A callback scheduled with call_soon.
---@class lasync.Handle
local Handle = {}

--- Cancels the callback if it has not run.
function Handle:cancel() end

--- Whether it was cancelled.
---@return boolean
function Handle:cancelled() end

--- A callback scheduled with call_later or call_at.
---@class lasync.TimerHandle: lasync.Handle
local TimerHandle = {}

--- Its deadline on the loop's clock.
---@return number
function TimerHandle:when() end

-- ----------------------------------------------------------- futures --

--- A Future (§3); `tostring(f)` shows its state.
---@class lasync.Future
local Future = {}

--- Sets the result: any number of values, nils included.
---@param ... any the results
function Future:set_result(...) end

--- Sets the error: any Lua value.
---@param err any
function Future:set_exception(err) end

--- The results, or raises the error (CancelledError if cancelled,
--- InvalidStateError if pending).
---@return any ...
function Future:result() end

--- The error, or nil on success.
---@return any
function Future:exception() end

--- Whether it is done.
---@return boolean
function Future:done() end

--- Whether it was cancelled.
---@return boolean
function Future:cancelled() end

--- Cancels it.
---@param msg? string the CancelledError's message
---@return boolean cancelled true if it was pending
function Future:cancel(msg) end

--- Schedules fn(f) when it is done (never called synchronously).
---@param fn fun(f: lasync.Future)
function Future:add_done_callback(fn) end

--- Removes fn from the done callbacks.
---@param fn function
---@return integer removed the number removed
function Future:remove_done_callback(fn) end

--- Inside a task: its results, or raises its error.
---@return any ...
function Future:await() end

--- The loop it belongs to.
---@return lasync.Loop
function Future:get_loop() end

--- Where a task failed or (debug mode) where the future was created.
---@return string|nil
function Future:traceback() end

--- A Task (§4): a Future running a function in a coroutine.
---@class lasync.Task: lasync.Future
local Task = {}

--- The task's name (default "Task-N").
---@return string
function Task:get_name() end

--- Names the task.
---@param s string
function Task:set_name(s) end

--- The count of pending cancel requests.
---@return integer
function Task:cancelling() end

--- Takes back one cancel request; returns the count left.
---@return integer
function Task:uncancel() end

--- The task's Lua thread (nil once reused).
---@return thread|nil
function Task:get_coro() end

-- ------------------------------------------------------ core functions --

--- A new Future on the running loop.
---@return lasync.Future
function core.Future() end

--- Spawns fn(...) as a task on the running loop.
---@param fn function
---@param ... any
---@return lasync.Task
function core.spawn(fn, ...) end

--- Awaits f (see Future:await).
---@param f lasync.Future
---@return any ...
function core.await(f) end

--- Suspends for delay seconds; returns the extra arguments.
---@param delay number seconds (0: one iteration; negative counts as 0)
---@param ... any returned
---@return any ...
function core.sleep(delay, ...) end

--- The running task, or nil.
---@return lasync.Task|nil
function core.current_task() end

--- The pending tasks of loop (default the running one).
---@param loop? lasync.Loop
---@return lasync.Task[]
function core.all_tasks(loop) end

--- The running loop's clock.
---@return number
function core.time() end

--- The RESP2 reply of value: a string as a bulk string, an integer as an
--- integer reply, nil or false as the null bulk string, a table as an
--- array of its elements 1..#t, each encoded likewise.
---@param value string|integer|false|nil|table
---@return string
function core.resp_encode(value) end

--- Whether v is a Future (a Task is one).
---@param v any
---@return boolean
function core.is_future(v) end

--- Whether v is a Task.
---@param v any
---@return boolean
function core.is_task(v) end

--- Looks host up without blocking the loop (§9).
---@param host string
---@param port? integer|string a number, a numeric string or a service name
---@param opts? {family?: "inet"|"inet6", type?: "stream"|"dgram"}
---@return {family: string, host: string, port: integer}[]
function core.getaddrinfo(host, port, opts) end

--- Runs fn(...) in a worker thread with a Lua state of its own (§9);
--- arguments and results are copied.
---@param fn function a Lua function whose only upvalue may be _ENV
---@param ... any copied to the worker
---@return any ...
function core.to_thread(fn, ...) end

--- Bounds how many to_thread calls run at once; returns the old size.
---@param n integer 1 to 1024
---@return integer
function core.set_thread_pool_size(n) end

--- The running loop, or nil.
---@return lasync.Loop|nil
function core.get_running_loop() end

--- A new loop (lasync.new_event_loop adds LASYNC_DEBUG).
---@return lasync.Loop
function core.new_loop() end

--- A new Event.
---@return lasync.Event
function core.Event() end

-- ---------------------------------------------------------- sync (C) --

--- An Event (§7), written in C.
---@class lasync.Event
local Event = {}

--- Sets the flag and wakes every waiter.
function Event:set() end

--- Clears the flag.
function Event:clear() end

--- Whether the flag is set.
---@return boolean
function Event:is_set() end

--- Waits until the flag is set.
---@return true
function Event:wait() end

--- A queue (§7), written in C: Queue, LifoQueue or PriorityQueue.
---@class lasync.Queue
---@field maxsize integer 0: no limit
local Queue = {}

--- Puts v, waiting while the queue is full.
---@param v any not nil
function Queue:put(v) end

--- Takes an item, waiting while the queue is empty.
---@return any
function Queue:get() end

--- Puts v or raises QueueFull.
---@param v any not nil
function Queue:put_nowait(v) end

--- Takes an item or raises QueueEmpty.
---@return any
function Queue:get_nowait() end

--- How many items it holds.
---@return integer
function Queue:qsize() end

--- Whether it is empty.
---@return boolean
function Queue:empty() end

--- Whether it is full.
---@return boolean
function Queue:full() end

--- Marks an item taken earlier as processed (for join).
function Queue:task_done() end

--- Waits until every item put was marked done.
function Queue:join() end

--- Shuts the queue down: put raises QueueShutDown, get once empty (at once
--- if immediate, which empties it).
---@param immediate? boolean
function Queue:shutdown(immediate) end

-- ----------------------------------------------------------- streams --

--- A connection (§8): one object, the reader and the writer.
---@class lasync.Stream
local Stream = {}

--- The reader of a connection: its Stream.
---@alias lasync.StreamReader lasync.Stream
local StreamReader = Stream

--- The writer of a connection: its Stream.
---@alias lasync.StreamWriter lasync.Stream
local StreamWriter = Stream

--- Up to n bytes (n = -1 or nil: until EOF); "" at EOF.
---@param n? integer
---@return string
function Stream:read(n) end

--- A line, "\n" kept; at EOF the rest.
---@return string
function Stream:readline() end

--- Exactly n bytes, or raises IncompleteReadError.
---@param n integer
---@return string
function Stream:readexactly(n) end

--- Up to and including sep.
---@param sep? string default "\n"
---@return string
function Stream:readuntil(sep) end

--- A RESP2 request (multibulk or inline) into argv[1..argc]: argc; nil at
--- EOF; nil and "Protocol error: ..." on bad input; false with nowait when
--- no whole command is buffered.
---@param argv string[]
---@param nowait? boolean
---@return integer|false|nil argc
---@return string? err
function Stream:readresp(argv, nowait) end

--- Whether the input ended and nothing is buffered.
---@return boolean
function Stream:at_eof() end

--- A `for` iterator of lines without "\n" or "\r\n".
---@return fun(): string|nil
function Stream:lines() end

--- Buffers data (never suspends).
---@param data string
function Stream:write(data) end

--- Buffers each string of list.
---@param list string[]
function Stream:writelines(list) end

--- Suspends while more than 64 KiB is buffered.
function Stream:drain() end

--- Sends EOF.
function Stream:write_eof() end

--- Whether write_eof() works (false on TLS).
---@return boolean
function Stream:can_write_eof() end

--- Sends what is buffered, then closes.
function Stream:close() end

--- Returns once closed; raises the connection's error if it failed.
function Stream:wait_closed() end

--- Whether it is closing or closed.
---@return boolean
function Stream:is_closing() end

--- "peername", "sockname", "fd", and on TLS "tls_version", "cipher",
--- "alpn_protocol", "peercert".
---@param name string
---@param default? any returned when it is not known
---@return any ...
function Stream:get_extra_info(name, default) end

--- Upgrades the connection to TLS; returns once the handshake is done.
---@param ssl boolean|table|userdata true, settings or an ssl_context
---@param opts? {server_hostname?: string, ssl_handshake_timeout?: number}
function Stream:start_tls(ssl, opts) end

--- A listening server (§8).
---@class lasync.Server
local Server = {}

--- Stops listening.
function Server:close() end

--- Returns once closed and every handler has finished.
function Server:wait_closed() end

--- Serves until closed; cancelled, it closes the server.
function Server:serve_forever() end

--- Whether it is listening.
---@return boolean
function Server:is_serving() end

--- Host and port (or the path) of the first listening socket.
---@return string host, integer|nil port
function Server:sockname() end

--- Every listening address.
---@return table[] list of {host=, port=} or {path=}
function Server:socknames() end

--- Closes every connection.
function Server:close_clients() end

--- Aborts every connection, without sending what is buffered.
function Server:abort_clients() end

--- While n handlers run new connections wait (nil or 0: no limit).
---@param n? integer
function Server:set_max_connections(n) end

--- A UDP endpoint (§9), from lasync.open_datagram.
---@class lasync.DatagramEndpoint
local DatagramEndpoint = {}

--- The oldest datagram received, suspending while there is none.
---@return string data, string host, integer port
function DatagramEndpoint:recvfrom() end

--- One datagram to the connected peer.
---@param data string at most 65,507 bytes
function DatagramEndpoint:send(data) end

--- One datagram to host:port (a numeric address).
---@param data string at most 65,507 bytes
---@param host string
---@param port integer
function DatagramEndpoint:sendto(data, host, port) end

--- The local address.
---@return string host, integer port
function DatagramEndpoint:sockname() end

--- How many datagrams the queue dropped.
---@return integer
function DatagramEndpoint:dropped() end

--- Closes it (idempotent).
function DatagramEndpoint:close() end

--- A TLS context (§8), from lasync.ssl_context.
---@class lasync.SSLContext
local SSLContext = {}

--- The headers of a request or response (§10): `h[name]` is
--- case-insensitive, repeated fields joined with ", "; pairs(h) gives
--- lowercased names.
---@class lasync.http.Headers
local Headers = {}

--- The field's value (case-insensitive name), or nil.
---@param name string
---@return string|nil
function Headers:get(name) end

--- Every value of the field, in order.
---@param name string
---@return string[]
function Headers:get_all(name) end

return core
