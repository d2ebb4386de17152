/*
** The event loop over one event_base. An iteration (run_once) polls I/O,
** moves due timers to the ready queue, then runs exactly the entries that
** were ready when it began; whatever they schedule waits for the next one.
** libevent callbacks never call Lua: they only push onto the ready queue,
** so no Lua error can unwind through event_base_loop.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lasync.h"

static const char tb_key = 0;

#define checkloop(L) \
  ((Loop *)lasync_checkobj(L, 1, K_LOOP, "loop"))

/* ---------- ready queue: a ring of object pointers ---------- */

static void ready_grow(Loop *lp) {
  size_t i, ncap = lp->rcap ? lp->rcap * 2 : 64;
  void **r = malloc(ncap * sizeof *r);
  if (r == NULL) abort();  /* cannot report without memory; never unwind */
  for (i = 0; i < lp->rcount; i++)
    r[i] = lp->ready[(lp->rhead + i) & (lp->rcap - 1)];
  free(lp->ready);
  lp->ready = r;
  lp->rcap = ncap;
  lp->rhead = 0;
}

/* The object must be anchored until it is popped. rcap is a power of 2. */
void loop_ready_push(Loop *lp, void *obj) {
  if (lp->rcount == lp->rcap) ready_grow(lp);
  lp->ready[(lp->rhead + lp->rcount++) & (lp->rcap - 1)] = obj;
}

static void *ready_pop(Loop *lp) {
  void *obj = lp->ready[lp->rhead];
  lp->rhead = (lp->rhead + 1) & (lp->rcap - 1);
  lp->rcount--;
  return obj;
}

/* ---------- anchors: slot -> object, keeps scheduled things alive ------
** An array with a free list in C: anchoring is an array store, not a hash
** insert, on the path of every task switch. The table is a user value of
** the loop, so that the GC sees the cycle loop -> anchors -> task -> loop
** and collects a loop dropped unclosed with all it anchors. While the loop
** runs, the Mod (every C function's upvalue 1) holds it too, for a direct
** lookup that does not depend on how many registry refs exist (a ref past
** the registry's array part is a hash lookup); while it is released, a
** registry ref. */

void loop_push_anchors(lua_State *L, Loop *lp) {
  if (lp->running)
    lua_getiuservalue(L, lua_upvalueindex(1), MUV_ANCHORS);
  else if (lp->anchors != LUA_NOREF)
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->anchors);
  else {
    loop_push(L, lp);
    lua_getiuservalue(L, -1, LUV_ANCHORS);
    lua_remove(L, -2);
  }
}

/* The loop's pool of finished threads (for reuse), as its anchors. */
void loop_push_pool(lua_State *L, Loop *lp) {
  if (lp->running) lua_getiuservalue(L, lua_upvalueindex(1), MUV_POOL);
  else lua_rawgeti(L, LUA_REGISTRYINDEX, lp->pool);
}

/* Set (or clear) the Mod's user values of the running loop, at loopidx. */
static void set_running(lua_State *L, Loop *lp, int loopidx, int on) {
  int i;
  if (on) {
    lua_pushvalue(L, loopidx);
    lua_getiuservalue(L, loopidx, LUV_ANCHORS);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->pool);
  } else for (i = 0; i < 3; i++) lua_pushnil(L);
  for (i = MUV_POOL; i >= MUV_RUNNING; i--)
    lua_setiuservalue(L, lua_upvalueindex(1), i);
}

/* Take (ref) or drop (LUA_NOREF) the registry ref to the anchors of the
** loop at loopidx. */
static void ref_anchors(lua_State *L, Loop *lp, int loopidx, int take) {
  if (take && lp->anchors == LUA_NOREF) {
    lua_getiuservalue(L, loopidx, LUV_ANCHORS);
    lp->anchors = luaL_ref(L, LUA_REGISTRYINDEX);
  } else if (!take) {
    luaL_unref(L, LUA_REGISTRYINDEX, lp->anchors);
    lp->anchors = LUA_NOREF;
  }
}

/* Raises on a closed loop: nothing may be scheduled on it any more. */
void loop_anchor(lua_State *L, Loop *lp, int idx) {
  Obj *o = lua_touserdata(L, idx);
  if (o->slot) return;
  if (lp->closed) luaL_error(L, "event loop is closed");
  idx = lua_absindex(L, idx);
  o->slot = lp->nfree ? lp->freeslots[--lp->nfree] : ++lp->nslots;
  loop_push_anchors(L, lp);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, o->slot);
  lua_pop(L, 1);
}

void loop_unanchor(lua_State *L, Loop *lp, const void *p) {
  Obj *o = (Obj *)p;
  if (o->slot == 0) return;
  if (lp->nfree == lp->capfree) {
    int ncap = lp->capfree ? lp->capfree * 2 : 64;
    int *nf = realloc(lp->freeslots, (size_t)ncap * sizeof *nf);
    if (nf == NULL) luaL_error(L, "not enough memory");
    lp->freeslots = nf;
    lp->capfree = ncap;
  }
  loop_push_anchors(L, lp);
  lua_pushnil(L);
  lua_rawseti(L, -2, o->slot);
  lua_pop(L, 1);
  lp->freeslots[lp->nfree++] = o->slot;
  o->slot = 0;
}

void loop_push_anchored(lua_State *L, Loop *lp, const void *p) {
  loop_push_anchors(L, lp);
  lua_rawgeti(L, -1, ((const Obj *)p)->slot);
  lua_replace(L, -2);  /* a copy: cheaper than lua_remove's rotation */
}

/* Push the loop's userdata (kept in a weak table: the loop lives as long
** as someone holds it, such as one of its futures, or while it runs). */
void loop_push(lua_State *L, Loop *lp) {
  if (lp->running) {  /* the common case, one step: the Mod holds it */
    lua_getiuservalue(L, lua_upvalueindex(1), MUV_RUNNING);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->mod->loopsref);
  lua_rawgetp(L, -1, lp);
  lua_remove(L, -2);
}

/* voffset is 0 unless virtual time jumped the clock. */
double loop_time(Loop *lp) {
  return lasync_now() + lp->voffset;
}

/* ---------- protected calls and error reports ---------- */

static int msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = lasync_tostring(L, 1);
  luaL_traceback(L, L, msg, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &tb_key);
  lua_settop(L, 1);
  return 1;
}

/* lua_pcall with a handler that keeps the error value as it is and saves
** its traceback for loop_push_traceback. */
int loop_pcall(lua_State *L, int nargs, int nres) {
  int base = lua_gettop(L) - nargs, st;
  lua_pushcfunction(L, msgh);
  lua_insert(L, base);
  st = lua_pcall(L, nargs, nres, base);
  lua_remove(L, base);
  return st;
}

void loop_push_traceback(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &tb_key);
}

static void setfield_at(lua_State *L, int t, const char *k, int idx) {
  if (idx == 0) return;
  lua_pushvalue(L, idx);
  lua_setfield(L, t, k);
}

/* Report an error through the exception handler with a context table of
** message, exception, object (task, future or handle) and traceback. */
void loop_report_error(lua_State *L, Loop *lp, const char *msg, int erridx,
                       int objidx, const char *objfield, int tbidx) {
  erridx = erridx ? lua_absindex(L, erridx) : 0;
  objidx = objidx ? lua_absindex(L, objidx) : 0;
  tbidx = tbidx ? lua_absindex(L, tbidx) : 0;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  setfield_at(L, lua_gettop(L), "exception", erridx);
  if (objfield) setfield_at(L, lua_gettop(L), objfield, objidx);
  setfield_at(L, lua_gettop(L), "traceback", tbidx);
  loop_report(L, lp, -1);
  lua_pop(L, 1);
}

static void print_field(lua_State *L, int ctx, const char *k, int label) {
  if (lua_getfield(L, ctx, k) != LUA_TNIL) {
    const char *s = lasync_tostring(L, -1);
    if (label) fprintf(stderr, "%s: %s\n", k, s);
    else fprintf(stderr, "%s\n", s);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void default_handler(lua_State *L, int ctx) {
  print_field(L, ctx, "message", 0);
  print_field(L, ctx, "task", 1);
  print_field(L, ctx, "future", 1);
  print_field(L, ctx, "handle", 1);
  print_field(L, ctx, "exception", 1);
  print_field(L, ctx, "traceback", 0);
  fflush(stderr);
}

/* Call the exception handler (or the default) with the context at ctxidx.
** A handler that fails is itself reported by the default one. */
void loop_report(lua_State *L, Loop *lp, int ctxidx) {
  ctxidx = lua_absindex(L, ctxidx);
  loop_push(L, lp);
  if (lua_isnil(L, -1) ||
      lua_getiuservalue(L, -1, LUV_HANDLER) == LUA_TNIL) {
    lua_settop(L, ctxidx);
    default_handler(L, ctxidx);
    return;
  }
  lua_insert(L, -2);
  lua_pushvalue(L, ctxidx);
  if (loop_pcall(L, 2, 0) != LUA_OK) {
    int err = lua_gettop(L);
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "Unhandled error in exception handler");
    lua_setfield(L, -2, "message");
    setfield_at(L, err + 1, "exception", err);
    setfield_at(L, err + 1, "context", ctxidx);
    loop_push_traceback(L);
    lua_setfield(L, -2, "traceback");
    default_handler(L, err + 1);
    lua_settop(L, ctxidx);
  }
}

/* ---------- one iteration ---------- */

/* Block in libevent until I/O or the next timer, unless work is ready; when
** busy, poll I/O without blocking only once 128 items ran since the last
** poll, so task switches do not each pay a system call. */
static void arm_tick(Loop *lp);

/* Virtual time: poll I/O without blocking; when nothing is ready, jump the
** clock to the next timer (the spec deadline aside, which stays on real
** time). Returns 0 when there is no timer to jump to: block as usual. */
static int vtime_jump(Loop *lp) {
  double next, now;
  event_base_loop(lp->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  if (lp->rcount || lp->stopping) return 1;
  next = timers_next(lp, lp->vdeadline);
  if (next < 0) return 0;
  now = loop_time(lp);
  if (next > now) {
    lp->voffset += next - now;
    if (lp->vdeadline) timer_shift(lp, lp->vdeadline, next - now);
  }
  return 1;
}

static void poll_io(Loop *lp) {
  if (lp->rcount || lp->stopping) {
    if (lp->ran >= 128) {
      lp->ran = 0;
      event_base_loop(lp->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    return;
  }
  lp->ran = 0;
  if (lp->vtime && vtime_jump(lp)) return;
  arm_tick(lp);
  event_base_loop(lp->base, EVLOOP_ONCE);
}

/* Arm the tick for the earliest timer, or for an hour when there is none
** (so that libevent always has an event to wait on), unless it is armed
** for that deadline already: each re-arm is a system call. */
static void arm_tick(Loop *lp) {
  struct timeval tv;
  double at = lp->timers.n ? lp->timers.h[0]->when : -1, wait;
  if (at == lp->tick_at && event_pending(lp->tick, EV_TIMEOUT, NULL))
    return;
  wait = at < 0 ? 3600 : at - loop_time(lp);
  if (wait < 0) wait = 0;
  if (wait > 3600) wait = 3600;  /* far timers: tv_sec stays in range */
  tv.tv_sec = (long)wait;
  tv.tv_usec = (long)((wait - (double)tv.tv_sec) * 1e6) + 1;
  event_add(lp->tick, &tv);
  lp->tick_at = at;
}

static void report_slow(lua_State *L, Loop *lp, int objidx, double dt) {
  Task *t = lasync_toobj(L, objidx, K_TASK);
  const char *what = luaL_tolstring(L, objidx, NULL);
  lua_pushfstring(L, "Executing %s took %f seconds", what, dt);
  if (t && t->co) luaL_traceback(L, t->co, NULL, 0);
  else lua_pushnil(L);
  loop_report_error(L, lp, lua_tostring(L, -2), 0, objidx,
                    t ? "task" : "handle", -1);
  lua_pop(L, 3);
}

static void dispatch(lua_State *L, Loop *lp, void *obj) {
  if (((Obj *)obj)->kind == K_TASK) {
    ((Task *)obj)->queued = 0;
    task_step(L, lp, obj);
  } else {
    loop_push_anchored(L, lp, obj);
    handle_run(L, lp, obj);
    lua_pop(L, 1);
  }
}

/* Debug mode: time the item, kept on the stack to name it in a report. */
static void dispatch_timed(lua_State *L, Loop *lp, void *obj) {
  double t0 = lasync_now(), dt;
  loop_push_anchored(L, lp, obj);
  dispatch(L, lp, obj);
  dt = lasync_now() - t0;
  if (dt >= lp->slow) report_slow(L, lp, lua_gettop(L), dt);
  lua_pop(L, 1);
}

static void run_once(lua_State *L, Loop *lp) {
  size_t n;
  poll_io(lp);
  if (lp->timers.n) timers_due(L, lp, loop_time(lp));
  lp->ran += lp->rcount;
  for (n = lp->rcount; n > 0; n--)
    if (lp->debug) dispatch_timed(L, lp, ready_pop(lp));
    else dispatch(L, lp, ready_pop(lp));
}

/* Runs iterations until stop(), or until the future at index 2 (if any)
** is done; after a stop() made while not running, one iteration, as
** asyncio. Called under lua_pcall so the running state is always reset. */
static int run_inner(lua_State *L) {
  Loop *lp = lua_touserdata(L, 1);
  Future *f = lua_touserdata(L, 2);
  do {  /* at least one iteration, as asyncio: stop() or a done future */
    if (f && f->state != F_PENDING) lp->stopping = 1;  /* do not block */
    run_once(L, lp);
  } while (!lp->stopping && (f == NULL || f->state == F_PENDING));
  return 0;
}

static void run(lua_State *L, Loop *lp, int futidx) {
  Mod *m = lasync_mod(L);
  int st;
  if (lp->closed) luaL_error(L, "event loop is closed");
  if (m->running) luaL_error(L, "another event loop is already running");
  set_running(L, lp, 1, 1);  /* the loop is self, at 1 */
  m->running = lp;
  lp->running = 1;
  lp->L = L;
  lua_pushvalue(L, lua_upvalueindex(1));  /* run_inner needs the Mod */
  lua_pushcclosure(L, run_inner, 1);
  lua_pushlightuserdata(L, lp);
  if (futidx) lua_pushlightuserdata(L, lua_touserdata(L, futidx));
  else lua_pushnil(L);
  st = lua_pcall(L, 2, 0, 0);
  m->running = NULL;
  lp->running = lp->stopping = 0;
  set_running(L, lp, 1, 0);
  lp->L = NULL;
  if (st != LUA_OK) lua_error(L);
}

/* ---------- Lua methods ---------- */

static int l_run_forever(lua_State *L) {
  run(L, checkloop(L), 0);
  return 0;
}

/* loop:run_until_complete(future or function, ...): its results. */
static int l_run_until_complete(lua_State *L) {
  Loop *lp = checkloop(L);
  Future *f = lasync_toobj(L, 2, K_FUTURE);
  if (f == NULL) {
    lasync_checkcallable(L, 2, "function");
    task_new(L, lp, 2, lua_gettop(L) - 2, 0);
    lua_replace(L, 2);
    f = lua_touserdata(L, 2);
  } else if (f->loop != lp)
    luaL_argerror(L, 2, "future belongs to another loop");
  lua_settop(L, 2);
  run(L, lp, 2);
  if (f->state == F_PENDING)
    luaL_error(L, "event loop stopped before the future completed");
  return future_unpack(L, f, 2);
}

static int l_stop(lua_State *L) {
  checkloop(L)->stopping = 1;
  return 0;
}

static int l_is_running(lua_State *L) {
  lua_pushboolean(L, checkloop(L)->running);
  return 1;
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, checkloop(L)->closed);
  return 1;
}

/* loop:_set_virtual_time(on[, deadline]): lasync.test's switch. The
** deadline, a TimerHandle, stays on real time while the clock jumps. */
static int l_set_virtual_time(lua_State *L) {
  Loop *lp = checkloop(L);
  Handle *h = lua_isnoneornil(L, 3) ? NULL
            : lasync_checkobj(L, 3, K_HANDLE, "TimerHandle");
  luaL_argcheck(L, h == NULL || h->kind == K_TIMER, 3, "TimerHandle expected");
  lp->vtime = (unsigned char)lua_toboolean(L, 2);
  lp->vdeadline = lp->vtime ? h : NULL;
  lua_settop(L, 3);
  if (!lp->vtime) lua_pushnil(L);
  lua_setiuservalue(L, 1, LUV_VDEADLINE);  /* keeps vdeadline alive */
  return 0;
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, loop_time(checkloop(L)));
  return 1;
}

/* Report futures whose error was never retrieved, at close. */
static void report_failed(lua_State *L, int loopidx) {
  int i, n = 0, list;
  lua_newtable(L);  /* a handler may fail more futures: walk a copy */
  list = lua_gettop(L);
  lua_getiuservalue(L, loopidx, LUV_FAILED);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, list, ++n);
  }
  lua_pop(L, 1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    future_report_unretrieved(L, lua_touserdata(L, -1), -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Set the close hook of a per-loop extension slot; stack: Mod, core
** table (at module open). */
void loop_register_ext(lua_State *L, int slot, LoopCloseHook close) {
  ((Mod *)lua_touserdata(L, -2))->loop_close[slot] = close;
}

static void close_exts(lua_State *L, Loop *lp, int loopidx) {
  int i;
  for (i = 0; i < LX_N; i++)
    if (lp->mod->loop_close[i]) lp->mod->loop_close[i](L, lp, loopidx);
}

/* Release every C resource; idempotent, for close() and __gc. */
static void loop_release(lua_State *L, Loop *lp, int loopidx) {
  if (lp->base == NULL) return;
  ref_anchors(L, lp, loopidx, 1);  /* in __gc, loop_push finds nothing */
  timers_clear(L, lp);
  close_exts(L, lp, loopidx);
  lp->rcount = 0;
  free(lp->ready);
  lp->ready = NULL;
  lp->rcap = 0;
  free(lp->freeslots);
  lp->freeslots = NULL;
  lp->nfree = lp->capfree = 0;
  event_free(lp->tick);
  event_base_free(lp->base);
  lp->base = NULL;
  ref_anchors(L, lp, loopidx, 0);
  lua_pushnil(L);
  lua_setiuservalue(L, loopidx, LUV_ANCHORS);
  luaL_unref(L, LUA_REGISTRYINDEX, lp->pool);
  lp->pool = LUA_NOREF;
  lp->npool = 0;
  lp->closed = 1;
}

static int l_close(lua_State *L) {
  Loop *lp = checkloop(L);
  if (lp->running) luaL_error(L, "cannot close a running event loop");
  if (lp->closed) return 0;
  report_failed(L, 1);
  loop_release(L, lp, 1);
  return 0;
}

static int l_gc(lua_State *L) {
  Loop *lp = checkloop(L);
  /* only a call by hand finds it running: the running loop is held */
  if (lp->running) luaL_error(L, "cannot collect a running event loop");
  if (lp->base) loop_release(L, lp, 1);
  free(lp->ready);  /* a task woken after close() queued itself */
  lp->ready = NULL;
  return 0;
}

static int l_set_debug(lua_State *L) {
  checkloop(L)->debug = (unsigned char)lua_toboolean(L, 2);
  return 0;
}

static int l_get_debug(lua_State *L) {
  lua_pushboolean(L, checkloop(L)->debug);
  return 1;
}

static int l_set_exception_handler(lua_State *L) {
  checkloop(L);
  if (!lua_isnil(L, 2))
    lasync_checkcallable(L, 2, "function");
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, LUV_HANDLER);
  return 0;
}

static int l_get_exception_handler(lua_State *L) {
  checkloop(L);
  lua_getiuservalue(L, 1, LUV_HANDLER);
  return 1;
}

static int l_default_exception_handler(lua_State *L) {
  checkloop(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  default_handler(L, 2);
  return 0;
}

static int l_call_exception_handler(lua_State *L) {
  Loop *lp = checkloop(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  loop_report(L, lp, 2);
  return 0;
}

/* loop.slow_callback_duration reads and writes a C field. */
static int l_index(lua_State *L) {
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (k && strcmp(k, "slow_callback_duration") == 0) {
    lua_pushnumber(L, checkloop(L)->slow);
    return 1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lasync_mod(L)->mtref[K_LOOP]);
  lua_getfield(L, -1, "__methods");
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int l_newindex(lua_State *L) {
  Loop *lp = checkloop(L);
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (k == NULL || strcmp(k, "slow_callback_duration") != 0)
    return luaL_error(L, "cannot set field '%s' of a loop",
                      k ? k : luaL_typename(L, 2));
  if (lua_type(L, 3) != LUA_TNUMBER)
    return luaL_error(L, "bad value for slow_callback_duration (number "
                      "expected, got %s)", luaL_typename(L, 3));
  lp->slow = lua_tonumber(L, 3);
  return 0;
}

static int l_tostring(lua_State *L) {
  Loop *lp = checkloop(L);
  lua_pushfstring(L, "<Loop %s %p>", lp->closed ? "closed"
                  : lp->running ? "running" : "idle", (void *)lp);
  return 1;
}

static void new_weak(lua_State *L, const char *mode) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what; (void)arg;  /* only wakes event_base_loop */
}

/* core.new_loop(): a new, not running loop. */
static int l_new_loop(lua_State *L) {
  Loop *lp = lua_newuserdatauv(L, sizeof(Loop), LUV_NUV);
  struct event_config *cfg;
  memset(lp, 0, sizeof *lp);
  lp->magic = LASYNC_MAGIC;
  lp->kind = K_LOOP;
  lp->loop = lp;
  lp->mod = lasync_mod(L);
  lp->slow = 0.1;
  lp->tick_at = -1;
  lp->anchors = lp->pool = LUA_NOREF;
  lasync_setmt(L, lp->mod, K_LOOP);
  cfg = event_config_new();
  if (cfg == NULL) return luaL_error(L, "cannot create event_config");
  /* PRECISE_TIMER: libevent's default coarse clock ticks every 4 ms
  ** here, and a 1 ms sleep took 4 ms. */
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK |
                        EVENT_BASE_FLAG_PRECISE_TIMER);
  lp->base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (lp->base == NULL) return luaL_error(L, "cannot create event_base");
  lp->tick = evtimer_new(lp->base, tick_cb, NULL);
  lua_newtable(L);
  lua_setiuservalue(L, -2, LUV_ANCHORS);
  lua_newtable(L);
  lp->pool = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  lua_setiuservalue(L, -2, LUV_WATCH);
  new_weak(L, "k");
  lua_setiuservalue(L, -2, LUV_FAILED);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->mod->loopsref);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, lp);
  lua_pop(L, 1);
  return 1;
}

static int l_get_running_loop(lua_State *L) {
  Mod *m = lasync_mod(L);
  if (m->running == NULL) return 0;
  loop_push(L, m->running);
  return 1;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, loop_time(lasync_running(L, lasync_mod(L))));
  return 1;
}

/* core._anchored(): a list of what the running loop holds alive (pending
** tasks, scheduled handles, watchers, serving servers, closing streams), a
** test hook: specs check that they leave nothing behind. */
static int l_anchored(lua_State *L) {
  int n = 0;
  loop_push_anchors(L, lasync_running(L, lasync_mod(L)));
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, -3)) lua_rawseti(L, -3, ++n);
  return 1;
}

static const luaL_Reg lasync_loop_methods[] = {
  {"run_forever", l_run_forever},
  {"run_until_complete", l_run_until_complete},
  {"stop", l_stop},
  {"close", l_close},
  {"is_running", l_is_running},
  {"is_closed", l_is_closed},
  {"time", l_time},
  {"_set_virtual_time", l_set_virtual_time},
  {"set_debug", l_set_debug},
  {"get_debug", l_get_debug},
  {"set_exception_handler", l_set_exception_handler},
  {"get_exception_handler", l_get_exception_handler},
  {"default_exception_handler", l_default_exception_handler},
  {"call_exception_handler", l_call_exception_handler},
  {NULL, NULL}
};

static const luaL_Reg loop_meta[] = {
  {"__gc", l_gc},
  {"__close", l_close},
  {"__index", l_index},
  {"__newindex", l_newindex},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

static const luaL_Reg loop_funcs[] = {
  {"new_loop", l_new_loop},
  {"get_running_loop", l_get_running_loop},
  {"time", l_now},
  {"_anchored", l_anchored},
  {NULL, NULL}
};

/* Stack: Mod, core table. */
void loop_register(lua_State *L) {
  new_weak(L, "v");
  ((Mod *)lua_touserdata(L, -3))->loopsref = luaL_ref(L, LUA_REGISTRYINDEX);
  lasync_newmeta(L, K_LOOP, lasync_loop_methods, loop_meta);
  lasync_addfuncs(L, loop_funcs);
}
