/*
** Error classes. A class is a table that is also the metatable of its
** instances; the class's own metatable makes it callable and links it to
** its parent, so `Class:is(v)` walks the chain of `_parent` fields.
*/
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include "lasync.h"

/* The one list of the classes: errors_register makes each core.<Name> and
** lists them all, by name, in core._error_classes, which the facade
** (lua/lasync/init.lua) re-exports. */
static const char *const class_tree[][2] = {  /* name, parent */
  {"Error", NULL},
  {"CancelledError", "Error"}, {"TimeoutError", "Error"},
  {"InvalidStateError", "Error"}, {"IncompleteReadError", "Error"},
  {"LimitOverrunError", "Error"}, {"QueueEmpty", "Error"},
  {"QueueFull", "Error"}, {"QueueShutDown", "Error"},
  {"BrokenBarrierError", "Error"}, {"TaskGroupError", "Error"},
  {"OSError", "Error"}, {"ConnectionError", "OSError"},
  {"ConnectionRefusedError", "ConnectionError"},
  {"ConnectionResetError", "ConnectionError"},
  {"ConnectionAbortedError", "ConnectionError"},
  {"BrokenPipeError", "ConnectionError"}, {"HTTPError", "Error"},
  {"SSLError", "OSError"}, {"SSLCertVerificationError", "SSLError"},
  {NULL, NULL}
};

static int err_tostring(lua_State *L) {
  luaL_getmetafield(L, 1, "__name");
  lua_getfield(L, 1, "message");
  if (lua_isnil(L, -1) ||
      (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) == 0))
    lua_pop(L, 1);
  else {
    lua_pushliteral(L, ": ");
    lua_insert(L, -2);
    luaL_tolstring(L, -1, NULL);
    lua_replace(L, -2);
    lua_concat(L, 3);
  }
  return 1;
}

static int class_tostring(lua_State *L) {
  lua_getfield(L, 1, "__name");
  lua_pushfstring(L, "class %s", lua_tostring(L, -1));
  return 1;
}

/* Class(message, fields): a new instance. */
static int err_call(lua_State *L) {
  lua_settop(L, 3);
  lua_newtable(L);
  if (lua_type(L, 3) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, 4);
    }
  } else if (!lua_isnil(L, 3)) {  /* #2 for the caller: 1 is the class */
    lua_getfield(L, 1, "__name");
    return luaL_error(L, "bad argument #2 to '%s' (table of fields or nil "
                      "expected, got %s)", lua_tostring(L, -1),
                      luaL_typename(L, 3));
  }
  lua_pushvalue(L, 2);
  lua_setfield(L, 4, "message");
  lua_pushvalue(L, 1);
  lua_setmetatable(L, 4);
  return 1;
}

/* Class:is(v): v is an instance of Class or of a subclass. */
static int err_is(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_getmetatable(L, 2)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  while (lua_type(L, -1) == LUA_TTABLE) {
    if (lua_rawequal(L, -1, 1)) {
      lua_pushboolean(L, 1);
      return 1;
    }
    lua_rawgetp(L, -1, (void *)class_tree);  /* the parent link */
    lua_remove(L, -2);
  }
  lua_pushboolean(L, 0);
  return 1;
}

/* Make a class named name with the parent at parentidx (or none) and leave
** it at the top. */
static void class_new(lua_State *L, const char *name, int parentidx) {
  lua_newtable(L);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, err_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, err_is);
  lua_setfield(L, -2, "is");
  lua_newtable(L);  /* the class's own metatable */
  lua_pushcfunction(L, err_call);
  lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, class_tostring);
  lua_setfield(L, -2, "__tostring");
  if (parentidx) {
    lua_pushvalue(L, parentidx);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, parentidx);
    lua_rawsetp(L, -3, (void *)class_tree);
  }
  lua_setmetatable(L, -2);
}

/* core.error_class(name, parent): a new class, for later modules. */
static int l_error_class(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_argcheck(L, lua_getmetatable(L, 2), 2, "error class expected");
    lua_pop(L, 1);
  }
  class_new(L, name, lua_isnoneornil(L, 2) ? 0 : 2);
  return 1;
}

/* Push the class named cls (from the Mod's table). */
static void push_class(lua_State *L, const char *cls) {
  lua_getiuservalue(L, lua_upvalueindex(1), MUV_ERRORS);
  lua_getfield(L, -1, cls);
  lua_remove(L, -2);
}

/* Push a new instance of cls whose message is the value at msgidx. */
void errors_push_newv(lua_State *L, const char *cls, int msgidx) {
  msgidx = lua_absindex(L, msgidx);
  push_class(L, cls);
  lua_newtable(L);
  lua_pushvalue(L, msgidx);
  lua_setfield(L, -2, "message");
  lua_insert(L, -2);
  lua_setmetatable(L, -2);
}

void errors_push_new(lua_State *L, const char *cls, const char *msg) {
  if (msg) lua_pushstring(L, msg); else lua_pushnil(L);
  errors_push_newv(L, cls, -1);
  lua_remove(L, -2);
}

int errors_raise(lua_State *L, const char *cls, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  errors_push_newv(L, cls, -1);
  return lua_error(L);
}

/* Is the value at idx a CancelledError (or of a subclass)? */
int errors_is_cancelled(lua_State *L, Mod *m, int idx) {
  int found = 0;
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
  while (lua_type(L, -1) == LUA_TTABLE) {
    if (lua_topointer(L, -1) == m->cancelled_cls) {
      found = 1;
      break;
    }
    lua_rawgetp(L, -1, (void *)class_tree);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  return found;
}

#define E(name) {name, #name}
static const struct { int err; const char *name; } errno_names[] = {
  E(EPERM), E(ENOENT), E(EINTR), E(EIO), E(EBADF), E(EAGAIN), E(ENOMEM),
  E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(ENOTDIR), E(EISDIR),
  E(EINVAL), E(ENFILE), E(EMFILE), E(ENOSPC), E(EPIPE), E(ENAMETOOLONG),
  E(ELOOP), E(ENOTSOCK), E(EDESTADDRREQ), E(EMSGSIZE), E(EPROTOTYPE),
  E(ENOPROTOOPT), E(EPROTONOSUPPORT), E(EOPNOTSUPP), E(EAFNOSUPPORT),
  E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH),
  E(ENETRESET), E(ECONNABORTED), E(ECONNRESET), E(ENOBUFS), E(EISCONN),
  E(ENOTCONN), E(ESHUTDOWN), E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTDOWN),
  E(EHOSTUNREACH), E(EALREADY), E(EINPROGRESS), E(EPROTO), E(ESRCH),
  E(ECHILD), E(E2BIG), E(ENOEXEC), E(ETXTBSY), E(ENOSYS),
  {0, NULL}
};
#undef E

static const char *errno_name(int err) {
  int i;
  for (i = 0; errno_names[i].name; i++)
    if (errno_names[i].err == err) return errno_names[i].name;
  return "EUNKNOWN";
}

/* The class Python raises for err. */
static const char *errno_class(int err) {
  switch (err) {
    case ECONNREFUSED: return "ConnectionRefusedError";
    case ECONNRESET: return "ConnectionResetError";
    case ECONNABORTED: return "ConnectionAbortedError";
    case EPIPE: case ESHUTDOWN: return "BrokenPipeError";
  }
  return "OSError";
}

/* Push an OSError (or the ConnectionError subclass for err) with fields
** errno, code (the errno name, as "ECONNRESET") and message, strerror's
** text after "what: " unless what is NULL. err must be saved by the caller
** before any Lua API call. */
void errors_push_oserror(lua_State *L, int err, const char *what) {
  if (what) lua_pushfstring(L, "%s: %s", what, strerror(err));
  else lua_pushstring(L, strerror(err));
  errors_push_newv(L, errno_class(err), -1);
  lua_remove(L, -2);
  lua_pushinteger(L, err);
  lua_setfield(L, -2, "errno");
  lua_pushstring(L, errno_name(err));
  lua_setfield(L, -2, "code");
}

static const luaL_Reg error_funcs[] = {
  {"error_class", l_error_class},
  {NULL, NULL}
};

/* Stack: Mod, core table. Creates every class as core.<Name>. */
void errors_register(lua_State *L) {
  Mod *m = lua_touserdata(L, -2);
  int i;
  lua_newtable(L);  /* the Mod's: the classes C raises, out of Lua's reach */
  lua_newtable(L);  /* core._error_classes */
  for (i = 0; class_tree[i][0]; i++) {
    const char *parent = class_tree[i][1];
    if (parent) lua_getfield(L, -2, parent);
    class_new(L, class_tree[i][0], parent ? lua_gettop(L) : 0);
    if (parent) lua_remove(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -5, class_tree[i][0]);  /* core.<Name> */
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, class_tree[i][0]);
    lua_setfield(L, -2, class_tree[i][0]);
  }
  lua_setfield(L, -3, "_error_classes");
  lua_getfield(L, -1, "CancelledError");
  m->cancelled_cls = lua_topointer(L, -1);
  lua_pop(L, 1);
  lua_setiuservalue(L, -3, MUV_ERRORS);
  lasync_addfuncs(L, error_funcs);
}
