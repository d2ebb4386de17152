/*
** The queues of docs/reference.md §7 in C: Queue (first in, first out), LifoQueue
** (last in, first out) and PriorityQueue (least first, by a `less`
** function called from here). One implementation for the three; only the
** storage differs (store_put, store_take). lua/lasync/queues.lua checks
** the constructors' arguments and calls core.new_queue.
**
** The algorithms are those of Python asyncio's queues.py (3.13, with
** shutdown): putters wait while the queue is full, getters while it is
** empty, each woken in the order it began to wait. A getter or putter that
** is cancelled (or timed out) leaves no trace: no item is lost, taken twice
** or added, and a wake-up already handed to it passes on to the next in
** line. nil cannot be put in a queue (it could not be told from "no
** item"); any other value can, false included.
**
** put() on a queue that is not full and get() on one that is not empty
** allocate nothing (beyond the queue's own storage), and a task that must
** wait makes no Future either: it parks in the queue's WaitList of getters,
** putters or joiners until woken or cancelled.
**
** Method lookup: a userdata whose __index is a C function costs ~350
** instructions per lookup, one whose __index is a table far less, and
** each further __index hop ~90 more. So each queue has a small metatable
** of its own, which is also its __index table: it holds the methods
** (copied from the shared table "lasync.Queue".__methods: the closures
** are shared, not made per queue), maxsize (readable as q.maxsize), the
** waiter lists (q._getters, q._putters, q._joiners, for inspection),
** __name and __tostring.
**
** `less` is called with lua_call: it must not yield (it never had a
** reason to).
*/
#include <string.h>
#include "lasync.h"

enum { Q_FIFO, Q_LIFO, Q_HEAP };

static const char *const class_names[] = {"Queue", "LifoQueue",
                                          "PriorityQueue"};

typedef struct LQueue {
  OBJ_HEAD;                      /* K_QUEUE; slot and loop unused */
  int type;                      /* Q_FIFO, Q_LIFO or Q_HEAP */
  int shutdown;
  lua_Integer maxsize;           /* 0: unbounded */
  lua_Integer n;                 /* items held */
  lua_Integer head;              /* Q_FIFO: index of the first item */
  lua_Integer unfinished;        /* items put and not marked done */
  WaitList *getters, *putters, *joiners;  /* in QUV_* below */
} LQueue;

/* Queue user values. Items: Q_FIFO items[head .. head + n - 1], starting
** again at 1 when empty; Q_LIFO a stack items[1 .. n]; Q_HEAP a binary heap
** items[1 .. n] ordered by QUV_LESS (nil: the < operator). */
enum { QUV_ITEMS = 1, QUV_GETTERS, QUV_PUTTERS, QUV_JOINERS, QUV_LESS,
       QUV_NUV = QUV_LESS };

static int is_full(const LQueue *q) {
  return q->maxsize > 0 && q->n >= q->maxsize;
}

/* The name an error message shows for the value at idx: its metatable's
** __name if a string, else its type. */
static const char *typename_of(lua_State *L, int idx) {
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
    return lua_tostring(L, -1);
  return lua_isnoneornil(L, idx) ? "nil" : luaL_typename(L, idx);
}

/* The kind of a PriorityQueue while its less runs: every method refuses
** it, at no cost to their usual check. */
#define IN_LESS (-1)

/* The queue at 1, or an error naming the method, at the caller's line.
** Two API calls, not lasync_toobj's three: it runs at every call. A light
** userdata has length 0. */
static LQueue *check_queue(lua_State *L, const char *method) {
  LQueue *q = lua_touserdata(L, 1);
  if (q && lua_rawlen(L, 1) == sizeof(LQueue) && q->magic == LASYNC_MAGIC) {
    if (q->kind == K_QUEUE) return q;
    if (q->kind == IN_LESS)  /* the heap is half moved */
      luaL_error(L, "%s: a PriorityQueue's less must not use the queue",
                 method);
  }
  luaL_error(L, "calling '%s' on bad self (queue expected, got %s)", method,
             typename_of(L, 1));
  return NULL;
}

static int shut_down(lua_State *L) {
  return errors_raise(L, "QueueShutDown", "Queue is shut down");
}

/* ---------- storage ---------- */

/* less(a, b) for the values at ai and bi: the queue's function (at
** lessidx), or the < operator when it is nil. Either may raise. The
** queue refuses to be used meanwhile. */
static int less(lua_State *L, LQueue *q, int lessidx, int ai, int bi) {
  int r;
  if (lua_isnil(L, lessidx)) return lua_compare(L, ai, bi, LUA_OPLT);
  lua_pushvalue(L, lessidx);
  lua_pushvalue(L, ai);
  lua_pushvalue(L, bi);
  q->kind = IN_LESS;
  r = lua_pcall(L, 2, 1, 0);
  q->kind = K_QUEUE;
  if (r != LUA_OK) lua_error(L);
  r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* Sift the value at vidx up from the new last slot of the heap (items at
** it). Its place is found before anything moves, so a `less` that raises
** leaves the heap as it was. */
static void heap_put(lua_State *L, LQueue *q, int it, int vidx) {
  lua_Integer n = q->n + 1, i = n, j;
  int lessidx;
  lua_getiuservalue(L, 1, QUV_LESS);
  lessidx = lua_gettop(L);
  while (i > 1) {
    int r;
    lua_rawgeti(L, it, i / 2);
    r = less(L, q, lessidx, vidx, lua_gettop(L));
    lua_pop(L, 1);
    if (!r) break;
    i /= 2;
  }
  for (j = n; j > i; j /= 2) {
    lua_rawgeti(L, it, j / 2);
    lua_rawseti(L, it, j);
  }
  lua_pushvalue(L, vidx);
  lua_rawseti(L, it, i);
  lua_pop(L, 1);  /* less */
  q->n = n;
}

/* Take the least item (pushed): the last one goes down from the root to
** its place. As in heap_put, the place is found before anything moves. */
static void heap_take(lua_State *L, LQueue *q, int it) {
  lua_Integer n = q->n - 1, i = 1, k;
  int depth = 0, shift, lessidx, top, last;
  lua_getiuservalue(L, 1, QUV_LESS);
  lessidx = lua_gettop(L);
  lua_rawgeti(L, it, 1);
  top = lua_gettop(L);
  lua_rawgeti(L, it, n + 1);
  last = lua_gettop(L);
  for (;;) {
    lua_Integer c = 2 * i;
    int r;
    if (c > n) break;
    if (c < n) {
      lua_rawgeti(L, it, c + 1);
      lua_rawgeti(L, it, c);
      r = less(L, q, lessidx, lua_gettop(L) - 1, lua_gettop(L));
      lua_pop(L, 2);
      if (r) c++;
    }
    lua_rawgeti(L, it, c);
    r = less(L, q, lessidx, lua_gettop(L), last);
    lua_pop(L, 1);
    if (!r) break;
    i = c;
  }
  /* The items on the way from the root to i (its ancestors) move up. */
  for (k = i; k > 1; k /= 2) depth++;
  for (shift = depth - 1; shift >= 0; shift--) {
    lua_Integer p = i >> shift;
    lua_rawgeti(L, it, p);
    lua_rawseti(L, it, p >> 1);
  }
  lua_pushnil(L);
  lua_rawseti(L, it, n + 1);
  if (n > 0) {
    lua_pushvalue(L, last);
    lua_rawseti(L, it, i);
  }
  q->n = n;
  lua_settop(L, top);
  lua_remove(L, lessidx);
}

/* Store the value at vidx (items at it). */
static void store_put(lua_State *L, LQueue *q, int it, int vidx) {
  switch (q->type) {
    case Q_FIFO:
      lua_pushvalue(L, vidx);
      lua_rawseti(L, it, q->head + q->n);
      q->n++;
      break;
    case Q_LIFO:
      lua_pushvalue(L, vidx);
      lua_rawseti(L, it, ++q->n);
      break;
    default:
      heap_put(L, q, it, vidx);
  }
}

/* Take an item (pushed; the queue is not empty; items at it). */
static void store_take(lua_State *L, LQueue *q, int it) {
  lua_Integer i;
  switch (q->type) {
    case Q_FIFO:
      i = q->head;
      q->head = --q->n == 0 ? 1 : i + 1;
      break;
    case Q_LIFO:
      i = q->n--;
      break;
    default:
      heap_take(L, q, it);
      return;
  }
  lua_rawgeti(L, it, i);
  lua_pushnil(L);
  lua_rawseti(L, it, i);
}

/* Wake the first waiter of the list (user value uv) still waiting, taking
** it off, and those before it. */
static void wake_next(lua_State *L, int uv) {
  int top = lua_gettop(L);
  lua_getiuservalue(L, 1, uv);
  waitlist_unpark_next(L, top + 1);
  lua_settop(L, top);
}

/* Wake every waiter of the list (user value uv). */
static void wake_all(lua_State *L, int uv, int take) {
  int top = lua_gettop(L);
  lua_getiuservalue(L, 1, uv);
  if (take)
    while (waitlist_unpark_next(L, top + 1)) lua_pop(L, 1);
  else waitlist_unpark(L, top + 1, LUA_MAXINTEGER);
  lua_settop(L, top);
}

/* ---------- put ---------- */

static int put_loop(lua_State *L, LQueue *q);

/* A putter resumed; stack: q, v, putters, the task, what the resume
** passed. */
static int put_k(lua_State *L, int status, lua_KContext ctx) {
  LQueue *q = lua_touserdata(L, 1);
  int woken;
  (void)status;
  if (waitlist_resumed(L, 3, 4, 1, ctx, &woken) != P_WOKEN) {
    int err = lua_gettop(L);
    if (woken && !is_full(q) && waitlist_unpark_next(L, 3))
      lua_settop(L, err);
    return lua_error(L);
  }
  lua_settop(L, 2);
  return put_loop(L, q);
}

/* Stack: q, v (not nil). Wait while full, then store v. */
static int put_loop(lua_State *L, LQueue *q) {
  if (is_full(q)) {
    Task *t;
    if (q->shutdown) return shut_down(L);
    t = task_running(L, "put");
    lua_getiuservalue(L, 1, QUV_PUTTERS);
    return waitlist_park(L, 3, t, "queue put", put_k);
  }
  if (q->shutdown) return shut_down(L);
  lua_getiuservalue(L, 1, QUV_ITEMS);
  store_put(L, q, 3, 2);
  q->unfinished++;
  if (q->getters->n > 0) wake_next(L, QUV_GETTERS);
  return 0;
}

static void check_item(lua_State *L, const char *method) {
  if (lua_isnoneornil(L, 2))
    luaL_error(L, "bad argument #1 to '%s' (a queue item must not be nil)",
               method);
}

/* q:put(v): puts v (not nil) in the queue, first waiting while it is full.
** Raises QueueShutDown once the queue is shut down. */
static int l_put(lua_State *L) {
  LQueue *q = check_queue(L, "put");
  check_item(L, "put");
  if (lua_gettop(L) != 2) lua_settop(L, 2);
  return put_loop(L, q);
}

/* q:put_nowait(v): puts v (not nil) at once; raises QueueFull if the
** queue is full, QueueShutDown once it is shut down. */
static int l_put_nowait(lua_State *L) {
  LQueue *q = check_queue(L, "put_nowait");
  check_item(L, "put_nowait");
  if (is_full(q) && !q->shutdown)
    return errors_raise(L, "QueueFull", "Queue is full");
  lua_settop(L, 2);
  return put_loop(L, q);  /* does not wait: not full, or raises */
}

/* ---------- get ---------- */

static int get_loop(lua_State *L, LQueue *q);

/* A getter resumed; stack: q, getters, the task, what the resume
** passed. */
static int get_k(lua_State *L, int status, lua_KContext ctx) {
  LQueue *q = lua_touserdata(L, 1);
  int woken;
  (void)status;
  if (waitlist_resumed(L, 2, 3, 1, ctx, &woken) != P_WOKEN) {
    int err = lua_gettop(L);
    if (woken && q->n > 0 && waitlist_unpark_next(L, 2))
      lua_settop(L, err);
    return lua_error(L);
  }
  lua_settop(L, 1);
  return get_loop(L, q);
}

/* Stack: q. Wait while empty, then take an item. */
static int get_loop(lua_State *L, LQueue *q) {
  if (q->n == 0) {
    Task *t;
    if (q->shutdown) return shut_down(L);
    t = task_running(L, "get");
    lua_getiuservalue(L, 1, QUV_GETTERS);
    return waitlist_park(L, 2, t, "queue get", get_k);
  }
  lua_getiuservalue(L, 1, QUV_ITEMS);
  store_take(L, q, 2);
  if (q->putters->n > 0) wake_next(L, QUV_PUTTERS);
  return 1;
}

/* q:get(): removes and returns an item, first waiting while the queue is
** empty. Raises QueueShutDown once the queue is shut down and empty. */
static int l_get(lua_State *L) {
  LQueue *q = check_queue(L, "get");
  if (lua_gettop(L) != 1) lua_settop(L, 1);
  return get_loop(L, q);
}

/* q:get_nowait(): removes and returns an item at once; raises QueueEmpty
** if there is none (QueueShutDown if the queue is shut down too). */
static int l_get_nowait(lua_State *L) {
  LQueue *q = check_queue(L, "get_nowait");
  if (q->n == 0 && !q->shutdown)
    return errors_raise(L, "QueueEmpty", "Queue is empty");
  lua_settop(L, 1);
  return get_loop(L, q);  /* does not wait: not empty, or raises */
}

/* ---------- the rest ---------- */

static int l_qsize(lua_State *L) {
  lua_pushinteger(L, check_queue(L, "qsize")->n);
  return 1;
}

static int l_empty(lua_State *L) {
  lua_pushboolean(L, check_queue(L, "empty")->n == 0);
  return 1;
}

static int l_full(lua_State *L) {
  lua_pushboolean(L, is_full(check_queue(L, "full")));
  return 1;
}

/* q:task_done(): an item got was processed; raises if called more times
** than items were put. */
static int l_task_done(lua_State *L) {
  LQueue *q = check_queue(L, "task_done");
  if (q->unfinished <= 0) luaL_error(L, "task_done() called too many times");
  if (--q->unfinished == 0 && q->joiners->n > 0)
    wake_all(L, QUV_JOINERS, 0);
  return 0;
}

/* A joiner resumed; stack: q, joiners, the task, what the resume
** passed. */
static int join_k(lua_State *L, int status, lua_KContext ctx) {
  int woken;
  (void)status;
  if (waitlist_resumed(L, 2, 3, 0, ctx, &woken) != P_WOKEN)
    return lua_error(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* q:join(): waits until every item put was got and marked done; returns
** true. */
static int l_join(lua_State *L) {
  LQueue *q = check_queue(L, "join");
  Task *t;
  if (q->unfinished == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  t = task_running(L, "join");
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, QUV_JOINERS);
  return waitlist_park(L, 2, t, "queue join", join_k);
}

/* q:shutdown(immediate): put() then raises QueueShutDown, get() once the
** queue is empty; immediate empties it first (each item removed counts as
** done). Every getter and putter is woken. */
static int l_shutdown(lua_State *L) {
  LQueue *q = check_queue(L, "shutdown");
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TBOOLEAN)
    luaL_error(L, "bad argument #1 to 'shutdown' (boolean or nil expected, "
               "got %s)", typename_of(L, 2));
  q->shutdown = 1;
  if (lua_toboolean(L, 2)) {
    q->unfinished = q->unfinished > q->n ? q->unfinished - q->n : 0;
    lua_newtable(L);
    lua_setiuservalue(L, 1, QUV_ITEMS);
    q->head = 1;
    q->n = 0;
    if (q->unfinished == 0 && q->joiners->n > 0) wake_all(L, QUV_JOINERS, 0);
  }
  if (q->getters->n > 0) wake_all(L, QUV_GETTERS, 1);
  if (q->putters->n > 0) wake_all(L, QUV_PUTTERS, 1);
  return 0;
}

static int l_tostring(lua_State *L) {
  LQueue *q = lasync_toobj(L, 1, K_QUEUE);
  int parts = 1;
  if (q == NULL) return luaL_error(L, "queue expected");
  lua_pushfstring(L, "<%s maxsize=%I qsize=%I", class_names[q->type],
                  (LUAI_UACINT)q->maxsize, (LUAI_UACINT)q->n);
  if (q->getters->n > 0) {
    lua_pushfstring(L, " getters=%I", (LUAI_UACINT)q->getters->n);
    parts++;
  }
  if (q->putters->n > 0) {
    lua_pushfstring(L, " putters=%I", (LUAI_UACINT)q->putters->n);
    parts++;
  }
  if (q->shutdown) {
    lua_pushliteral(L, " shutdown");
    parts++;
  }
  lua_pushliteral(L, ">");
  lua_concat(L, parts + 1);
  return 1;
}

/* Put a new WaitList in user value uv of the queue at 4 and in its
** metatable (at 5) as field; returns it. */
static WaitList *new_list(lua_State *L, int uv, const char *field) {
  WaitList *wl;
  waitlist_new(L);
  wl = lua_touserdata(L, -1);
  lua_pushvalue(L, -1);
  lua_setfield(L, 5, field);
  lua_setiuservalue(L, 4, uv);
  return wl;
}

/* core.new_queue(type, maxsize, less): type 0 (Queue), 1 (LifoQueue) or 2
** (PriorityQueue); maxsize a non-negative integer; less a function (or
** callable), or nil for <. lasync.queues checks the arguments. Upvalues:
** Mod, the methods, __tostring. */
static int l_new_queue(lua_State *L) {
  lua_Integer type = luaL_checkinteger(L, 1);
  lua_Integer maxsize = luaL_checkinteger(L, 2);
  LQueue *q;
  luaL_argcheck(L, type >= Q_FIFO && type <= Q_HEAP, 1, "bad queue type");
  luaL_argcheck(L, maxsize >= 0, 2, "non-negative integer expected");
  lua_settop(L, 3);
  q = lua_newuserdatauv(L, sizeof(LQueue), QUV_NUV);  /* 4 */
  memset(q, 0, sizeof *q);
  q->magic = LASYNC_MAGIC;
  q->kind = K_QUEUE;
  q->type = (int)type;
  q->maxsize = maxsize;
  q->head = 1;
  lua_newtable(L);
  lua_setiuservalue(L, 4, QUV_ITEMS);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 4, QUV_LESS);
  /* its metatable, which is also its __index table */
  lua_createtable(L, 0, 16);  /* 5 */
  lua_pushvalue(L, 5);
  lua_setfield(L, 5, "__index");
  lua_pushstring(L, class_names[type]);
  lua_setfield(L, 5, "__name");
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_setfield(L, 5, "__tostring");
  lua_pushinteger(L, maxsize);
  lua_setfield(L, 5, "maxsize");
  q->getters = new_list(L, QUV_GETTERS, "_getters");
  q->putters = new_list(L, QUV_PUTTERS, "_putters");
  q->joiners = new_list(L, QUV_JOINERS, "_joiners");
  lua_pushnil(L);  /* the methods, copied: one lookup less per call */
  while (lua_next(L, lua_upvalueindex(2))) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, 5);
  }
  lua_setmetatable(L, 4);
  return 1;
}

static const luaL_Reg queue_methods[] = {
  {"put", l_put},
  {"put_nowait", l_put_nowait},
  {"get", l_get},
  {"get_nowait", l_get_nowait},
  {"qsize", l_qsize},
  {"empty", l_empty},
  {"full", l_full},
  {"task_done", l_task_done},
  {"join", l_join},
  {"shutdown", l_shutdown},
  {NULL, NULL}
};

static const luaL_Reg queue_meta[] = {
  {"__tostring", l_tostring},
  {NULL, NULL}
};

/* Stack: Mod, core table. */
void queue_register(lua_State *L) {
  int mod = lua_absindex(L, -2), core = lua_absindex(L, -1), shared;
  lasync_newmeta(L, K_QUEUE, queue_methods, queue_meta);
  luaL_getmetatable(L, "lasync.Queue");
  shared = lua_gettop(L);
  lua_pushvalue(L, mod);
  lua_getfield(L, shared, "__methods");
  lua_getfield(L, shared, "__tostring");
  lua_pushcclosure(L, l_new_queue, 3);
  lua_setfield(L, core, "new_queue");
  lua_pop(L, 1);
}
