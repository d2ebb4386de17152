/*
** Tasks: a Future driven by a Lua coroutine (asyncio's Task; task_step is
** its __step, task_wakeup its __wakeup).
**
** States. t->f.state is the Future's: F_PENDING until the coroutine ends,
** then F_FINISHED (a result or an error) or F_CANCELLED, never to change
** again. A pending task is anchored by its loop and is in exactly one of
** these places:
**
**   place     fields that say so         left by
**   --------  -------------------------  --------------------------------
**   queued    queued (once in the ready  task_step: running
**             queue; new tasks, !started)
**   running   loop->current == t         a yield or the end (task_step
**                                        sorts it: below)
**   awaiting  waiting = f, f pending;    f done: task_wakeup lets go of f
**             f->awaiter or f's callback  and queues it; cancel(): f is
**             list holds t; kept: f is   cancelled (a task: the walk goes
**             in TUV_WAIT, else at the   on into it)
**             top of co (see await_on)
**   parked    park == P_PARKED; cleanup  task_unpark: P_WOKEN, value in
**             (a wait with no Future)    TUV_WAIT, queued; cancel(): the
**                                        cleanup runs, P_CANCELLED, msg in
**                                        TUV_MSG, queued
**
** P_WOKEN / P_CANCELLED are queued parks whose continuation has not run:
** task_unparked, first thing in it, turns them into its result and resets
** park to P_NONE.
**
** The step (task_step) resumes co: the first time with its nargs0
** arguments; with must_cancel set, with CANCEL_KEY and the CancelledError
** (thrown by the continuation; after a raw yield, by a count hook), or, if
** it never started, it ends cancelled without running. Then it sorts what
** the coroutine did:
**   yielded SUSPEND_KEY          gave way (queued again) or awaits (the
**                                await registered itself: nothing to do)
**   yielded SUSPEND_KEY PARK_KEY parks (step_parked; a park caught by a
**                                foreign coroutine so leaves no trace)
**   returned                     F_FINISHED with the results, or, if
**                                must_cancel, F_CANCELLED
**   raised                       F_CANCELLED for a CancelledError, else
**                                F_FINISHED with the error
**   yielded anything else (raw)  nothing: gives way; a Future: awaits it;
**                                else fails (the compatibility path below)
**
** Cancellation (task_cancel, asyncio's cancel()): counts the request
** (ncancels, for cancelling/uncancel) and walks down what the task waits
** on, marking each task with the walk's number (walk) so that a cycle of
** awaits ends the walk: a plain future awaited is cancelled, a park is
** cancelled (cleanup first), a task awaited is walked into; the last task
** of the walk, running, queued or new, gets must_cancel: the cancellation
** is thrown in at its next step. uncancel() down to 0 clears must_cancel.
**
** Other fields: exposed (get_coro gave the coroutine away: it is never
** reused), raw (the last suspension was a plain coroutine.yield), id (the
** default name).
*/
#include <string.h>
#include "lasync.h"

/* The task being stepped on the running loop, or NULL: in the
** continuation of a wait, the task that waited (unless a stray
** coroutine.resume resumed it). */
Task *task_current(lua_State *L) {
  Mod *m = lasync_mod(L);
  return m->running ? m->running->current : NULL;
}

/* The coroutines lasync.coroutine drives (a weak set it gives once). */
static const char driven_key = 0;

static int driven(lua_State *L) {
  int yes = 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &driven_key) == LUA_TTABLE) {
    lua_pushthread(L);
    yes = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return yes;
}

/* Why the running task t cannot suspend from here (a format for the name
** of the call), or NULL. Not outside a task, nor across a C function; and
** from a coroutine of its own, the suspension must be passed on to t,
** which only lasync.coroutine does: in a plain one it would come back as
** a yield, the wait left registered. */
static const char *cannot_suspend(lua_State *L, Task *t) {
  if (t == NULL) return "%s called outside a task";
  if (!lua_isyieldable(L))
    return "%s cannot suspend the task here: a C function (such as "
           "table.sort or tostring) is in the way";
  if (L != t->co && !driven(L))
    return "%s cannot suspend the task from this coroutine: a coroutine "
           "whose code waits must be driven by lasync.coroutine";
  return NULL;
}

static void check_yieldable(lua_State *L, Task *t, const char *what) {
  const char *why = cannot_suspend(L, t);
  if (why) luaL_error(L, why, what);
}

static Task *check_in_task(lua_State *L, const char *what) {
  Task *t = task_current(L);
  check_yieldable(L, t, what);
  return t;
}

/* core._set_driven(set): the weak set of lasync.coroutine's coroutines. */
static int l_set_driven(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &driven_key);
  return 0;
}

/* If the resume passed CANCEL_KEY at idx, raise the error after it. */
static void raise_thrown(lua_State *L, int idx) {
  if (lua_touserdata(L, idx) == CANCEL_KEY) {
    lua_settop(L, idx + 1);
    lua_error(L);
  }
}

/* A wait resumed by no wake-up of the task, but by a coroutine.resume
** the suspension went to by mistake. */
static int foreign_resume(lua_State *L) {
  return luaL_error(L, "a wait of this task was resumed by "
                    "coroutine.resume: a coroutine whose code waits must be "
                    "driven by lasync.coroutine");
}

/* raise_thrown for a wait on the future f at fidx (thrown after it),
** which must be done. */
static Future *await_resumed(lua_State *L, int fidx) {
  Future *f = lua_touserdata(L, fidx);
  raise_thrown(L, fidx + 1);
  if (f->state == F_PENDING) foreign_resume(L);
  return f;
}

/* ---------- await and sleep: the suspension primitives ---------- */

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return future_unpack(L, await_resumed(L, 1), 1);
}

static void wait_on(lua_State *L, Task *t, int tidx, int fidx);

/* The running task t awaits the pending future f at the top of L. From
** its own coroutine the future stays where it is, at the top of the frame
** that suspends, where a cancellation finds it (push_awaited): keeping it
** in TUV_WAIT instead costs two pushes of the task and two user value
** writes per await, +594 instructions per handoff (2,779 -> 3,373,
** bench/icount.sh). From a driven coroutine, a second awaiter or a task
** with a cancellation due it is kept in TUV_WAIT (t->kept). */
static void await_on(lua_State *L, Task *t, Future *f) {
  if (f->loop != t->f.loop)
    luaL_error(L, "task awaited a future of another loop");
  if (f == &t->f) luaL_error(L, "a task cannot await itself");
  if (L != t->co || t->must_cancel || f->awaiter) {
    int fidx = lua_gettop(L);
    loop_push_anchored(L, t->f.loop, t);
    wait_on(L, t, fidx + 1, fidx);
    lua_pop(L, 1);
    return;
  }
  f->awaiter = t;
  t->waiting = f;
}

/* The running task, for a C function about to suspend it (raises outside
** a task or where it cannot yield, naming what). */
Task *task_running(lua_State *L, const char *what) {
  return check_in_task(L, what);
}

/* task_running for a call named by the string at nameidx (default def),
** which is read only to raise. */
Task *task_running_as(lua_State *L, int nameidx, const char *def) {
  Task *t = task_current(L);
  const char *why = cannot_suspend(L, t);
  if (why) luaL_error(L, why, luaL_optstring(L, nameidx, def));
  return t;
}

/* Suspend the running task t on the pending future at the top of the
** stack, which stays there; k (with ctx) runs when the task resumes and
** first calls task_resumed. For C functions that wait and then look
** again. */
int task_suspend(lua_State *L, Task *t, lua_KContext ctx, lua_KFunction k) {
  await_on(L, t, lua_touserdata(L, -1));
  lua_pushlightuserdata(L, SUSPEND_KEY);
  return lua_yieldk(L, 1, ctx, k);
}

/* In the continuation of task_suspend: is the task being cancelled (the
** next task_resumed raises)? For the cleanup to come first. */
int task_wait_cancelled(lua_State *L, int fidx) {
  return lua_gettop(L) > fidx ||
         ((Future *)lua_touserdata(L, fidx))->state == F_CANCELLED;
}

/* In the continuation of task_suspend: raise a thrown cancellation, or the
** error of the future at fidx; else pop the future. */
void task_resumed(lua_State *L, int fidx) {
  future_unpack(L, await_resumed(L, fidx), fidx);
  lua_settop(L, fidx - 1);
}

/* A continuation for a wait with nothing to do after it: task_resumed for
** the future at ctx, no results. */
int task_resumed_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  task_resumed(L, (int)ctx);
  return 0;
}

/* ---------- park: waiting with no Future ---------- */

static const char park_key;
#define PARK_KEY ((void *)&park_key)

static void queue(Task *t);

/* Suspend the running task t until task_unpark or a cancellation queues
** it; k (with ctx) then runs and calls task_unparked. A cancellation runs
** cleanup(arg) first, if not NULL. The step marks it parked when it sees
** the yield (step_parked). */
int task_park(lua_State *L, Task *t, const char *what, ParkCleanup cleanup,
              void *arg, lua_KContext ctx, lua_KFunction k) {
  t->wait_what = what;
  t->cleanup = cleanup;
  t->cleanup_arg = arg;
  lua_pushlightuserdata(L, SUSPEND_KEY);
  lua_pushlightuserdata(L, PARK_KEY);
  return lua_yieldk(L, 2, ctx, k);
}

/* Wake the parked task t (at tidx) with the value at validx (0: none);
** 0 if it was not parked. */
int task_unpark(lua_State *L, Task *t, int tidx, int validx) {
  if (t->park != P_PARKED) return 0;
  t->park = P_WOKEN;
  if (validx) {
    lua_pushvalue(L, validx);
    lua_setiuservalue(L, tidx, TUV_WAIT);
  }
  queue(t);
  return 1;
}

/* In the continuation of a park: was the task resumed by no wake-up but
** by a stray coroutine.resume? task_unparked then raises. */
int task_stray_resume(lua_State *L, Task *t, int thrown) {
  return (t->park == P_NONE || t->park == P_PARKED) &&
         lua_touserdata(L, thrown) != CANCEL_KEY;
}

/* The task t pushed where the stack does not hold it (tidx 0): its index. */
static int task_at(lua_State *L, Task *t, int tidx) {
  if (tidx) return tidx;
  loop_push_anchored(L, t->f.loop, t);
  return lua_gettop(L);
}

/* In the continuation of a park: push the value it was woken with (or
** nil) and return P_WOKEN, or push the CancelledError and return
** P_CANCELLED. thrown: where the values the resume passed begin; tidx:
** the task, or 0 when it is not on the stack (a task woken with no value:
** the usual case then touches none of its user values). */
int task_unparked(lua_State *L, Task *t, int tidx, int thrown, int *woken) {
  int st = t->park, stray = task_stray_resume(L, t, thrown);
  t->park = P_NONE;
  t->cleanup = NULL;
  if (stray) {
    /* t itself still waits for the step that stray resume took: it goes
    ** on, to find what it forwarded to gone */
    if (st == P_PARKED && !t->queued) queue(t);
    foreign_resume(L);
  }
  *woken = st == P_WOKEN;
  if (lua_touserdata(L, thrown) == CANCEL_KEY) {
    lua_pushvalue(L, thrown + 1);
    if (st == P_WOKEN && tidx) {
      lua_pushnil(L);
      lua_setiuservalue(L, tidx, TUV_WAIT);
    }
    return P_CANCELLED;
  }
  if (st == P_CANCELLED) {
    int at = task_at(L, t, tidx);
    lua_getiuservalue(L, at, TUV_MSG);
    errors_push_newv(L, "CancelledError", -1);
    lua_remove(L, -2);
    lua_pushnil(L);
    lua_setiuservalue(L, at, TUV_MSG);
    if (at != tidx) lua_remove(L, at);
    return P_CANCELLED;
  }
  if (tidx == 0) {
    lua_pushnil(L);
    return P_WOKEN;
  }
  if (lua_getiuservalue(L, tidx, TUV_WAIT) != LUA_TNIL) {
    lua_pushnil(L);
    lua_setiuservalue(L, tidx, TUV_WAIT);
  }
  return P_WOKEN;
}

/* core._park(task): stack is the task, then what the resume passed. */
static int park_k(lua_State *L, int status, lua_KContext ctx) {
  int woken;
  (void)status; (void)ctx;
  if (task_unparked(L, lua_touserdata(L, 1), 1, 2, &woken) == P_WOKEN) {
    lua_pushboolean(L, 1);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  lua_pushboolean(L, woken);
  return 3;
}

/* core._park(task): task is the running task; it suspends until
** core._unpark(task, value), returning true, value; or until it is
** cancelled, returning false, the CancelledError and whether a wake-up
** had been handed to it first. It never raises a cancellation: the caller
** cleans up, then raises it. */
static int l_park(lua_State *L) {
  Task *t = check_in_task(L, "park");
  if (lua_touserdata(L, 1) != t)
    return luaL_argerror(L, 1, "the running task expected");
  lua_settop(L, 1);
  return task_park(L, t, "park", NULL, NULL, 0, park_k);
}

/* core._unpark(task, value): wakes the parked task with value; false when
** it was not parked (already woken or cancelled). */
static int l_unpark(lua_State *L) {
  Task *t = lasync_checkobj(L, 1, K_TASK, "task");
  lua_pushboolean(L, task_unpark(L, t, 1, lua_gettop(L) >= 2 ? 2 : 0));
  return 1;
}

/* core._park_state(task): "parked", "woken" (not run yet), "cancelled"
** (not run yet), or nil. */
static int l_park_state(lua_State *L) {
  static const char *const names[] = {NULL, "parked", "woken", "cancelled"};
  Task *t = lasync_checkobj(L, 1, K_TASK, "task");
  if (t->park == P_NONE) return 0;
  lua_pushstring(L, names[t->park]);
  return 1;
}

/* core._task_wait(task), for dump_tasks: what a pending task waits on.
** Parked: its name ("sleep", "read", "queue get", ...) then details (a
** sleep's time left; a stream's peer address). Awaiting a future:
** "future" and the future when it can be pushed (a task, or one kept).
** Else nothing. */
static int l_task_wait(lua_State *L) {
  Task *t = lasync_checkobj(L, 1, K_TASK, "task");
  if (t->park == P_PARKED) {
    lua_pushstring(L, t->wait_what);
    if (strcmp(t->wait_what, "sleep") == 0) {
      const Handle *h = t->cleanup_arg;
      lua_pushnumber(L, h->when - loop_time(t->f.loop));
      return 2;
    }
    return 1 + stream_push_wait_peer(L, t);
  }
  if (t->park != P_NONE || !t->waiting) return 0;
  lua_pushliteral(L, "future");
  if (t->waiting->kind == K_TASK)
    loop_push_anchored(L, t->f.loop, t->waiting);
  else if (t->kept)
    lua_getiuservalue(L, 1, TUV_WAIT);
  else return 1;
  return 2;
}

/* f:await() / lasync.await(f): the future's results, or its error. */
static int l_await(lua_State *L) {
  Future *f = future_check(L, 1);
  Task *t = task_current(L);
  /* a done future needs no suspension, so a C function in the way is fine */
  if (t && f->state != F_PENDING) return future_unpack(L, f, 1);
  check_yieldable(L, t, "await");
  lua_settop(L, 1);
  await_on(L, t, f);
  lua_pushlightuserdata(L, SUSPEND_KEY);
  return lua_yieldk(L, 1, 0, await_k);
}

/* sleep(0): stack is delay, extra values...; ctx is that count. */
static int sleep0_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  raise_thrown(L, (int)ctx + 1);
  lua_settop(L, (int)ctx);
  return (int)ctx - 1;
}

/* What the timer of sleep wakes the task with. */
static const char sleep_key;
#define SLEEP_KEY ((void *)&sleep_key)

/* sleep(d > 0), parked: stack is delay, extra values... (ctx: their
** count), the task, the timer handle, what the resume passed. */
static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  int n = (int)ctx, woken;
  int st = task_unparked(L, lua_touserdata(L, n + 1), n + 1, n + 3, &woken);
  (void)status;
  if (st != P_WOKEN || lua_touserdata(L, -1) != SLEEP_KEY)
    handle_cancel(L, lua_touserdata(L, n + 2), n + 2);  /* drop it at once */
  if (st != P_WOKEN) return lua_error(L);
  lua_settop(L, n);
  return n - 1;
}

/* The timer callback of sleep: the task. */
static int sleep_cb(lua_State *L) {
  lua_pushlightuserdata(L, SLEEP_KEY);
  task_unpark(L, lua_touserdata(L, 1), 1, 2);
  return 0;
}

/* lasync.sleep(delay, ...): suspends for delay seconds, returns the extra
** values. sleep(0) (or less) gives way for one loop iteration. A longer
** sleep parks the task (no Future) until its timer unparks it. */
static int l_sleep(lua_State *L) {
  double d = luaL_checknumber(L, 1);
  int n = lua_gettop(L);
  Loop *lp;
  Handle *h;
  Task *t;
  luaL_argcheck(L, d == d, 1, "number other than NaN expected");
  t = check_in_task(L, "sleep");
  if (d <= 0) {
    lua_pushlightuserdata(L, SUSPEND_KEY);
    return lua_yieldk(L, 1, n, sleep0_k);
  }
  lp = lasync_mod(L)->running;
  loop_push_anchored(L, lp, t);
  lua_getiuservalue(L, lua_upvalueindex(1), MUV_SLEEPCB);
  lua_pushvalue(L, n + 1);
  h = handle_new(L, lp, K_TIMER, n + 2, 1);
  h->when = loop_time(lp) + d;
  timer_push(L, lp, h, -1);
  lua_replace(L, n + 2);
  lua_settop(L, n + 2);
  return task_park(L, t, "sleep", NULL, h, n, sleep_k);
}

/* ---------- the step ---------- */

static void queue(Task *t) {
  t->queued = 1;
  loop_ready_push(t->f.loop, t);
}

/* The task t (at tidx, or 0 when not on the stack) no longer awaits a
** future: it lets go of it. */
static void stop_awaiting(lua_State *L, Task *t, int tidx) {
  t->waiting = NULL;
  if (t->kept) {
    int at = task_at(L, t, tidx ? lua_absindex(L, tidx) : 0);
    t->kept = 0;
    lua_pushnil(L);
    lua_setiuservalue(L, at, TUV_WAIT);
    if (tidx == 0) lua_pop(L, 1);
  }
}

/* The future f is done: the task t (at tidx, or 0) goes on if it still
** awaits it. */
void task_wakeup(lua_State *L, Task *t, int tidx, Future *f) {
  if (t->waiting != f || t->queued) return;
  stop_awaiting(L, t, tidx);
  queue(t);
}

/* The task is done: the loop lets go of it. */
static void finished(lua_State *L, Task *t, int tidx) {
  lua_pushnil(L);
  lua_setiuservalue(L, tidx, TUV_WAIT);
  loop_unanchor(L, t->f.loop, t);
}

/* Close the coroutine, running its pending <close> variables, and empty
** it: it is then dead and holds no error value. erridx (or 0) is the error
** it died of, which they receive; if one of them raises, its error
** replaces the task's outcome, as coroutine.close reports it: then it is
** pushed and 1 returned. */
static int close_coro(lua_State *L, Task *t, int erridx) {
  int replaced = 0;
  if (erridx) {  /* closing passes on the value at the thread's top */
    lua_pushvalue(L, erridx);
    lua_xmove(L, t->co, 1);
  }
  if (lua_closethread(t->co, L) != LUA_OK) {
    lua_xmove(t->co, L, 1);
    if (erridx && lua_rawequal(L, -1, erridx)) lua_pop(L, 1);
    else replaced = 1;
  }
  lua_settop(t->co, 0);
  return replaced;
}

static void set_failed(lua_State *L, Task *t, int tidx, int erridx) {
  const char *msg = lua_type(L, erridx) == LUA_TSTRING
                    ? lua_tostring(L, erridx) : NULL;
  luaL_traceback(L, t->co, msg, 0);
  if (close_coro(L, t, erridx)) {  /* a <close> raised: its error wins */
    future_set_error(L, &t->f, tidx, -1, 0);
    lua_pop(L, 1);
  } else future_set_error(L, &t->f, tidx, erridx, -1);
  lua_pop(L, 1);
}

/* Cancelled (erridx: the CancelledError it died of, or 0). */
static void end_cancelled(lua_State *L, Task *t, int tidx, int msgidx,
                          int erridx) {
  msgidx = lua_absindex(L, msgidx);
  if (close_coro(L, t, erridx)) {
    future_set_error(L, &t->f, tidx, -1, 0);
    lua_pop(L, 1);
  } else future_cancel(L, &t->f, tidx, msgidx);
  finished(L, t, tidx);
}

/* Fail with the error at erridx; its traceback is taken from the
** coroutine before it is closed. */
static void end_failed(lua_State *L, Task *t, int tidx, int erridx) {
  set_failed(L, t, tidx, lua_absindex(L, erridx));
  finished(L, t, tidx);
}

static void end_bad(lua_State *L, Task *t, int tidx, const char *fmt,
                    const char *arg) {
  lua_pushfstring(L, fmt, arg);
  end_failed(L, t, tidx, lua_gettop(L));
  lua_pop(L, 1);
}

static int cancel_any(lua_State *L, Future *f, int fidx, int msgidx) {
  if (f->kind == K_TASK) return task_cancel(L, (Task *)f, fidx, msgidx);
  return future_cancel(L, f, fidx, msgidx);
}

/* The coroutine yielded the future at fidx. */
static void wait_on(lua_State *L, Task *t, int tidx, int fidx) {
  Future *f = lua_touserdata(L, fidx);
  if (f->loop != t->f.loop)
    end_bad(L, t, tidx, "task awaited a future of another loop%s", "");
  else if (f == &t->f)
    end_bad(L, t, tidx, "task cannot await itself%s", "");
  else if (f->state != F_PENDING)
    queue(t);
  else {
    future_add_awaiter(L, f, fidx, t, tidx);
    t->waiting = f;
    t->kept = 1;
    lua_pushvalue(L, fidx);
    lua_setiuservalue(L, tidx, TUV_WAIT);
    if (t->must_cancel) {  /* a raw waiter still needs the throw */
      lua_getiuservalue(L, tidx, TUV_MSG);
      if (cancel_any(L, f, fidx, -1) && !t->raw) t->must_cancel = 0;
      lua_pop(L, 1);
    }
  }
}

/* The coroutine yielded the nres values now at the top of L. */
static void on_yield(lua_State *L, Task *t, int tidx, int nres) {
  int base = lua_gettop(L) - nres + 1;
  if (nres > 0 && lua_touserdata(L, base) == SUSPEND_KEY) {
    base++;
    nres--;
  } else t->raw = 1;
  if (nres == 0)
    queue(t);  /* gives way for one iteration */
  else if (nres == 1 && lasync_toobj(L, base, K_FUTURE))
    wait_on(L, t, tidx, base);
  else
    end_bad(L, t, tidx, "task yielded an unexpected value (%s): yield a "
            "Future to wait on it, or nothing to give way",
            luaL_typename(L, base));
}

/* A coroutine that returned is empty and can run the next task: spawning
** then costs no new thread. Only threads nobody else has seen are reused. */
#define POOL_MAX 256

static void recycle(lua_State *L, Task *t, int tidx) {
  Loop *lp = t->f.loop;
  if (t->exposed || lp->npool >= POOL_MAX) return;
  loop_push_pool(L, lp);
  lua_getiuservalue(L, tidx, TUV_CORO);
  lua_rawseti(L, -2, ++lp->npool);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setiuservalue(L, tidx, TUV_CORO);
  t->co = NULL;
}

static lua_State *new_thread(lua_State *L, Loop *lp) {
  lua_State *co;
  if (lp->npool == 0) return lua_newthread(L);
  loop_push_pool(L, lp);
  lua_rawgeti(L, -1, lp->npool);
  lua_pushnil(L);
  lua_rawseti(L, -3, lp->npool--);
  lua_remove(L, -2);
  co = lua_tothread(L, -1);
  return co;
}

static void on_return(lua_State *L, Task *t, int tidx, int nres) {
  if (t->must_cancel) {
    t->must_cancel = 0;
    lua_getiuservalue(L, tidx, TUV_MSG);
    end_cancelled(L, t, tidx, -1, 0);
    return;
  }
  future_set_results(L, &t->f, tidx, lua_gettop(L) - nres + 1, nres);
  recycle(L, t, tidx);
  finished(L, t, tidx);
}

static void on_error(lua_State *L, Task *t, int tidx) {
  int err = lua_gettop(L);
  if (errors_is_cancelled(L, t->f.loop->mod, err)) {
    lua_getfield(L, err, "message");
    end_cancelled(L, t, tidx, -1, err);
  } else end_failed(L, t, tidx, err);
}

/* ---------- compatibility: a plain coroutine.yield ----------
**
** A task may suspend with a plain coroutine.yield() (to give way) or
** coroutine.yield(future) (to await it), as code written before lasync's
** own await does. No continuation of lasync's then runs at the resume, so
** a cancellation cannot be raised by one: on_yield sets t->raw, the
** cancellation of a raw wait always leaves must_cancel set (task_cancel,
** wait_on), and the step throws it with the count hook below. Nothing
** else looks at t->raw; new code waits with await or a park. */

/* A plain coroutine.yield has no continuation to raise what the task is
** resumed with: a count hook raises it at the first instruction after
** the yield. It keeps the thread's own hook, put back first, and the
** error, in registry[thread]. */
typedef struct Throw {
  lua_Hook hook;
  int mask, count;
} Throw;

static void throw_hook(lua_State *co, lua_Debug *ar) {
  Throw *th;
  (void)ar;
  lua_rawgetp(co, LUA_REGISTRYINDEX, co);
  th = lua_touserdata(co, -1);
  lua_sethook(co, th->hook, th->mask, th->count);
  lua_getiuservalue(co, -1, 1);
  lua_pushnil(co);
  lua_rawsetp(co, LUA_REGISTRYINDEX, co);
  lua_error(co);
}

/* Arm throw_hook on co with the error at the top of L (popped). */
static void arm_throw(lua_State *L, lua_State *co) {
  Throw *th = lua_newuserdatauv(L, sizeof *th, 1);
  th->hook = lua_gethook(co);
  th->mask = lua_gethookmask(co);
  th->count = lua_gethookcount(co);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, co);
  lua_sethook(co, throw_hook, LUA_MASKCOUNT, 1);
}

/* After the resume: a throw the coroutine ran no Lua code to meet (it
** returned or yielded from C) is put off to the next step. */
static void disarm_throw(lua_State *L, Task *t) {
  Throw *th;
  if (lua_gethook(t->co) != throw_hook) return;
  lua_rawgetp(L, LUA_REGISTRYINDEX, t->co);
  th = lua_touserdata(L, -1);
  lua_sethook(t->co, th->hook, th->mask, th->count);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, t->co);
  t->must_cancel = 1;
}

/* Push the arguments that throw the cancellation into the coroutine (none
** after a plain yield: arm_throw). */
static int push_throw(lua_State *L, Task *t, int tidx) {
  lua_getiuservalue(L, tidx, TUV_MSG);
  errors_push_newv(L, "CancelledError", -1);
  lua_remove(L, -2);
  if (t->raw) {
    arm_throw(L, t->co);
    return 0;
  }
  lua_pushlightuserdata(t->co, CANCEL_KEY);
  lua_xmove(L, t->co, 1);
  return 2;
}

/* After the resume: push the task and sort what the coroutine did. */
static void step_done(lua_State *L, Task *t, int st, int nres) {
  int tidx = lua_gettop(L) + 1;
  loop_push_anchored(L, t->f.loop, t);
  if (st != LUA_YIELD && st != LUA_OK) nres = 1;
  if (!lua_checkstack(L, nres + LUA_MINSTACK)) {  /* no room to take them */
    lua_pop(t->co, nres);
    end_bad(L, t, tidx, "task %s too many values",
            st == LUA_YIELD ? "yielded" : "returned");
    lua_settop(L, tidx - 1);
    return;
  }
  lua_xmove(t->co, L, nres);
  if (st == LUA_YIELD) on_yield(L, t, tidx, nres);
  else if (st == LUA_OK) on_return(L, t, tidx, nres);
  else on_error(L, t, tidx);
  lua_settop(L, tidx - 1);
}

/* Before the resume, a pending cancellation: returns the number of values
** that throw it, or -1 when the task never started and is now done. */
static int step_cancel(lua_State *L, Task *t) {
  int tidx = lua_gettop(L) + 1, nargs = -1;
  loop_push_anchored(L, t->f.loop, t);
  t->must_cancel = 0;
  if (!t->started) {  /* cancelled before it ran: never runs */
    lua_getiuservalue(L, tidx, TUV_MSG);
    end_cancelled(L, t, tidx, -1, 0);
  } else nargs = push_throw(L, t, tidx);
  lua_settop(L, tidx - 1);
  return nargs;
}

/* The task parked; a cancellation asked for while it ran is thrown in at
** its next step. */
static void step_parked(Task *t) {
  if (t->must_cancel || t->queued) {
    if (!t->queued) queue(t);
  } else t->park = P_PARKED;
}

/* Step the task (not on the stack). Giving way, the path of sleep(0),
** touches neither the task's userdata nor the stack of L. */
void task_step(lua_State *L, Loop *lp, Task *t) {
  int nargs = 0, nres, st, raw = t->raw;
  Task *prev = lp->current;
  if (t->f.state != F_PENDING) return;
  if (t->must_cancel) {
    if ((nargs = step_cancel(L, t)) < 0) return;
  } else if (!t->started) nargs = t->nargs0;
  t->started = 1;
  t->raw = 0;  /* on_yield tells for the next suspension */
  lp->current = t;
  st = lua_resume(t->co, L, nargs, &nres);
  lp->current = prev;
  if (raw) disarm_throw(L, t);
  if (st == LUA_YIELD && nres == 1 &&
      lua_touserdata(t->co, -1) == SUSPEND_KEY) {
    lua_pop(t->co, 1);  /* gave way, or await registered its wait */
    if (!t->waiting && !t->queued) queue(t);
  } else if (st == LUA_YIELD && nres == 2 &&
             lua_touserdata(t->co, -1) == PARK_KEY &&
             lua_touserdata(t->co, -2) == SUSPEND_KEY) {
    lua_pop(t->co, 2);
    step_parked(t);
  } else step_done(L, t, st, nres);
}

/* ---------- creation and cancellation ---------- */

/* Push a new task running the function at fnidx with the nargs values
** after it; it is anchored and its first step is queued, unless eager:
** then the caller steps it at once (task_step). */
Task *task_new(lua_State *L, Loop *lp, int fnidx, int nargs, int eager) {
  Task *t;
  int tidx, i;
  luaL_checkstack(L, nargs + 4, "too many arguments");
  t = (Task *)future_new(L, lp, K_TASK, sizeof(Task), TUV_NUV);
  tidx = lua_gettop(L);
  t->co = new_thread(L, lp);
  /* a thread, new or emptied, has room for LUA_MINSTACK values */
  if (nargs >= LUA_MINSTACK && !lua_checkstack(t->co, nargs + 1))
    luaL_error(L, "too many arguments for a task (%d)", nargs);
  lua_setiuservalue(L, tidx, TUV_CORO);
  for (i = 0; i <= nargs; i++) lua_pushvalue(L, fnidx + i);
  lua_xmove(L, t->co, nargs + 1);
  t->nargs0 = nargs;
  t->id = ++lp->mod->task_seq;
  if (lp->mod->ctx_used) {
    context_push(L, lp->mod);
    future_setx(L, tidx, FX_CTX);
  }
  loop_anchor(L, lp, tidx);
  if (!eager) queue(t);
  return t;
}

/* Push the future the task at tidx awaits (see await_on). */
static void push_awaited(lua_State *L, Task *t, int tidx) {
  if (t->kept) lua_getiuservalue(L, tidx, TUV_WAIT);
  else {
    lua_pushvalue(t->co, -1);
    lua_xmove(t->co, L, 1);
  }
}

/* The task t (at the top) has the cancellation with the message at msgidx
** thrown in at its next step. */
static void must_cancel(lua_State *L, Task *t, int msgidx) {
  t->must_cancel = 1;
  lua_pushvalue(L, msgidx);
  lua_setiuservalue(L, -2, TUV_MSG);
}

/* Cancelling a task cancels what it waits on: down a chain of tasks each
** awaiting the next (walked in a loop, as a chain may be long) every task
** counts the request, and the last one gets must_cancel, or the plain
** future it waits on is cancelled. A cycle of awaits leads the walk back to
** a task it saw: that one stops waiting and is queued to have the
** cancellation thrown in. */
int task_cancel(lua_State *L, Task *t, int tidx, int msgidx) {
  unsigned long walk;
  if (t->f.state != F_PENDING) return 0;
  walk = ++t->f.loop->mod->cancel_walks;
  msgidx = lua_absindex(L, msgidx);
  lua_pushvalue(L, tidx);  /* the task being walked through */
  for (;;) {
    Future *w = t->waiting;
    if (t->walk == walk) {
      if (w && w->awaiter == t) w->awaiter = NULL;
      stop_awaiting(L, t, lua_gettop(L));
      queue(t);
      break;
    }
    t->walk = walk;
    t->ncancels++;
    /* no await_k raises a raw wait's cancellation: the step must */
    if (t->raw) must_cancel(L, t, msgidx);
    if (t->park == P_PARKED) {  /* as if the future it waits on was */
      if (t->cleanup) t->cleanup(t->cleanup_arg);
      t->cleanup = NULL;
      t->park = P_CANCELLED;
      lua_pushvalue(L, msgidx);
      lua_setiuservalue(L, -2, TUV_MSG);
      lua_pop(L, 1);
      queue(t);
      return 1;
    }
    if (w == NULL || w->state != F_PENDING) break;
    push_awaited(L, t, -1);
    lua_replace(L, -2);
    if (w->kind != K_TASK) {
      future_cancel(L, w, -1, msgidx);
      lua_pop(L, 1);
      return 1;
    }
    t = (Task *)w;
  }
  must_cancel(L, t, msgidx);
  lua_pop(L, 1);
  return 1;
}

/* ---------- Lua methods ---------- */

static Task *checktask(lua_State *L) {
  return lasync_checkobj(L, 1, K_TASK, "task");
}

static int l_cancel(lua_State *L) {
  Task *t = checktask(L);
  lua_settop(L, 2);
  lua_pushboolean(L, task_cancel(L, t, 1, 2));
  return 1;
}

static int l_cancelling(lua_State *L) {
  lua_pushinteger(L, checktask(L)->ncancels);
  return 1;
}

static int l_uncancel(lua_State *L) {
  Task *t = checktask(L);
  if (t->ncancels > 0 && --t->ncancels == 0) t->must_cancel = 0;
  lua_pushinteger(L, t->ncancels);
  return 1;
}

static void push_name(lua_State *L, Task *t, int tidx) {
  if (future_getx(L, tidx, FX_NAME) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushfstring(L, "Task-%I", (lua_Integer)t->id);
  }
}

static int l_get_name(lua_State *L) {
  push_name(L, checktask(L), 1);
  return 1;
}

static int l_set_name(lua_State *L) {
  checktask(L);
  luaL_checkany(L, 2);
  luaL_tolstring(L, 2, NULL);
  future_setx(L, 1, FX_NAME);
  return 0;
}

/* The task's thread; nil once a finished task's thread was reused. */
static int l_get_coro(lua_State *L) {
  checktask(L)->exposed = 1;
  lua_getiuservalue(L, 1, TUV_CORO);
  return 1;
}

static int l_tostring(lua_State *L) {
  Task *t = checktask(L);
  push_name(L, t, 1);
  lua_pushfstring(L, "<Task '%s' %s>", lua_tostring(L, -1),
                  future_state_name(&t->f));
  return 1;
}

static int l_gc(lua_State *L) {
  future_report_unretrieved(L, &checktask(L)->f, 1);
  return 0;
}

static int l_spawn(lua_State *L) {
  Loop *lp = lasync_running(L, lasync_mod(L));
  lasync_checkcallable(L, 1, "function");
  task_new(L, lp, 1, lua_gettop(L) - 1, 0);
  return 1;
}

static int l_create_task(lua_State *L) {
  Loop *lp = lasync_checkobj(L, 1, K_LOOP, "loop");
  if (lp->closed) return luaL_error(L, "event loop is closed");
  lasync_checkcallable(L, 2, "function");
  task_new(L, lp, 2, lua_gettop(L) - 2, 0);
  return 1;
}

static int l_current_task(lua_State *L) {
  Task *t = task_current(L);
  if (t == NULL) return 0;
  loop_push_anchored(L, t->f.loop, t);
  return 1;
}

/* all_tasks([loop]): the pending tasks of loop, by default the running
** one; none on a closed loop, which holds nothing any more. */
static int l_all_tasks(lua_State *L) {
  Loop *lp = lua_isnoneornil(L, 1) ? lasync_running(L, lasync_mod(L))
             : lasync_checkobj(L, 1, K_LOOP, "loop");
  int n = 0;
  lua_newtable(L);
  if (lp->closed) return 1;
  loop_push_anchors(L, lp);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    Task *t = lasync_toobj(L, -1, K_TASK);
    if (t && t->f.state == F_PENDING) lua_rawseti(L, -4, ++n);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

static int l_is_task(lua_State *L) {
  lua_pushboolean(L, lasync_toobj(L, 1, K_TASK) != NULL);
  return 1;
}

static const luaL_Reg task_methods[] = {
  {"cancel", l_cancel},
  {"cancelling", l_cancelling},
  {"uncancel", l_uncancel},
  {"get_name", l_get_name},
  {"set_name", l_set_name},
  {"get_coro", l_get_coro},
  {NULL, NULL}
};

static const luaL_Reg task_meta[] = {
  {"__tostring", l_tostring},
  {"__gc", l_gc},
  {NULL, NULL}
};

static const luaL_Reg await_methods[] = {
  {"await", l_await},
  {NULL, NULL}
};

static const luaL_Reg task_funcs[] = {
  {"spawn", l_spawn},
  {"await", l_await},
  {"sleep", l_sleep},
  {"_park", l_park},
  {"_unpark", l_unpark},
  {"_park_state", l_park_state},
  {"_task_wait", l_task_wait},
  {"_set_driven", l_set_driven},
  {"current_task", l_current_task},
  {"all_tasks", l_all_tasks},
  {"is_task", l_is_task},
  {NULL, NULL}
};

static const luaL_Reg loop_methods[] = {
  {"create_task", l_create_task},
  {NULL, NULL}
};

/* Copy the Future methods a Task does not define itself. */
static void inherit_future(lua_State *L) {
  int fm, tm;
  luaL_getmetatable(L, "lasync.Future");
  lua_getfield(L, -1, "__methods");
  fm = lua_gettop(L);
  luaL_getmetatable(L, "lasync.Task");
  lua_getfield(L, -1, "__methods");
  tm = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, fm)) {
    lua_pushvalue(L, -2);
    if (lua_rawget(L, tm) == LUA_TNIL) {
      lua_pushvalue(L, -3);
      lua_pushvalue(L, -3);
      lua_rawset(L, tm);
    }
    lua_pop(L, 2);
  }
  lua_settop(L, fm - 2);
}

void task_register(lua_State *L) {
  lasync_newmeta(L, K_TASK, task_methods, task_meta);
  lasync_addmethods(L, K_FUTURE, await_methods);
  inherit_future(L);
  lasync_addfuncs(L, task_funcs);
  lasync_addmethods(L, K_LOOP, loop_methods);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, sleep_cb, 1);
  lua_setiuservalue(L, -3, MUV_SLEEPCB);
}
