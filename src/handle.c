/*
** Handles: a callback and its arguments, all in user values (no table per
** call). call_soon handles go to the ready queue; timer handles wait in a
** binary heap ordered by (deadline, scheduling order), so ties run in the
** order they were scheduled. A cancelled timer stays in the heap until it
** comes out or until cancelled ones make up half of it.
*/
#include <stdlib.h>
#include <string.h>
#include "lasync.h"

#define MAX_ARGS 65000  /* of a callback: its user values must stay < 2^16 */

/* ---------- handles ---------- */

/* Push a new handle for the function at fnidx and the nargs values after
** it; the last user value holds the context it was scheduled from. */
Handle *handle_new(lua_State *L, Loop *lp, int kind, int fnidx, int nargs) {
  Mod *m = lp->mod;
  Handle *h;
  int i, hidx;
  if (nargs > MAX_ARGS)  /* Lua counts user values in 16 bits */
    luaL_error(L, "too many arguments for a callback (%d, at most %d)",
               nargs, MAX_ARGS);
  h = lua_newuserdatauv(L, sizeof(Handle), nargs + 2);
  hidx = lua_gettop(L);
  memset(h, 0, sizeof *h);
  h->magic = LASYNC_MAGIC;
  h->kind = kind;
  h->loop = lp;
  h->nargs = nargs;
  h->fd = -1;
  lasync_setmt(L, m, kind);
  for (i = 0; i <= nargs; i++) {
    lua_pushvalue(L, fnidx + i);
    lua_setiuservalue(L, hidx, i + 1);
  }
  if (m->ctx_used) {
    context_push(L, m);
    lua_setiuservalue(L, hidx, nargs + 2);
  }
  return h;
}

/* Run the handle at the top of the stack (leaves the stack as it was). */
void handle_run(lua_State *L, Loop *lp, Handle *h) {
  int i, hidx = lua_gettop(L);
  if (h->kind != K_WATCH) loop_unanchor(L, lp, h);
  else {  /* anchored while it watches; one stopped while it was queued */
    h->queued = 0;  /* stayed anchored until this pop */
    if (h->cancelled) loop_unanchor(L, lp, h);
  }
  if (h->cancelled) return;
  /* below MAX_ARGS, only a lack of memory can refuse */
  luaL_checkstack(L, h->nargs + LUA_MINSTACK, "callback arguments");
  for (i = 1; i <= h->nargs + 1; i++)
    lua_getiuservalue(L, hidx, i);
  if (lp->mod->ctx_used) {
    loop_push(L, lp);
    lua_getiuservalue(L, hidx, h->nargs + 2);
    lua_setiuservalue(L, -2, LUV_CTX);
    lua_pop(L, 1);
  }
  if (loop_pcall(L, h->nargs, 0) != LUA_OK) {
    loop_push_traceback(L);
    loop_report_error(L, lp, "Exception in callback", -2, hidx, "handle", -1);
  }
  lua_settop(L, hidx);
}

/* Schedule fn (at fnidx) with nargs arguments after it; pushes the handle. */
void handle_call_soon(lua_State *L, Loop *lp, int fnidx, int nargs) {
  Handle *h = handle_new(L, lp, K_HANDLE, fnidx, nargs);
  loop_anchor(L, lp, -1);
  loop_ready_push(lp, h);
}

/* ---------- the timer heap ---------- */

static int earlier(const Handle *a, const Handle *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void sift_up(TimerHeap *th, int i) {
  Handle *h = th->h[i];
  while (i > 0 && earlier(h, th->h[(i - 1) / 2])) {
    th->h[i] = th->h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  th->h[i] = h;
}

static void sift_down(TimerHeap *th, int i) {
  Handle *h = th->h[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= th->n) break;
    if (c + 1 < th->n && earlier(th->h[c + 1], th->h[c])) c++;
    if (!earlier(th->h[c], h)) break;
    th->h[i] = th->h[c];
    i = c;
  }
  th->h[i] = h;
}

static Handle *heap_pop(TimerHeap *th) {
  Handle *top = th->h[0];
  th->h[0] = th->h[--th->n];
  if (th->n > 0) sift_down(th, 0);
  return top;
}

/* Add the timer handle at hidx (anchors it until it runs or is dropped). */
void timer_push(lua_State *L, Loop *lp, Handle *h, int hidx) {
  TimerHeap *th = &lp->timers;
  if (th->n == th->cap) {
    int ncap = th->cap ? th->cap * 2 : 64;
    Handle **nh = realloc(th->h, (size_t)ncap * sizeof *nh);
    if (nh == NULL) luaL_error(L, "not enough memory");
    th->h = nh;
    th->cap = ncap;
  }
  loop_anchor(L, lp, hidx);
  h->seq = lp->timer_seq++;
  th->h[th->n++] = h;
  sift_up(th, th->n - 1);
}

/* Drop cancelled timers once they are half the heap, so that code that
** arms and cancels many timeouts keeps the heap (and memory) small. */
static void heap_compact(lua_State *L, Loop *lp) {
  TimerHeap *th = &lp->timers;
  int i, j = 0;
  for (i = 0; i < th->n; i++) {
    if (th->h[i]->cancelled) loop_unanchor(L, lp, th->h[i]);
    else th->h[j++] = th->h[i];
  }
  th->n = j;
  th->ncancelled = 0;
  for (i = th->n / 2 - 1; i >= 0; i--) sift_down(th, i);
}

/* Move the timers due at now to the ready queue. */
void timers_due(lua_State *L, Loop *lp, double now) {
  TimerHeap *th = &lp->timers;
  while (th->n > 0 && th->h[0]->when <= now) {
    Handle *h = heap_pop(th);
    if (h->cancelled) {
      th->ncancelled--;
      loop_unanchor(L, lp, h);
    } else {
      h->queued = 1;
      loop_ready_push(lp, h);
    }
  }
}

/* The earliest deadline but skip's, or -1: the root or, when the root is
** skip, the earlier of its children (heap order). */
double timers_next(Loop *lp, const Handle *skip) {
  TimerHeap *th = &lp->timers;
  int c;
  if (th->n == 0) return -1;
  if (th->h[0] != skip) return th->h[0]->when;
  if (th->n == 1) return -1;
  c = th->n > 2 && earlier(th->h[2], th->h[1]) ? 2 : 1;
  return th->h[c]->when;
}

/* Move the pending timer h later by delta (virtual time keeps the spec
** deadline on real time); a linear search, only on a clock jump. */
void timer_shift(Loop *lp, Handle *h, double delta) {
  TimerHeap *th = &lp->timers;
  int i;
  for (i = 0; i < th->n && th->h[i] != h; i++) {}
  if (i == th->n) return;
  h->when += delta;
  sift_down(th, i);
}

void timers_clear(lua_State *L, Loop *lp) {
  TimerHeap *th = &lp->timers;
  while (th->n > 0) loop_unanchor(L, lp, th->h[--th->n]);
  free(th->h);
  memset(th, 0, sizeof *th);
}

/* ---------- Lua methods ---------- */

static Loop *checkopenloop(lua_State *L) {
  Loop *lp = lasync_checkobj(L, 1, K_LOOP, "loop");
  if (lp->closed) luaL_error(L, "event loop is closed");
  return lp;
}

/* loop:call_soon(fn, ...) -> Handle */
static int l_call_soon(lua_State *L) {
  Loop *lp = checkopenloop(L);
  lasync_checkcallable(L, 2, "function");
  handle_call_soon(L, lp, 2, lua_gettop(L) - 2);
  return 1;
}

/* A NaN deadline would never come and would break the heap's order. */
static int schedule_at(lua_State *L, Loop *lp, double when) {
  Handle *h;
  luaL_argcheck(L, when == when, 2, "number other than NaN expected");
  lasync_checkcallable(L, 3, "function");
  h = handle_new(L, lp, K_TIMER, 3, lua_gettop(L) - 3);
  h->when = when;
  timer_push(L, lp, h, -1);
  return 1;
}

/* loop:call_later(delay, fn, ...) -> TimerHandle */
static int l_call_later(lua_State *L) {
  Loop *lp = checkopenloop(L);
  double delay = luaL_checknumber(L, 2);
  return schedule_at(L, lp, loop_time(lp) + delay);
}

/* loop:call_at(when, fn, ...) -> TimerHandle */
static int l_call_at(lua_State *L) {
  Loop *lp = checkopenloop(L);
  return schedule_at(L, lp, luaL_checknumber(L, 2));
}

static Handle *checkhandle(lua_State *L) {
  return lasync_checkobj(L, 1, K_HANDLE, "handle");
}

/* Cancel the handle at hidx; its callback and arguments are let go at
** once, though a timer stays in the heap until it comes out. */
void handle_cancel(lua_State *L, Handle *h, int hidx) {
  int i;
  if (h->cancelled) return;
  h->cancelled = 1;
  for (i = 1; i <= h->nargs + 1; i++) {
    lua_pushnil(L);
    lua_setiuservalue(L, hidx, i);
  }
  if (h->kind == K_WATCH) watch_cancel(L, h);
  else if (h->kind == K_TIMER && !h->queued && h->loop->base) {
    TimerHeap *th = &h->loop->timers;
    if (++th->ncancelled > 64 && th->ncancelled > th->n / 2)
      heap_compact(L, h->loop);
  }
}

static int l_cancel(lua_State *L) {
  handle_cancel(L, checkhandle(L), 1);
  return 0;
}

static int l_cancelled(lua_State *L) {
  lua_pushboolean(L, checkhandle(L)->cancelled);
  return 1;
}

static int l_when(lua_State *L) {
  Handle *h = checkhandle(L);
  luaL_argcheck(L, h->kind == K_TIMER, 1, "TimerHandle expected");
  lua_pushnumber(L, h->when);
  return 1;
}

static int l_tostring(lua_State *L) {
  Handle *h = lasync_checkobj(L, 1, K_HANDLE, "handle");
  const char *name = h->kind == K_TIMER ? "TimerHandle" : "Handle";
  if (h->kind == K_TIMER)
    lua_pushfstring(L, "<%s%s when=%f>", name,
                    h->cancelled ? " cancelled" : "", h->when);
  else
    lua_pushfstring(L, "<%s%s>", name, h->cancelled ? " cancelled" : "");
  return 1;
}

static const luaL_Reg handle_methods[] = {
  {"cancel", l_cancel},
  {"cancelled", l_cancelled},
  {NULL, NULL}
};

static const luaL_Reg timer_methods[] = {
  {"cancel", l_cancel},
  {"cancelled", l_cancelled},
  {"when", l_when},
  {NULL, NULL}
};

static const luaL_Reg handle_meta[] = {
  {"__tostring", l_tostring},
  {NULL, NULL}
};

static const luaL_Reg loop_methods[] = {
  {"call_soon", l_call_soon},
  {"call_later", l_call_later},
  {"call_at", l_call_at},
  {NULL, NULL}
};

void handle_register(lua_State *L) {
  lasync_newmeta(L, K_HANDLE, handle_methods, handle_meta);
  lasync_newmeta(L, K_TIMER, timer_methods, handle_meta);
  lasync_newmeta(L, K_WATCH, handle_methods, handle_meta);
  lasync_addmethods(L, K_LOOP, loop_methods);
}
