/*
** lasync internal header: the structs and the functions that cross files,
** in layers, each built on those before it:
**   1. the object model: every C object's head, the module state, errors;
**   2. the loop and its handles: ready queue, anchors, timers, watches,
**      per-loop extensions, contexts;
**   3. futures and tasks;
**   4. waiting: how a task awaits a future or parks, and the lists of
**      parked tasks built on that (to learn how a task waits, is woken and
**      is cancelled, read this section and task.c's header);
**   5. I/O: addresses, DNS, streams, servers, TLS, the serve command's
**      system calls.
** Each block of prototypes is labelled with the file that defines them;
** only task.c has two, its tasks (layer 3) and its waits (layer 4).
** Ownership: every C object is a full userdata; the Lua values it owns live
** in its user values, so the GC sees every cycle. The loop anchors what it
** must keep alive (pending tasks, scheduled handles) in a table keyed by the
** object's address.
*/
#ifndef LASYNC_H
#define LASYNC_H

#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/types.h>

#define LASYNC_VERSION "0.1.0"

#if LUA_VERSION_NUM != 504
#error "lasync needs Lua 5.4"
#endif
#if LUA_VERSION_RELEASE_NUM < 50406
#define lua_closethread(co, from) ((void)(from), lua_resetthread(co))
#endif

/* ======== 1. The object model (module.c, errors.c) ======================= */

typedef struct Loop Loop;
typedef struct Task Task;

/* Kinds of C objects; stored first in each struct so that the ready queue
** can hold plain pointers and tell what it runs. */
enum { K_LOOP, K_HANDLE, K_TIMER, K_WATCH, K_FUTURE, K_TASK, K_STREAM,
       K_SERVER, K_TLSCTX, K_WAITLIST, K_EVENT, K_QUEUE, K_DATAGRAM,
       K_NKINDS };
/* A failed future or task switches to a metatable with __gc (to report an
** error never retrieved); the others have no finalizer, which would make
** every one of them cost a finalizer call and an extra GC cycle. */
enum { K_FFUTURE = K_NKINDS, K_FTASK, K_NMT };

/* Every C object starts with this head: a mark that it is one of ours (a
** static address no other userdata holds there), its kind, its slot in the
** loop's anchors (0 when not anchored) and its loop. Type checks read it
** instead of comparing metatables, which costs a few API calls less. */
#define OBJ_HEAD const void *magic; int kind; int slot; Loop *loop
#define LASYNC_MAGIC ((const void *)&lasync_suspend)
typedef struct Obj { OBJ_HEAD; } Obj;

/* Per-loop extensions (loop.c): an I/O file that keeps state per loop, or
** must clean up when a loop closes, has a slot here. The loop knows nothing
** of what a slot holds: lp->ext[slot] is the file's own (NULL until the
** file fills it, on first use), and the close hook that the file registers
** at module open (loop_register_ext) frees it when the loop closes, hooks
** in slot order, before the loop's event base goes. Reaching a slot costs
** what a field of the Loop does. */
enum {
  LX_WATCH,        /* watch.c: no state (its watches are in LUV_WATCH) */
  LX_DNS,          /* dns.c: the resolver and its lookups in flight */
  LX_STREAM,       /* stream.c: the receive buffer; no close hook */
  LX_THREAD,       /* thread.c: the pool of worker threads */
  LX_N
};
typedef void (*LoopCloseHook)(lua_State *L, Loop *lp, int loopidx);

/* Per Lua state module data, the upvalue of every C function. */
typedef struct Mod {
  Loop *running;                 /* loop running in this state, or NULL */
  int mtref[K_NMT];              /* registry refs of the metatables */
  int loopsref;                  /* weak table: address -> loop */
  const void *cancelled_cls;     /* CancelledError class table */
  unsigned long task_seq;        /* for default task names */
  unsigned long cancel_walks;    /* task_cancel calls, to mark a walk */
  int ctx_used;                  /* a ContextVar was ever set */
  LoopCloseHook loop_close[LX_N]; /* per-loop extensions' close hooks */
  lua_Integer futures_made;      /* future_new calls, for core._futures_made */
  int thread_pool_size;          /* set_thread_pool_size's, or 0: default */
} Mod;

/* Module user values (the Mod userdata). */
enum {
  MUV_ERRORS = 1, MUV_CTX, MUV_SLEEPCB,
  MUV_RUNNING,     /* the running loop, or nil */
  MUV_ANCHORS,     /* and its anchors (LUV_ANCHORS), or nil */
  MUV_POOL,        /* and its pool of finished threads, or nil */
  MUV_NUV = MUV_POOL
};

#define SUSPEND_KEY ((void *)&lasync_suspend)
#define CANCEL_KEY ((void *)&lasync_cancel)
extern const char lasync_suspend, lasync_cancel;

#define lasync_mod(L) ((Mod *)lua_touserdata(L, lua_upvalueindex(1)))

/* Room for libevent events at the end of a userdata (event_assign): a
** closed loop then leaves no event to free. Aligned as Lua aligns a
** userdata, which max_align_t may exceed. */
typedef union EvMem { void *p; double d; long long l; } EvMem;
size_t lasync_evsize(void);
void *lasync_state_buffer(lua_State *L, const void *key, size_t size,
                          int *made);

/* module.c */
void *lasync_toobj(lua_State *L, int idx, int kind);
void *lasync_checkobj(lua_State *L, int idx, int kind, const char *what);
void lasync_setmt(lua_State *L, Mod *m, int kind);
int lasync_pushx(lua_State *L, int idx, int uv, int nx, int make);
int lasync_getx(lua_State *L, int idx, int uv, int x);
void lasync_setx(lua_State *L, int idx, int uv, int x, int nx);
void lasync_newmeta(lua_State *L, int kind, const luaL_Reg *methods,
                    const luaL_Reg *meta);
void lasync_addfuncs(lua_State *L, const luaL_Reg *l);
double lasync_now(void);
Loop *lasync_running(lua_State *L, Mod *m);
const char *lasync_tostring(lua_State *L, int idx);
void lasync_checkcallable(lua_State *L, int idx, const char *what);
void lasync_addmethods(lua_State *L, int kind, const luaL_Reg *l);

/* errors.c */
void errors_register(lua_State *L);
void errors_push_new(lua_State *L, const char *cls, const char *msg);
void errors_push_newv(lua_State *L, const char *cls, int msgidx);
int errors_raise(lua_State *L, const char *cls, const char *fmt, ...);
int errors_is_cancelled(lua_State *L, Mod *m, int idx);
void errors_push_oserror(lua_State *L, int err, const char *what);

/* ======== 2. The loop and its handles (loop, handle, watch, context.c) === */

typedef struct Handle {
  OBJ_HEAD;                      /* K_HANDLE, K_TIMER or K_WATCH */
  unsigned char cancelled, queued;
  int nargs;                     /* callback arguments, in user values */
  double when;                   /* K_TIMER: deadline on loop time */
  unsigned long seq;             /* K_TIMER: tie-break, scheduling order */
  struct event *ev;              /* K_WATCH: fd or signal event */
  int fd;                        /* K_WATCH: fd or signal number */
  short what;                    /* K_WATCH: EV_READ, EV_WRITE or EV_SIGNAL */
} Handle;
/* Handle user values: 1 = callback, 2..nargs+1 = arguments, last = context. */

typedef struct TimerHeap {
  Handle **h;
  int n, cap, ncancelled;
} TimerHeap;

struct Loop {
  OBJ_HEAD;
  Mod *mod;
  struct event_base *base;
  struct event *tick;            /* fires at the earliest timer deadline */
  double tick_at;                /* the deadline it is armed for, -1: none */
  lua_State *L;                  /* thread running the loop, while it runs */
  void **ready;                  /* ring of Handle* and Task* to run */
  size_t rhead, rcount, rcap;
  TimerHeap timers;
  unsigned long timer_seq;
  Task *current;                 /* task being stepped */
  double slow;                   /* slow_callback_duration */
  int anchors;                   /* registry ref of LUV_ANCHORS, or
                                    LUA_NOREF when not running */
  int nslots;                    /* anchors slots used so far */
  int pool, npool;               /* registry ref of finished threads */
  int *freeslots, nfree, capfree; /* slots to reuse */
  size_t ran;                    /* items run since the last I/O poll */
  unsigned char running, stopping, closed, debug;
  unsigned char vtime;           /* virtual time: the clock jumps to timers */
  double voffset;                /* virtual time: loop time - real time */
  Handle *vdeadline;             /* virtual time: a timer kept on real time */
  void *ext[LX_N];               /* per-loop extensions, LX_* */
};

/* Loop user values. */
enum {
  LUV_HANDLER = 1, /* exception handler, or nil */
  LUV_WATCH,       /* "r"..fd / "w"..fd / "s"..sig -> watch Handle */
  LUV_FAILED,      /* weak-keyed: futures with an unretrieved error */
  LUV_CTX,         /* context of the callback being run */
  LUV_ANCHORS,     /* slot -> pending task or scheduled handle */
  LUV_VDEADLINE,   /* virtual time: the TimerHandle kept on real time */
  LUV_NUV = LUV_VDEADLINE
};

/* loop.c */
void loop_register(lua_State *L);
void loop_ready_push(Loop *lp, void *obj);
void loop_anchor(lua_State *L, Loop *lp, int idx);
void loop_unanchor(lua_State *L, Loop *lp, const void *p);
void loop_push_anchored(lua_State *L, Loop *lp, const void *p);
void loop_push_anchors(lua_State *L, Loop *lp);
void loop_push(lua_State *L, Loop *lp);
void loop_report(lua_State *L, Loop *lp, int ctxidx);
void loop_report_error(lua_State *L, Loop *lp, const char *msg, int erridx,
                       int objidx, const char *objfield, int tbidx);
int loop_pcall(lua_State *L, int nargs, int nres);
void loop_push_traceback(lua_State *L);
double loop_time(Loop *lp);
void loop_push_pool(lua_State *L, Loop *lp);
void loop_register_ext(lua_State *L, int slot, LoopCloseHook close);

/* handle.c */
void handle_register(lua_State *L);
Handle *handle_new(lua_State *L, Loop *lp, int kind, int fnidx, int nargs);
void handle_run(lua_State *L, Loop *lp, Handle *h);
void handle_call_soon(lua_State *L, Loop *lp, int fnidx, int nargs);
void timer_push(lua_State *L, Loop *lp, Handle *h, int hidx);
void timers_due(lua_State *L, Loop *lp, double now);
void timers_clear(lua_State *L, Loop *lp);
double timers_next(Loop *lp, const Handle *skip);
void timer_shift(Loop *lp, Handle *h, double delta);
void handle_cancel(lua_State *L, Handle *h, int hidx);

/* watch.c */
void watch_register(lua_State *L);
void watch_cancel(lua_State *L, Handle *h);
int watch_checksig(lua_State *L, int idx);
int watch_checkfd(lua_State *L, int idx);
const char *watch_signame(int sig);

/* context.c */
void context_register(lua_State *L);
void context_push(lua_State *L, Mod *m);

/* ======== 3. Futures and tasks (future.c, task.c) ======================== */

enum { F_PENDING, F_FINISHED, F_CANCELLED };

/* States of a task's park, a wait with no Future of its own: P_PARKED
** while it waits, then P_WOKEN (task_unpark queued it, its value in
** TUV_WAIT) or P_CANCELLED (cancel() queued it, the message in TUV_MSG),
** until its continuation runs (task_unparked) and resets it to P_NONE. */
enum { P_NONE, P_PARKED, P_WOKEN, P_CANCELLED };

typedef struct Future {
  OBJ_HEAD;                      /* K_FUTURE or K_TASK */
  unsigned char state;
  unsigned char failed;          /* finished with an error */
  unsigned char retrieved;       /* the error was looked at */
  unsigned char reported;        /* "never retrieved" already reported */
  unsigned char hascb;           /* FUV_CB/FX_CBS may hold callbacks */
  int nres;                      /* number of result values */
  Task *awaiter;                 /* first task awaiting it (anchored) */
} Future;

/* Future user values. */
enum {
  FUV_VALUE = 1,   /* 1 result, or table of results, or error, or cancel msg */
  FUV_CB,          /* first done callback (function or waiting Task) */
  FUV_X,           /* the extras below (future_getx/setx), or nil */
  FUV_LOOP,        /* the loop userdata, kept alive */
  FUV_NUV = FUV_LOOP
};

/* The user values a future or task rarely has are those of a userdata of
** their own, the extras, made on first use: every task carries one slot
** for them instead of four. */
enum {
  FX_CBS = 1,      /* table of further callbacks */
  FX_TB,           /* traceback of the failure; in debug mode, until then,
                      the traceback of the creation */
  FX_NAME,         /* a task's name set by set_name */
  FX_CTX,          /* a task's context (table) of ContextVar values, once
                      a ContextVar was set */
  FX_NUV = FX_CTX
};

struct Task {
  Future f;
  lua_State *co;                 /* the coroutine, anchored in TUV_CORO */
  Future *waiting;               /* the future it awaits, or NULL */
  unsigned long id;              /* for the default name */
  int nargs0;                    /* arguments of the first resume */
  int ncancels;                  /* cancel() requests, for cancelling() */
  unsigned char started;         /* its first step ran */
  unsigned char must_cancel;     /* throw a cancellation in at the next step */
  unsigned char queued;          /* on the ready queue */
  unsigned char exposed;         /* get_coro was called: never recycle */
  unsigned char park;            /* P_*: a wait with no Future (task_park) */
  unsigned char raw;             /* suspended by a plain coroutine.yield */
  unsigned char kept;            /* the awaited future is in TUV_WAIT */
  unsigned long walk;            /* last task_cancel walk through it */
  const char *wait_what;         /* while parked: what on (a static name,
                                    for dump_tasks), cleanup_arg its object */
  void (*cleanup)(void *);       /* the park's ParkCleanup, or NULL */
  void *cleanup_arg;             /* and its argument */
};

/* Task user values, after the Future ones. */
enum {
  TUV_CORO = FUV_NUV + 1,  /* the Lua thread */
  TUV_WAIT,                /* the future awaited if t->kept, or the value
                              task_unpark handed to a parked task */
  TUV_NUV = TUV_WAIT
};
/* A pending task's cancel message waits where its results will go. */
#define TUV_MSG FUV_VALUE

/* future.c */
void future_register(lua_State *L);
Future *future_new(lua_State *L, Loop *lp, int kind, size_t size, int nuv);
Future *future_check(lua_State *L, int idx);
#define future_getx(L, fidx, x) lasync_getx(L, fidx, FUV_X, x)
#define future_setx(L, fidx, x) lasync_setx(L, fidx, FUV_X, x, FX_NUV)
void future_set_results(lua_State *L, Future *f, int fidx, int first, int n);
void future_set_error(lua_State *L, Future *f, int fidx, int erridx, int tbidx);
int future_cancel(lua_State *L, Future *f, int fidx, int msgidx);
int future_unpack(lua_State *L, Future *f, int fidx);
void future_add_callback(lua_State *L, Future *f, int fidx, int cbidx);
void future_add_awaiter(lua_State *L, Future *f, int fidx, Task *t,
                        int tidx);
void future_report_unretrieved(lua_State *L, Future *f, int fidx);
const char *future_state_name(Future *f);
int future_list_pending(lua_State *L, int objidx, int uv);
Future *future_list_push(lua_State *L, Loop *lp, int objidx, int uv);
void future_list_finish(lua_State *L, int objidx, int uv);

/* task.c */
void task_register(lua_State *L);
void task_step(lua_State *L, Loop *lp, Task *t);
void task_wakeup(lua_State *L, Task *t, int tidx, Future *f);
int task_cancel(lua_State *L, Task *t, int tidx, int msgidx);
Task *task_new(lua_State *L, Loop *lp, int fnidx, int nargs, int eager);

/* ======== 4. Waiting (task.c's await and park; waitlist.c, queue.c) ====== */

/* How a task waits (task.c; future.c for the lists of futures).
**
** A task waits in one of two ways; task.c's header has the states.
**
** 1. Await a Future: f:await() and task_suspend. The task registers as
** the future's first awaiter (Future.awaiter, no Lua value touched) or in
** its callback list, and t->waiting = f; the future is kept with the
** task, at the top of its own coroutine's suspended frame or in TUV_WAIT
** (t->kept; see await_on). Done, the future wakes it (task_wakeup: queued).
** Cancelled, the task cancels the future (task_cancel), which wakes it.
**
** task_suspend(L, t, ctx, k): the running task t (from task_running)
** awaits the pending future at the top of the stack, which stays there;
** k (with ctx) runs when it resumes. In k, with the future at fidx,
** task_wait_cancelled says whether a cancellation ended the wait (to
** clean up first), then task_resumed raises it or the future's error and
** pops the future; task_resumed_k is a k that does just that. For several
** tasks waiting on one object, future_list_push pushes a new future added
** to a list in user value uv of the object at objidx (one per task, so
** that cancelling one leaves the others waiting); future_list_finish
** finishes the pending ones and empties it; future_list_pending says
** whether one is pending.
**
** 2. Park, for every wait with no Future of its own (sleep, the queues
** and lasync.sync through core._park and WaitLists, every stream wait):
**
** task_park(L, t, cleanup, arg, ctx, k): the running task t parks: it
** suspends, registered nowhere but where its waker will find it (a Stream
** field, a WaitList; the loop anchors a pending task, so the pointer stays
** valid until k runs); k (with ctx) runs when it resumes. cleanup(arg),
** if not NULL, is run by a cancellation at once, before the task is
** queued: it takes the task off what would wake it, so that the waker's
** slot is free at once, and the events follow (C only, no Lua API); what
** needs Lua (closing a stream whose connect was cancelled) is left to k.
** NULL when k alone cleans up (sleep, WaitLists).
**
** task_unpark(L, t, tidx, validx): wakes the parked task t, queuing it as
** set_result queues a future's awaiter, with the value at validx (0: none;
** tidx, the task's index, is only read to store that value, and may be 0
** with none; L may then be NULL, from a libevent callback). Returns 0 and
** does nothing when t is not parked: already woken, cancelled, or waiting
** on something else; so a waker never has to ask first. A task parked by
** sleep(d > 0) is woken early (its timer is dropped). cancel() on a
** parked task queues it too, as cancelling the future it would await
** (task_cancel), and counts in cancelling().
**
** task_unparked(L, t, tidx, thrown, &woken), first thing in k: why it
** resumed, leaving t unparked. P_WOKEN: the value (or nil) is pushed.
** P_CANCELLED: the CancelledError is pushed, k cleans up and raises it;
** thrown is the stack index where the values the resume passed begin (a
** cancellation asked for after the wake-up, or before the park, is thrown
** in there). woken says whether a wake-up had been handed to it before
** the cancellation (asyncio's "done and not cancelled"), for k to pass it
** on to the next waiter as asyncio's queues and semaphores do. tidx may be
** 0 for a task never woken with a value: it need not be on the stack.
** task_current gives k its task when the waker's slot was emptied by the
** cleanup (stream.c: unparked).
**
** 3. Compatibility: a task may also suspend with a plain coroutine.yield()
** or coroutine.yield(future); its cancellation is then thrown in by a
** count hook (t->raw; task.c, "compatibility"). */
/* task.c: await and park */
Task *task_current(lua_State *L);
Task *task_running(lua_State *L, const char *what);
Task *task_running_as(lua_State *L, int nameidx, const char *def);
int task_suspend(lua_State *L, Task *t, lua_KContext ctx, lua_KFunction k);
int task_wait_cancelled(lua_State *L, int fidx);
void task_resumed(lua_State *L, int fidx);
int task_resumed_k(lua_State *L, int status, lua_KContext ctx);
typedef void (*ParkCleanup)(void *arg);
int task_park(lua_State *L, Task *t, const char *what, ParkCleanup cleanup,
              void *arg,
              lua_KContext ctx, lua_KFunction k);
int task_unpark(lua_State *L, Task *t, int tidx, int validx);
/* Resumed by a stray coroutine.resume, not a wake-up: task_unparked then
** raises, so a waiter list must drop the task first. */
int task_stray_resume(lua_State *L, Task *t, int thrown);
int task_unparked(lua_State *L, Task *t, int tidx, int thrown, int *woken);

/* waitlist.c: the lists of parked tasks (core._WaitList(), an object with
** methods in Lua), for C objects that park tasks (the Event, queue.c). The
** functions below are its methods in C. A WaitList holds its tasks in its
** user value; n counts them. waitlist_new pushes an empty one;
** waitlist_park / waitlist_resumed park the running task in the one at
** widx and clean up when it resumes; waitlist_unpark wakes up to n of them
** (they leave by themselves), waitlist_unpark_next takes them off the head
** until one is woken (pushed, 1 returned). */
typedef struct WaitList {
  OBJ_HEAD;                      /* K_WAITLIST; slot and loop unused */
  lua_Integer head, tail, n;
} WaitList;
void waitlist_register(lua_State *L);
int waitlist_new(lua_State *L);
int waitlist_park(lua_State *L, int widx, Task *t, const char *what,
                  lua_KFunction k);
int waitlist_resumed(lua_State *L, int widx, int tidx, int taken,
                     lua_KContext ctx, int *woken);
lua_Integer waitlist_unpark(lua_State *L, int widx, lua_Integer n);
int waitlist_unpark_next(lua_State *L, int widx);

/* queue.c */
void queue_register(lua_State *L);

/* ======== 5. I/O (addr, dns, stream, server, tls, http, websocket, process,
   datagram, subprocess.c) */

/* addr.c */
typedef struct Addr {
  struct sockaddr_storage ss;
  socklen_t len;
} Addr;
int addr_checkport(lua_State *L, int idx);
void addr_from_host(lua_State *L, int hidx, int pidx, Addr *a);
void addr_from_path(lua_State *L, int idx, Addr *a);
int addr_parse(const char *host, int port, Addr *a);
void addr_set_port(Addr *a, int port);
int addr_port(const Addr *a);
int addr_port_of(int fd);
int addr_push(lua_State *L, const Addr *a);
int addr_push_of(lua_State *L, int fd, int peer);

/* dns.c */
void dns_register(lua_State *L);

/* stream.c */
typedef struct Stream Stream;
/* A server's limits on each connection (0: none): the seconds one read
** call may take, the seconds output may wait without a byte sent, the
** bytes of output left unsent. */
typedef struct StreamLimits {
  float read_timeout, write_timeout;
  uint32_t max_buffer;
} StreamLimits;
void stream_register(lua_State *L);
Stream *stream_new(lua_State *L, Loop *lp, size_t limit);
void stream_attach(Stream *s, int fd, int accepted);
size_t stream_checklimit(lua_State *L, int idx);
void stream_close(lua_State *L, Stream *s, int sidx, int abort);
/* What the HTTP layer (http.c) reads and writes a stream with, so that
** it parses the input buffer in place. stream_check: the stream at idx (an
** argument error otherwise). stream_input: the buffered input, writable
** (the chunked decoder compacts in it); stream_consume drops its first n
** bytes, stream_cut keeps only its first len bytes. stream_wait_input parks
** the running task as the reader until want bytes are buffered, the input
** ends, the stream fails or the deadline (on loop time; 0: none) passes,
** then k runs with ctx; first thing there, stream_input_resumed(thrown)
** (the index where the resume's values begin) raises a cancellation, or
** returns whether the deadline passed. stream_ended: no more input will
** come (EOF, close, failure); stream_has_reader: a task waits in a
** read; stream_failed: the errno the connection failed with (0: none);
** stream_raise_failure raises its error, if any, as reads do. Writing:
** stream_check_writable raises as write() does after write_eof() or during
** a handshake; stream_buffer appends to the output (dropped as write()
** drops it once closing or failed); stream_reserve appends n bytes for
** the caller to fill (NULL when dropped so); stream_flush sends what the socket
** takes, stream_flush_soon leaves it to the write event (at the loop's
** next poll, with what is buffered by then). stream_push_peer pushes
** {host=, port=} of the peer (a Unix socket's: its path as host; {} once
** closed). */
Stream *stream_check(lua_State *L, int idx);
void stream_set_limits(Stream *s, const StreamLimits *lim);
char *stream_input(Stream *s, size_t *len);
void stream_consume(Stream *s, size_t n);
void stream_cut(Stream *s, size_t len);
int stream_push_wait_peer(lua_State *L, const Task *t);
int stream_wait_input(lua_State *L, Stream *s, size_t want, double deadline,
                      lua_KContext ctx, lua_KFunction k, const char *what);
int stream_input_resumed(lua_State *L, Stream *s, int thrown);
int stream_ended(const Stream *s);
int stream_has_reader(const Stream *s);
int stream_failed(const Stream *s);
void stream_raise_failure(lua_State *L, Stream *s);
void stream_check_writable(lua_State *L, Stream *s);
void stream_buffer(Stream *s, const char *p, size_t n);
char *stream_reserve(Stream *s, size_t n);
void stream_flush(Stream *s);
void stream_flush_soon(Stream *s);
void stream_push_peer(lua_State *L, Stream *s);
/* A connection parked without a task (server.c): the handle h, anchored
** by the caller, is queued once input comes, the input ends or fails, or
** the deadline (loop time; 0: none) passes; stream_park_timedout then
** tells which (and forgets it). */
void stream_park(Stream *s, Handle *h, double deadline);
int stream_park_timedout(Stream *s);

/* server.c */
void server_register(lua_State *L);
int server_checkbacklog(lua_State *L, int idx);
int server_bind(const Addr *a, int reuse_address, int reuse_port);

/* tls.c */
typedef struct Tls Tls;
typedef struct TlsCtx TlsCtx;
void tls_register(lua_State *L);
TlsCtx *tls_checkctx(lua_State *L, int idx, int server, const char *what);
const char *tls_checkopts(lua_State *L, int idx, const char *what,
                          double *timeout);
int tls_needs_host(TlsCtx *c);
Tls *tls_new(TlsCtx *c, int fd, int server, const char *host);
void tls_free(Tls *t);
int tls_preload(Tls *t, const char *p, size_t n);
int tls_handshake(Tls *t);
ssize_t tls_read(Tls *t, void *buf, size_t n);
ssize_t tls_write(Tls *t, const void *buf, size_t n);
void tls_shutdown(Tls *t);
void tls_set_timeout(Tls *t, double timeout);
double tls_timeout(const Tls *t, double *left);
int tls_wants_write(const Tls *t);
int tls_pending(const Tls *t);
void tls_push_error(lua_State *L, Tls *t);
int tls_push_info(lua_State *L, Tls *t, const char *name);

/* http.c: core._http, the HTTP/1.1 parser and serialisation. The parsing
** works on plain byte buffers (the fuzz harnesses of fuzz/ call it so):
** http_head_end finds the end of a head in p[0..len), going on from *off
** (0 at first, updated): its length, 0 when more bytes are needed, or -1
** with *why set on a bare LF, a NUL or an obsolete line folding.
** http_head_parse parses such a head (response != 0: a status line) into
** h, whose fields array has room for maxfields entries (a head of n bytes
** has fewer than n / 2): 0, or the status of the failure (400, 501, 505)
** with *why set. http_chunked_decode decodes a chunked body in place:
** p[0..*dec) is decoded, p[*dec..*len) is still raw; it decodes what it
** can, moves the raw rest down after the decoded bytes (*len updated) and
** returns 1 at the body's end (the rest then follows the body), 0 when it
** needs more input, -1 with *why on bad syntax. */
typedef struct HttpField { uint32_t name, nlen, value, vlen; } HttpField;
typedef struct HttpHead {
  const char *p;                 /* the head's bytes, offsets are into it */
  HttpField *fields;
  uint32_t nfields, maxfields;
  uint32_t target, tlen;         /* request target, or reason phrase */
  int status;                    /* a response's status code */
  int64_t length;                /* Content-Length, or -1 */
  unsigned char response, method, major, minor;
  unsigned char chunked, keep_alive, expect_continue;
  unsigned char last_value;      /* the parser's last callback: a value */
} HttpHead;
typedef struct HttpChunked {
  uint64_t left;                 /* bytes left in the current chunk */
  uint32_t trailer;              /* bytes of trailer section so far */
  unsigned char state;
} HttpChunked;
long http_head_end(const char *p, size_t len, size_t *off, const char **why);
int http_head_parse(HttpHead *h, int response, const char *p, size_t n,
                    const char **why);
int http_chunked_decode(HttpChunked *c, char *p, size_t *len, size_t *dec,
                        const char **why);
void http_register(lua_State *L);

/* websocket.c: core._ws, RFC 6455 framing. ws_next parses the frames at
** p[w->dec..*len) in place: the message in progress is p[0..w->dec),
** unmasked. It returns the event it stops at (e->kind): WS_MORE (e->want:
** the input length needed), a message WS_TEXT / WS_BINARY at
** p[e->off..+e->n), the first e->used bytes of p to drop after it; a
** control frame WS_PING / WS_PONG / WS_CLOSE (e->code, the reason at
** p[e->off..+e->n)) whose e->used bytes at p + w->dec are to be cut out;
** or WS_ERROR, e->code the close code due (1002, 1007, 1009), e->why; with
** e->go_on the framing is intact and parsing may go on once the first
** e->used bytes are dropped (a message refused: 1007, 1009, whose bytes
** still to come the parser drops). A data frame fragment is moved down
** in place (*len shrinks by its head). */
typedef struct WsParser {
  uint64_t max;                  /* max_message_size */
  uint64_t dec;                  /* bytes of the message so far */
  uint64_t skip;                 /* bytes still to come of a dropped one */
  unsigned char opcode;          /* of the message in progress, or 0 */
  unsigned char masked;          /* frames come masked (a server's input) */
  unsigned char dropping;        /* its further fragments are dropped */
} WsParser;
enum { WS_MORE, WS_TEXT, WS_BINARY, WS_PING, WS_PONG, WS_CLOSE, WS_ERROR };
typedef struct WsEvent {
  int kind, code;
  int go_on;                     /* WS_ERROR: the input can still be read */
  size_t off, n, used, want;
  const char *why;
} WsEvent;
int ws_next(WsParser *w, unsigned char *p, size_t *len, WsEvent *e);
int ws_utf8_valid(const unsigned char *p, size_t n);
void websocket_register(lua_State *L);

/* resp.c: RESP2 request framing (redis). resp_scan frames the command at
** the front of p[0..len): its length, with r->argc arguments, each passed
** to r->each (when set) in order, pointing into p; 0 when it is not all
** there (r->want: the input length needed next); -1 on a protocol error,
** r->why redis's text (a format taking the byte r->at). A command of no
** arguments ("*0", an empty line) is framed with argc 0. resp_readresp is
** reader:readresp. */
typedef struct RespScan {
  size_t argc, want;
  const char *why;
  int at;
  void (*each)(void *ud, const char *p, size_t n);
  void *ud;
} RespScan;
long resp_scan(const char *p, size_t len, RespScan *r);
int resp_readresp(lua_State *L);
void resp_register(lua_State *L);  /* core.resp_encode */

/* process.c */
void process_register(lua_State *L);

/* datagram.c: UDP endpoints (core.datagram_open) */
void datagram_register(lua_State *L);

/* socket.c: LuaSocket's receive over streams (lasync.socket). */
void socket_register(lua_State *L);
const char *sock_strerror(int err);
/* subprocess.c: core._spawn and its Child (pidfd, reap, send_signal) */
void subprocess_register(lua_State *L);
/* thread.c: lasync.to_thread and its pool of worker threads (per loop) */
void thread_register(lua_State *L);

#endif
