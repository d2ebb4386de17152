/*
** luaopen_lasync_core: the module state, the metatables, the shared helpers.
*/
#include <string.h>
#include <time.h>
#include "lasync.h"

const char lasync_suspend = 0, lasync_cancel = 0;

static const char *const kind_names[K_NKINDS] = {
  "lasync.Loop", "lasync.Handle", "lasync.TimerHandle", "lasync.WatchHandle",
  "lasync.Future", "lasync.Task", "lasync.Stream", "lasync.Server",
  "lasync.SSLContext", "lasync.WaitList", "lasync.Event", "lasync.Queue",
  "lasync.DatagramEndpoint"
};

double lasync_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The object at idx if it is of that kind (a Task counts as a Future). */
void *lasync_toobj(lua_State *L, int idx, int kind) {
  Obj *o;
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) < sizeof(Obj))
    return NULL;
  o = lua_touserdata(L, idx);
  if (o->magic != LASYNC_MAGIC) return NULL;
  if (o->kind == kind) return o;
  switch (kind) {
    case K_FUTURE: return o->kind == K_TASK ? o : NULL;
    case K_HANDLE: return o->kind == K_TIMER || o->kind == K_WATCH ? o : NULL;
  }
  return NULL;
}

/* The object at idx, of that kind, or an error naming what it is (by its
** __name: "task expected, got lasync.Future"). */
void *lasync_checkobj(lua_State *L, int idx, int kind, const char *what) {
  void *p = lasync_toobj(L, idx, kind);
  if (p == NULL) luaL_typeerror(L, idx, what);
  return p;
}

/* A buffer of size bytes that lives as long as the Lua state, kept in
** the registry under key and made on first use (then *made is 1, else
** 0): the receive areas of stream.c and datagram.c. */
void *lasync_state_buffer(lua_State *L, const void *key, size_t size,
                          int *made) {
  void *p;
  *made = lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TUSERDATA;
  if (!*made) {
    p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
  }
  lua_pop(L, 1);
  p = lua_newuserdatauv(L, size, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
  return p;
}

/* The bytes one event takes in an array of EvMem. */
size_t lasync_evsize(void) {
  size_t a = sizeof(EvMem);
  return (event_get_struct_event_size() + a - 1) / a * a;
}

static int tostring_p(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Push and return luaL_tolstring of the value at idx, for error reports:
** a __tostring that raises must not replace the error being reported. */
const char *lasync_tostring(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, tostring_p);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(%s value whose __tostring failed)",
                    luaL_typename(L, idx));
  }
  return lua_tostring(L, -1);
}

/* The value at idx must be callable; what names what was expected, as
** checks.callable's does: "bad argument #1 to 'spawn' (function expected,
** got number)". The function is named by luaL_argerror, not by what. */
void lasync_checkcallable(lua_State *L, int idx, const char *what) {
  if (lua_type(L, idx) == LUA_TFUNCTION) return;
  if (luaL_getmetafield(L, idx, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  luaL_argerror(L, idx, lua_pushfstring(L, "%s expected, got %s",
                                        what, luaL_typename(L, idx)));
}

/* Set the metatable of the new object at the top for its kind. */
void lasync_setmt(lua_State *L, Mod *m, int kind) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->mtref[kind]);
  lua_setmetatable(L, -2);
}

Loop *lasync_running(lua_State *L, Mod *m) {
  if (m->running == NULL)
    luaL_error(L, "no running event loop");
  return m->running;
}

/* Create the metatable of a kind, with methods in __index and
** metamethods; stack: Mod, core table. Leaves it as it was. */
void lasync_newmeta(lua_State *L, int kind, const luaL_Reg *methods,
                    const luaL_Reg *meta) {
  Mod *m = lua_touserdata(L, -2);
  luaL_newmetatable(L, kind_names[kind]);
  lua_pushvalue(L, -1);
  m->mtref[kind] = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, meta, 1);
  lua_newtable(L);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, methods, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__methods");
  if (lua_getfield(L, -2, "__index") == LUA_TNIL) {  /* meta may have one */
    lua_pop(L, 1);
    lua_setfield(L, -2, "__index");
  } else lua_pop(L, 2);
  lua_pop(L, 1);
}

/* Extras: the user values an object rarely needs are those of a userdata
** of their own, kept in its user value uv and made on first use, so that
** every object carries one slot for them instead of several. */

/* Push the extras of the object at idx (nx user values), made if need be;
** 0 (nil pushed) when it has none and make is 0. */
int lasync_pushx(lua_State *L, int idx, int uv, int nx, int make) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, idx, uv) == LUA_TUSERDATA) return 1;
  if (!make) return 0;
  lua_pop(L, 1);
  lua_newuserdatauv(L, 0, nx);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, uv);
  return 1;
}

/* Push extra user value x of the object at idx (nil without extras); its
** type. */
int lasync_getx(lua_State *L, int idx, int uv, int x) {
  int type;
  if (!lasync_pushx(L, idx, uv, 0, 0)) return LUA_TNIL;
  type = lua_getiuservalue(L, -1, x);
  lua_remove(L, -2);
  return type;
}

/* Pop the top into extra user value x of the object at idx, making the
** extras unless the value is nil. */
void lasync_setx(lua_State *L, int idx, int uv, int x, int nx) {
  idx = lua_absindex(L, idx);
  if (!lasync_pushx(L, idx, uv, nx, !lua_isnil(L, -1))) {
    lua_pop(L, 2);
    return;
  }
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, x);
  lua_pop(L, 1);
}

/* Add methods to a kind's method table; stack: Mod at -2. */
void lasync_addmethods(lua_State *L, int kind, const luaL_Reg *l) {
  luaL_getmetatable(L, kind_names[kind]);
  lua_getfield(L, -1, "__methods");
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, l, 1);
  lua_pop(L, 2);
}

/* Make the finalizing twin (fkind) of a kind's metatable, then drop __gc
** from the kind's own; stack: Mod, core table. */
static void split_gc(lua_State *L, int kind, int fkind) {
  Mod *m = lua_touserdata(L, -2);
  luaL_getmetatable(L, kind_names[kind]);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  m->mtref[fkind] = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushnil(L);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

/* Add functions to the core table; stack: Mod, core table. */
void lasync_addfuncs(lua_State *L, const luaL_Reg *l) {
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, l, 1);
}

/* Keep a method table reachable as core.<field> for the Lua facade. */
static void expose(lua_State *L, int kind, const char *field) {
  luaL_getmetatable(L, kind_names[kind]);
  lua_getfield(L, -1, "__methods");
  lua_setfield(L, -3, field);
  lua_pop(L, 1);
}

int luaopen_lasync_core(lua_State *L) __attribute__((visibility("default")));

/* One module state per Lua state: opening the module again (a test runner
** that clears package.loaded) returns the same table, so that no object or
** metatable is shared by two module states.
**
** The core table has three parts. Plain names (core.spawn, core.Future,
** the error classes, ...) are what the lasync facade and its modules offer
** users. Names with a leading underscore (core._park, core._SUSPEND,
** core._set_driven, ...) are protocol hooks between the C core and the Lua
** layers, for no one else. core.sys holds the system calls of the serve
** command (fork, waitpid, pipe, fd_read, ...). */
static const char instance_key = 0;

int luaopen_lasync_core(lua_State *L) {
  Mod *m;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &instance_key) == LUA_TTABLE)
    return 1;
  lua_pop(L, 1);
  m = lua_newuserdatauv(L, sizeof(Mod), MUV_NUV);
  memset(m, 0, sizeof *m);
  lua_newtable(L);
  errors_register(L);
  loop_register(L);
  handle_register(L);
  watch_register(L);
  future_register(L);
  task_register(L);
  context_register(L);
  waitlist_register(L);
  queue_register(L);
  dns_register(L);  /* after task_register: it keeps core.await */
  thread_register(L);  /* likewise */
  stream_register(L);
  server_register(L);
  tls_register(L);
  process_register(L);
  datagram_register(L);
  socket_register(L);
  subprocess_register(L);
  http_register(L);
  websocket_register(L);
  resp_register(L);
  split_gc(L, K_FUTURE, K_FFUTURE);
  split_gc(L, K_TASK, K_FTASK);
  expose(L, K_LOOP, "_LoopMethods");
  expose(L, K_FUTURE, "_FutureMethods");
  expose(L, K_TASK, "_TaskMethods");
  expose(L, K_WAITLIST, "_WaitListMethods");
  lua_pushlightuserdata(L, SUSPEND_KEY);
  lua_setfield(L, -2, "_SUSPEND");
  lua_pushlightuserdata(L, CANCEL_KEY);
  lua_setfield(L, -2, "_CANCEL");
  lua_pushliteral(L, LASYNC_VERSION);
  lua_setfield(L, -2, "VERSION");
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &instance_key);
  return 1;
}
