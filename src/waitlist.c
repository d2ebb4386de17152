/*
** WaitLists, the lists of parked tasks that lasync.sync and lasync.queues
** keep (see task_park in task.c), and lasync.Event, a flag and a WaitList
** written in C. In Lua a WaitList (core._WaitList()) is an object:
** w:park(what, taken), w:unpark(n), w:unpark_next(), w:unpark_first(),
** w:first(), w:count(live), w:list() and #w; in C, the waitlist_*
** functions below.
*/
#include <string.h>
#include "lasync.h"

/* A WaitList holds the tasks parked in it, in the order they came: its user
** value is a table tt[head .. tail] = task, or false (a tombstone) where one
** left from the middle; n counts the tasks. Both ends are tasks unless it is
** empty, and an empty list starts again at 1. The positions live in C: a
** field of a Lua table costs ~100 instructions to read or write from C, and
** a wait touched five of them. A list that never empties (two tasks
** taking turns on a Lock) would use ever new integer keys, and its table
** rehash at nearly every wait: a task parking behind a few tasks sitting
** past 1 moves them back to 1 first, so a parked task finds itself where
** it was put, or lower. */
/* (struct WaitList is in lasync.h: queue.c reads n.) */

#define LIST_MOVE 4  /* at most this many tasks are moved back */

static WaitList *checklist(lua_State *L) {
  return lasync_checkobj(L, 1, K_WAITLIST, "WaitList");
}

/* Push the table of the list at idx, made on first use. */
static void push_tasks(lua_State *L, int idx) {
  if (lua_getiuservalue(L, idx, 1) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 4, 0);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 1);
}

static void tt_clear(lua_State *L, int tt, lua_Integer i) {
  lua_pushnil(L);
  lua_rawseti(L, tt, i);
}

static int tt_tombstone(lua_State *L, int tt, lua_Integer i) {
  int type = lua_rawgeti(L, tt, i);
  lua_pop(L, 1);
  return type == LUA_TBOOLEAN;
}

/* The task at i leaves the list (its table at tt). */
static void list_leave(lua_State *L, WaitList *wl, int tt, lua_Integer i) {
  if (--wl->n == 0) {
    tt_clear(L, tt, i);
    wl->head = 1;
    wl->tail = 0;
  } else if (i == wl->head) {
    do tt_clear(L, tt, i++); while (tt_tombstone(L, tt, i));
    wl->head = i;
  } else if (i == wl->tail) {
    do tt_clear(L, tt, i--); while (tt_tombstone(L, tt, i));
    wl->tail = i;
  } else {
    lua_pushboolean(L, 0);
    lua_rawseti(L, tt, i);
  }
}

/* The task at tidx leaves the list at widx, where it was put at i: it is
** there, or lower if the list was packed, or gone if a waker took it off. */
static void list_leave_at(lua_State *L, int widx, lua_Integer i, int tidx) {
  WaitList *wl = lua_touserdata(L, widx);
  int tt;
  if (wl->n == 0) return;
  push_tasks(L, widx);
  tt = lua_gettop(L);
  if (i > wl->tail) i = wl->tail;
  for (; i >= wl->head; i--) {
    int found = lua_rawgeti(L, tt, i) == LUA_TUSERDATA &&
                lua_rawequal(L, -1, tidx);
    lua_pop(L, 1);
    if (found) {
      list_leave(L, wl, tt, i);
      break;
    }
  }
  lua_pop(L, 1);
}

/* The entries of a list are tasks that park put there, or false: so
** lua_touserdata (NULL for false) tells them apart. */

/* Append the value at the top (popped) to the list, table at tt; returns
** its index. */
static lua_Integer list_append(lua_State *L, WaitList *wl, int tt) {
  if (wl->n > 0 && wl->head > 1 && wl->tail - wl->head < LIST_MOVE) {
    lua_Integer i, d = wl->head - 1;
    for (i = wl->head; i <= wl->tail; i++) {
      lua_rawgeti(L, tt, i);
      lua_rawseti(L, tt, i - d);
      tt_clear(L, tt, i);
    }
    wl->head = 1;
    wl->tail -= d;
  }
  wl->n++;
  lua_rawseti(L, tt, ++wl->tail);
  return wl->tail;
}

/* Park the running task t (not on the stack) at the tail of the list at
** widx: its userdata is pushed (at the top of the stack while it waits),
** then it parks; k runs when it resumes, with ctx its index in the list
** for waitlist_resumed. */
int waitlist_park(lua_State *L, int widx, Task *t, const char *what,
                  lua_KFunction k) {
  lua_Integer i;
  int tidx;
  loop_push_anchored(L, t->f.loop, t);
  tidx = lua_gettop(L);
  push_tasks(L, widx);
  lua_pushvalue(L, tidx);
  i = list_append(L, lua_touserdata(L, widx), tidx + 1);
  lua_settop(L, tidx);
  return task_park(L, t, what, NULL, NULL, (lua_KContext)i, k);
}

/* In the continuation of waitlist_park (w at widx, the task at tidx, what
** the resume passed after it; ctx the task's index in w): the task leaves
** w unless taken and woken (then a waker took it off already); returns
** what task_unparked does, with the value or the error pushed. */
int waitlist_resumed(lua_State *L, int widx, int tidx, int taken,
                     lua_KContext ctx, int *woken) {
  Task *t = lua_touserdata(L, tidx);
  int st;
  if (task_stray_resume(L, t, tidx + 1))  /* task_unparked raises */
    list_leave_at(L, widx, (lua_Integer)ctx, tidx);
  st = task_unparked(L, t, tidx, tidx + 1, woken);
  if (!taken || st != P_WOKEN)
    list_leave_at(L, widx, (lua_Integer)ctx, tidx);
  return st;
}

/* Park in the list at 1 (what: for dump_tasks); the stack is w, what,
** taken. */
static int list_park(lua_State *L, Task *t, const char *what,
                     lua_KFunction k) {
  lua_settop(L, 3);
  return waitlist_park(L, 1, t, what, k);
}

/* In the continuation of list_park (the stack: w, what, taken, the task,
** what the resume passed). */
static int list_resumed(lua_State *L, lua_KContext ctx, int *woken) {
  return waitlist_resumed(L, 1, 4, lua_toboolean(L, 3), ctx, woken);
}

/* Unpark up to n tasks of the list at widx not woken nor cancelled yet. */
lua_Integer waitlist_unpark(lua_State *L, int widx, lua_Integer n) {
  WaitList *wl = lua_touserdata(L, widx);
  lua_Integer woken = 0, i;
  if (wl->n == 0) return 0;
  push_tasks(L, widx);
  for (i = wl->head; i <= wl->tail && woken < n; i++) {
    Task *t;
    lua_rawgeti(L, -1, i);
    t = lua_touserdata(L, -1);
    if (t && task_unpark(L, t, 0, 0)) woken++;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return woken;
}

/* w:park: stack is w, what, taken, the task, what the resume passed; ctx
** is the task's index in w. */
static int park_k(lua_State *L, int status, lua_KContext ctx) {
  int woken, st = list_resumed(L, ctx, &woken);
  (void)status;
  lua_pushboolean(L, st == P_WOKEN);
  lua_insert(L, -2);
  if (st == P_WOKEN) return 2;
  lua_pushboolean(L, woken);
  return 3;
}

/* w:park(what, taken): the running task parks at the tail of w until
** unparked or cancelled, and returns as core._park does. Then it leaves w,
** unless taken: wakers take parked tasks off (unpark_next) and it leaves
** only if still in w. what names the caller in the error raised (before
** anything was listed) outside a task. */
static int l_park(lua_State *L) {
  Task *t;
  checklist(L);
  t = task_running_as(L, 2, "park");
  return list_park(L, t, "waitlist", park_k);
}

/* w:unpark(n): unparks up to n (default 1) tasks of w, the first not
** woken nor cancelled yet, in order; they stay in w (each leaves it when
** it runs). Returns how many were woken. */
static int l_unpark(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 2, 1);
  checklist(L);
  lua_pushinteger(L, waitlist_unpark(L, 1, n));
  return 1;
}

/* Take tasks off the head of the list at widx until one not woken nor
** cancelled yet is unparked: then it is pushed and 1 returned; else 0
** (the list is empty), nothing pushed. */
int waitlist_unpark_next(lua_State *L, int widx) {
  WaitList *wl = lua_touserdata(L, widx);
  int tt;
  if (wl->n == 0) return 0;
  push_tasks(L, widx);
  tt = lua_gettop(L);
  while (wl->n > 0) {
    Task *t;
    lua_rawgeti(L, tt, wl->head);
    list_leave(L, wl, tt, wl->head);
    t = lua_touserdata(L, -1);
    if (t && task_unpark(L, t, 0, 0)) {
      lua_remove(L, tt);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* w:unpark_next(): takes tasks off the head of w until one not woken
** nor cancelled yet is unparked; returns it, or nothing (w is empty). */
static int l_unpark_next(lua_State *L) {
  checklist(L);
  lua_settop(L, 1);
  return waitlist_unpark_next(L, 1);
}

/* w:unpark_first(): unparks the first task of w if it was not woken
** nor cancelled yet (asyncio's Lock._wake_up_first); returns it if so. */
static int l_unpark_first(lua_State *L) {
  WaitList *wl = checklist(L);
  Task *t;
  if (wl->n == 0) return 0;
  push_tasks(L, 1);
  lua_rawgeti(L, -1, wl->head);
  t = lua_touserdata(L, -1);
  return t && task_unpark(L, t, 0, 0);
}

/* w:first(): the first task of w, or nothing. */
static int l_first(lua_State *L) {
  WaitList *wl = checklist(L);
  if (wl->n == 0) return 0;
  push_tasks(L, 1);
  lua_rawgeti(L, -1, wl->head);
  return 1;
}

/* w:count(live): how many tasks are in w; with live, those not cancelled
** (a cancelled one stays until it ran). */
static int l_count(lua_State *L) {
  WaitList *wl = checklist(L);
  lua_Integer n = 0, i;
  if (!lua_toboolean(L, 2) || wl->n == 0) {
    lua_pushinteger(L, wl->n);
    return 1;
  }
  push_tasks(L, 1);
  for (i = wl->head; i <= wl->tail; i++) {
    Task *t;
    lua_rawgeti(L, -1, i);
    t = lua_touserdata(L, -1);
    if (t && t->park != P_CANCELLED) n++;
    lua_pop(L, 1);
  }
  lua_pushinteger(L, n);
  return 1;
}

/* w:list(): a copy of w for inspection, {head = h, tail = t, [h .. t] =
** task or false}. */
static int l_list(lua_State *L) {
  WaitList *wl = checklist(L);
  lua_Integer i;
  lua_settop(L, 1);
  push_tasks(L, 1);
  lua_createtable(L, 0, 2);
  for (i = wl->head; i <= wl->tail; i++) {
    lua_rawgeti(L, 2, i);
    lua_rawseti(L, 3, i);
  }
  lua_pushinteger(L, wl->head);
  lua_setfield(L, 3, "head");
  lua_pushinteger(L, wl->tail);
  lua_setfield(L, 3, "tail");
  return 1;
}

/* core._WaitList(): an empty list. */
int waitlist_new(lua_State *L) {
  WaitList *wl = lua_newuserdatauv(L, sizeof(WaitList), 1);
  memset(wl, 0, sizeof *wl);
  wl->magic = LASYNC_MAGIC;
  wl->kind = K_WAITLIST;
  wl->head = 1;
  lasync_setmt(L, lasync_mod(L), K_WAITLIST);
  return 1;
}

static int l_waitlist_len(lua_State *L) {
  lua_pushinteger(L, checklist(L)->n);
  return 1;
}

static int l_waitlist_tostring(lua_State *L) {
  lua_pushfstring(L, "<WaitList n=%I>", (lua_Integer)checklist(L)->n);
  return 1;
}

/* ---------- Event: a flag and a WaitList ---------- */

/* lasync.Event (docs/reference.md §7) in C: the hot path of a wake-up is then three
** C method calls, with no Lua body and no self check through a table. */
typedef struct SyncEvent {
  OBJ_HEAD;                      /* K_EVENT; slot and loop unused */
  int value;
} SyncEvent;
/* Its user value: the WaitList of the tasks waiting. */

/* The Event at 1, or an error naming the method, at the caller's line. */
static SyncEvent *check_event(lua_State *L, const char *method) {
  SyncEvent *e = lasync_toobj(L, 1, K_EVENT);
  const char *got;
  if (e) return e;
  if (luaL_getmetafield(L, 1, "__name") == LUA_TSTRING)
    got = lua_tostring(L, -1);
  else got = lua_isnoneornil(L, 1) ? "nil" : luaL_typename(L, 1);
  luaL_error(L, "calling '%s' on bad self (Event expected, got %s)", method,
             got);
  return NULL;
}

/* Event(): unset, nobody waiting. */
static int l_event_new(lua_State *L) {
  SyncEvent *e = lua_newuserdatauv(L, sizeof(SyncEvent), 1);
  memset(e, 0, sizeof *e);
  e->magic = LASYNC_MAGIC;
  e->kind = K_EVENT;
  lasync_setmt(L, lasync_mod(L), K_EVENT);
  waitlist_new(L);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int l_event_is_set(lua_State *L) {
  lua_pushboolean(L, check_event(L, "is_set")->value);
  return 1;
}

/* event:set(): sets the flag and wakes every task waiting. */
static int l_event_set(lua_State *L) {
  SyncEvent *e = check_event(L, "set");
  if (e->value) return 0;
  e->value = 1;
  lua_getiuservalue(L, 1, 1);
  waitlist_unpark(L, lua_gettop(L), LUA_MAXINTEGER);
  return 0;
}

static int l_event_clear(lua_State *L) {
  check_event(L, "clear")->value = 0;
  return 0;
}

/* event:wait(): stack is w, what, taken, the task, what the resume
** passed. */
static int event_wait_k(lua_State *L, int status, lua_KContext ctx) {
  int woken;
  (void)status;
  if (list_resumed(L, ctx, &woken) != P_WOKEN) return lua_error(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* event:wait(): true at once if the flag is set, else when set() is
** called (the task parks in the Event's list meanwhile). */
static int l_event_wait(lua_State *L) {
  SyncEvent *e = check_event(L, "wait");
  Task *t;
  if (e->value) {
    lua_pushboolean(L, 1);
    return 1;
  }
  t = task_running(L, "wait");
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 1);
  lua_replace(L, 1);  /* the stack list_park wants: w, what, taken */
  lua_pushnil(L);
  lua_pushboolean(L, 0);
  return list_park(L, t, "event", event_wait_k);
}

static int l_event_tostring(lua_State *L) {
  SyncEvent *e = check_event(L, "__tostring");
  WaitList *wl;
  lua_getiuservalue(L, 1, 1);
  wl = lua_touserdata(L, -1);
  if (wl->n > 0)
    lua_pushfstring(L, "<Event [%s, waiters:%I]>", e->value ? "set" : "unset",
                    (lua_Integer)wl->n);
  else lua_pushfstring(L, "<Event [%s]>", e->value ? "set" : "unset");
  return 1;
}

static const luaL_Reg waitlist_funcs[] = {
  {"_WaitList", waitlist_new},
  {"Event", l_event_new},
  {NULL, NULL}
};

static const luaL_Reg waitlist_methods[] = {
  {"park", l_park},
  {"unpark", l_unpark},
  {"unpark_next", l_unpark_next},
  {"unpark_first", l_unpark_first},
  {"first", l_first},
  {"count", l_count},
  {"list", l_list},
  {NULL, NULL}
};

static const luaL_Reg waitlist_meta[] = {
  {"__len", l_waitlist_len},
  {"__tostring", l_waitlist_tostring},
  {NULL, NULL}
};

static const luaL_Reg event_methods[] = {
  {"is_set", l_event_is_set},
  {"set", l_event_set},
  {"clear", l_event_clear},
  {"wait", l_event_wait},
  {NULL, NULL}
};

static const luaL_Reg event_meta[] = {
  {"__tostring", l_event_tostring},
  {NULL, NULL}
};

void waitlist_register(lua_State *L) {
  lasync_addfuncs(L, waitlist_funcs);
  lasync_newmeta(L, K_WAITLIST, waitlist_methods, waitlist_meta);
  lasync_newmeta(L, K_EVENT, event_methods, event_meta);
  luaL_getmetatable(L, "lasync.Event");  /* named as the Lua classes are */
  lua_pushliteral(L, "Event");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}
