/*
** Futures. Results, the error, callbacks and the waiting tasks live in user
** values. Done callbacks are always queued on the loop, never run inside
** set_result or cancel; a waiting Task is woken by pushing it onto the ready
** queue, without allocating anything.
*/
#include <string.h>
#include "lasync.h"

static const char *const state_names[] = {"pending", "finished", "cancelled"};

const char *future_state_name(Future *f) {
  return state_names[f->state];
}

/* Push a new future (or the Future part of a Task) of the given size. */
Future *future_new(lua_State *L, Loop *lp, int kind, size_t size, int nuv) {
  Future *f = lua_newuserdatauv(L, size, nuv);
  memset(f, 0, size);
  f->magic = LASYNC_MAGIC;
  f->kind = kind;
  f->loop = lp;
  lp->mod->futures_made++;
  lasync_setmt(L, lp->mod, kind);
  loop_push(L, lp);
  lua_setiuservalue(L, -2, FUV_LOOP);
  if (lp->debug) {
    luaL_traceback(L, L, NULL, 1);
    future_setx(L, -2, FX_TB);
  }
  return f;
}

Future *future_check(lua_State *L, int idx) {
  return lasync_checkobj(L, idx, K_FUTURE, "future");
}

/* Queue the callback at the top (popping it): a waiting Task is woken, the
** Handle made by add_done_callback is queued. */
static void schedule_one(lua_State *L, Future *f) {
  Task *t = lasync_toobj(L, -1, K_TASK);
  if (t != NULL) task_wakeup(L, t, -1, f);
  else {
    loop_anchor(L, f->loop, -1);
    loop_ready_push(f->loop, lua_touserdata(L, -1));
  }
  lua_pop(L, 1);
}

static void schedule_callbacks(lua_State *L, Future *f, int fidx) {
  if (f->awaiter) {
    Task *t = f->awaiter;
    f->awaiter = NULL;
    task_wakeup(L, t, 0, f);
  }
  if (!f->hascb) return;
  f->hascb = 0;
  if (lua_getiuservalue(L, fidx, FUV_CB) != LUA_TNIL) {
    schedule_one(L, f);
    lua_pushnil(L);
    lua_setiuservalue(L, fidx, FUV_CB);
  } else lua_pop(L, 1);
  if (future_getx(L, fidx, FX_CBS) == LUA_TTABLE) {
    lua_Integer i, n = luaL_len(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      schedule_one(L, f);
    }
    lua_pushnil(L);
    future_setx(L, fidx, FX_CBS);
  }
  lua_pop(L, 1);
}

/* Finish with the n values from index first on (nils included). */
void future_set_results(lua_State *L, Future *f, int fidx, int first, int n) {
  fidx = lua_absindex(L, fidx);
  if (n == 1) {
    lua_pushvalue(L, first);
    lua_setiuservalue(L, fidx, FUV_VALUE);
  } else if (n > 1) {
    int i;
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
      lua_pushvalue(L, first + i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setiuservalue(L, fidx, FUV_VALUE);
  }
  f->nres = n;
  f->state = F_FINISHED;
  schedule_callbacks(L, f, fidx);
}

/* Finish with the error at erridx and the traceback at tbidx (0: none). */
void future_set_error(lua_State *L, Future *f, int fidx, int erridx,
                      int tbidx) {
  fidx = lua_absindex(L, fidx);
  lua_pushvalue(L, erridx);
  lua_setiuservalue(L, fidx, FUV_VALUE);
  if (tbidx) {
    lua_pushvalue(L, tbidx);
    future_setx(L, fidx, FX_TB);
  }
  f->state = F_FINISHED;
  f->failed = 1;
  lua_pushvalue(L, fidx);
  lasync_setmt(L, f->loop->mod, f->kind == K_TASK ? K_FTASK : K_FFUTURE);
  lua_pop(L, 1);
  lua_getiuservalue(L, fidx, FUV_LOOP);
  lua_getiuservalue(L, -1, LUV_FAILED);
  lua_pushvalue(L, fidx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 2);
  schedule_callbacks(L, f, fidx);
}

/* Cancel with the message at msgidx; false if it was already done. */
int future_cancel(lua_State *L, Future *f, int fidx, int msgidx) {
  if (f->state != F_PENDING) return 0;
  fidx = lua_absindex(L, fidx);
  lua_pushvalue(L, msgidx);
  lua_setiuservalue(L, fidx, FUV_VALUE);
  f->state = F_CANCELLED;
  schedule_callbacks(L, f, fidx);
  return 1;
}

static int raise_cancelled(lua_State *L, int fidx) {
  lua_getiuservalue(L, fidx, FUV_VALUE);
  errors_push_newv(L, "CancelledError", -1);
  return lua_error(L);
}

/* The future whose error future_unpack raised again last (by await or
** result), held weakly in a table in the registry, for core._reraised. */
static const char reraised_key = 0;

static void note_reraised(lua_State *L, int fidx) {
  fidx = lua_absindex(L, fidx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &reraised_key);
  lua_pushvalue(L, fidx);
  lua_rawseti(L, -2, 1);
  lua_pop(L, 1);
}

/* core._reraised(err): the future whose error the last await or result()
** raised again, if that error is err; else nothing. How `lasync` finds
** the failed task whose traceback to show beside the error. */
static int l_reraised(lua_State *L) {
  lua_settop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &reraised_key);
  if (lua_rawgeti(L, 2, 1) != LUA_TUSERDATA) return 0;
  lua_getiuservalue(L, 3, FUV_VALUE);
  if (!lua_rawequal(L, 1, 4)) return 0;
  lua_settop(L, 3);
  return 1;
}

/* Push the results (returning their count) or raise the error. */
int future_unpack(lua_State *L, Future *f, int fidx) {
  switch (f->state) {
    case F_PENDING:
      return errors_raise(L, "InvalidStateError", "result is not set");
    case F_CANCELLED:
      return raise_cancelled(L, fidx);
  }
  if (f->failed) {
    f->retrieved = 1;
    note_reraised(L, fidx);
    lua_getiuservalue(L, fidx, FUV_VALUE);
    return lua_error(L);
  }
  if (f->nres == 0) return 0;
  lua_getiuservalue(L, fidx, FUV_VALUE);
  if (f->nres > 1) {
    int i, t = lua_gettop(L);
    luaL_checkstack(L, f->nres, "too many results");
    for (i = 1; i <= f->nres; i++) lua_rawgeti(L, t, i);
    lua_remove(L, t);
  }
  return f->nres;
}

/* Push a new future on lp, added to the list (a table made when needed)
** in user value uv of the object at objidx: one future per waiter, so that
** cancelling one waiter leaves the others waiting. */
Future *future_list_push(lua_State *L, Loop *lp, int objidx, int uv) {
  Future *f;
  objidx = lua_absindex(L, objidx);
  if (lua_getiuservalue(L, objidx, uv) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, objidx, uv);
  }
  f = future_new(L, lp, K_FUTURE, sizeof(Future), FUV_NUV);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, luaL_len(L, -3) + 1);
  lua_remove(L, -2);
  return f;
}

/* Does the list of future_list_push hold a future still pending? */
int future_list_pending(lua_State *L, int objidx, int uv) {
  lua_Integer i, n;
  int any = 0;
  if (lua_getiuservalue(L, objidx, uv) == LUA_TTABLE) {
    n = luaL_len(L, -1);
    for (i = 1; i <= n && !any; i++) {
      lua_rawgeti(L, -1, i);
      any = ((Future *)lua_touserdata(L, -1))->state == F_PENDING;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return any;
}

/* Finish (with no results) the futures still pending in the list of
** future_list_push, which is emptied. */
void future_list_finish(lua_State *L, int objidx, int uv) {
  lua_Integer i, n;
  objidx = lua_absindex(L, objidx);
  if (lua_getiuservalue(L, objidx, uv) == LUA_TTABLE) {
    lua_pushnil(L);
    lua_setiuservalue(L, objidx, uv);
    n = luaL_len(L, -1);
    for (i = 1; i <= n; i++) {
      Future *f;
      lua_rawgeti(L, -1, i);
      f = lua_touserdata(L, -1);
      if (f->state == F_PENDING) future_set_results(L, f, -1, 0, 0);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* Add the callback (function or waiting Task) at cbidx; FIFO order. */
void future_add_callback(lua_State *L, Future *f, int fidx, int cbidx) {
  int more;
  f->hascb = 1;
  cbidx = lua_absindex(L, cbidx);
  lua_getiuservalue(L, fidx, FUV_CB);
  more = future_getx(L, fidx, FX_CBS) == LUA_TTABLE;
  if (lua_isnil(L, -2) && (!more || luaL_len(L, -1) == 0)) {
    lua_pushvalue(L, cbidx);
    lua_setiuservalue(L, fidx, FUV_CB);
  } else {
    if (!more) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      future_setx(L, fidx, FX_CBS);
    }
    lua_pushvalue(L, cbidx);
    lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  }
  lua_pop(L, 2);
}

/* Add the task t (at tidx) as a waiter: the first one is a C pointer
** (the loop anchors a waiting task), so awaiting touches no user value. */
void future_add_awaiter(lua_State *L, Future *f, int fidx, Task *t, int tidx) {
  if (f->awaiter == NULL) f->awaiter = t;
  else future_add_callback(L, f, fidx, tidx);
}

void future_report_unretrieved(lua_State *L, Future *f, int fidx) {
  if (!f->failed || f->retrieved || f->reported) return;
  f->reported = 1;
  fidx = lua_absindex(L, fidx);
  lua_getiuservalue(L, fidx, FUV_VALUE);
  future_getx(L, fidx, FX_TB);
  loop_report_error(L, f->loop, f->kind == K_TASK
                    ? "Task exception was never retrieved"
                    : "Future exception was never retrieved",
                    -2, fidx, "future", -1);
  lua_pop(L, 2);
}

/* ---------- Lua methods ---------- */

static Future *checkplain(lua_State *L) {
  Future *f = future_check(L, 1);
  if (f->kind == K_TASK)
    luaL_error(L, "a Task's result is set by its function, not by callers");
  return f;
}

static int l_set_result(lua_State *L) {
  Future *f = checkplain(L);
  if (f->state != F_PENDING)
    return errors_raise(L, "InvalidStateError", "future is already %s",
                        future_state_name(f));
  future_set_results(L, f, 1, 2, lua_gettop(L) - 1);
  return 0;
}

static int l_set_exception(lua_State *L) {
  Future *f = checkplain(L);
  luaL_checkany(L, 2);
  luaL_argcheck(L, !lua_isnil(L, 2), 2, "error value expected, got nil");
  if (f->state != F_PENDING)
    return errors_raise(L, "InvalidStateError", "future is already %s",
                        future_state_name(f));
  future_set_error(L, f, 1, 2, 0);
  return 0;
}

/* core._future_fail(f, err): set_exception that takes nil too (there a
** misuse), for the combinators, which must pass a child's error(nil) on
** as it was. */
static int l_future_fail(lua_State *L) {
  Future *f = checkplain(L);
  lua_settop(L, 2);
  luaL_argcheck(L, f->state == F_PENDING, 1, "pending future expected");
  future_set_error(L, f, 1, 2, 0);
  return 0;
}

static int l_result(lua_State *L) {
  return future_unpack(L, future_check(L, 1), 1);
}

static int l_exception(lua_State *L) {
  Future *f = future_check(L, 1);
  if (f->state == F_PENDING)
    return errors_raise(L, "InvalidStateError", "exception is not set");
  if (f->state == F_CANCELLED) return raise_cancelled(L, 1);
  if (!f->failed) return 0;
  f->retrieved = 1;
  lua_getiuservalue(L, 1, FUV_VALUE);
  return 1;
}

static int l_done(lua_State *L) {
  lua_pushboolean(L, future_check(L, 1)->state != F_PENDING);
  return 1;
}

static int l_cancelled(lua_State *L) {
  lua_pushboolean(L, future_check(L, 1)->state == F_CANCELLED);
  return 1;
}

static int l_cancel(lua_State *L) {
  Future *f = future_check(L, 1);
  lua_settop(L, 2);
  lua_pushboolean(L, future_cancel(L, f, 1, 2));
  return 1;
}

/* The Handle that will run fn(f) is made at once, so that fn runs in the
** context of this call, as in asyncio. */
static int l_add_done_callback(lua_State *L) {
  Future *f = future_check(L, 1);
  lasync_checkcallable(L, 2, "function");
  lua_settop(L, 2);
  lua_pushvalue(L, 1);
  if (f->state != F_PENDING) handle_call_soon(L, f->loop, 2, 1);
  else {
    handle_new(L, f->loop, K_HANDLE, 2, 1);
    future_add_callback(L, f, 1, -1);
  }
  return 0;
}

/* Is the callback at idx the Handle of a registration of the function at
** 2 (and not a waiting Task)? */
static int is_registration(lua_State *L, int idx) {
  int eq;
  if (lasync_toobj(L, idx, K_HANDLE) == NULL) return 0;
  lua_getiuservalue(L, idx, 1);
  eq = lua_rawequal(L, -1, 2);
  lua_pop(L, 1);
  return eq;
}

/* Remove every registration of the function at 2 from the list at the top
** (rebuilt in place); returns how many were removed. */
static int remove_from_list(lua_State *L, int t) {
  lua_Integer i, j = 1, n = luaL_len(L, t);
  int removed = 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    if (is_registration(L, -1)) {
      removed++;
      lua_pop(L, 1);
    } else lua_rawseti(L, t, j++);
  }
  for (; j <= n; j++) {
    lua_pushnil(L);
    lua_rawseti(L, t, j);
  }
  return removed;
}

static int l_remove_done_callback(lua_State *L) {
  int removed = 0;
  future_check(L, 1);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  if (lua_getiuservalue(L, 1, FUV_CB) != LUA_TNIL && is_registration(L, -1)) {
    removed++;
    lua_pushnil(L);
    lua_setiuservalue(L, 1, FUV_CB);
  }
  if (future_getx(L, 1, FX_CBS) == LUA_TTABLE)
    removed += remove_from_list(L, lua_gettop(L));
  lua_pushinteger(L, removed);
  return 1;
}

static int l_get_loop(lua_State *L) {
  future_check(L, 1);
  lua_getiuservalue(L, 1, FUV_LOOP);
  return 1;
}

static int l_traceback(lua_State *L) {
  future_check(L, 1);
  future_getx(L, 1, FX_TB);
  return 1;
}

static int l_tostring(lua_State *L) {
  Future *f = future_check(L, 1);
  lua_pushfstring(L, "<Future %s>", future_state_name(f));
  return 1;
}

static int l_gc(lua_State *L) {
  future_report_unretrieved(L, future_check(L, 1), 1);
  return 0;
}

/* core.Future(): a future on the running loop. */
static int l_new(lua_State *L) {
  future_new(L, lasync_running(L, lasync_mod(L)), K_FUTURE, sizeof(Future),
             FUV_NUV);
  return 1;
}

static int l_create_future(lua_State *L) {
  Loop *lp = lasync_checkobj(L, 1, K_LOOP, "loop");
  future_new(L, lp, K_FUTURE, sizeof(Future), FUV_NUV);
  return 1;
}

/* core._futures_made(): Futures and Tasks made so far in this state, however
** made (a test hook: specs check that a path makes none). */
static int l_futures_made(lua_State *L) {
  lua_pushinteger(L, lasync_mod(L)->futures_made);
  return 1;
}

static int l_is_future(lua_State *L) {
  lua_pushboolean(L, lasync_toobj(L, 1, K_FUTURE) != NULL);
  return 1;
}

const luaL_Reg lasync_future_methods[] = {
  {"set_result", l_set_result},
  {"set_exception", l_set_exception},
  {"result", l_result},
  {"exception", l_exception},
  {"done", l_done},
  {"cancelled", l_cancelled},
  {"cancel", l_cancel},
  {"add_done_callback", l_add_done_callback},
  {"remove_done_callback", l_remove_done_callback},
  {"get_loop", l_get_loop},
  {"traceback", l_traceback},
  {NULL, NULL}
};

static const luaL_Reg future_meta[] = {
  {"__tostring", l_tostring},
  {"__gc", l_gc},
  {NULL, NULL}
};

static const luaL_Reg future_funcs[] = {
  {"Future", l_new},
  {"is_future", l_is_future},
  {"_future_fail", l_future_fail},
  {"_reraised", l_reraised},
  {"_futures_made", l_futures_made},
  {NULL, NULL}
};

static const luaL_Reg loop_methods[] = {
  {"create_future", l_create_future},
  {NULL, NULL}
};

void future_register(lua_State *L) {
  lua_createtable(L, 1, 0);  /* weak: it must keep no future alive */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &reraised_key);
  lasync_newmeta(L, K_FUTURE, lasync_future_methods, future_meta);
  lasync_addfuncs(L, future_funcs);
  lasync_addmethods(L, K_LOOP, loop_methods);
}
