/*
** LuaSocket's receive over a stream's input buffer: core._sock_receive,
** what lasync.socket's tcp:receive is built on. The patterns are read in
** place, as LuaSocket's buffer.c reads its own buffer; a timeout or the
** end of the input hands back what was taken so far (LuaSocket's partial
** result). Errors are LuaSocket's strings (core._sock_strerror).
*/
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include "lasync.h"

enum { PAT_LINE, PAT_ALL, PAT_COUNT, PAT_SOME };

/* The input limit of lasync.socket's streams: reading pauses beyond it, so
** a line or the rest longer than it is handed back in pieces ("more"), and
** a count above it is asked for in pieces by the Lua side. */
#define SOCK_CHUNK 65536

/* Stack of _sock_receive: stream, pattern, count, block, total deadline;
** the resume's values from 6. */
#define RESUMED 6

/* LuaSocket's strings for the errors its programs test (usocket.c's
** socket_strerror); others are strerror's text. */
const char *sock_strerror(int err) {
  switch (err) {
    case 0: return "closed";
    case EADDRINUSE: return "address already in use";
    case EISCONN: return "already connected";
    case EACCES: return "permission denied";
    case ECONNREFUSED: return "connection refused";
    case ECONNABORTED: case ECONNRESET: case EPIPE: return "closed";
    case ETIMEDOUT: return "timeout";
    default: return strerror(err);
  }
}

static int l_strerror(lua_State *L) {
  lua_pushstring(L, sock_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* Takes the first n bytes of the input; a line drops its '\r's and the
** '\n' it ends with (skip: bytes dropped after the n). */
static void take(lua_State *L, Stream *s, size_t n, size_t skip, int line) {
  size_t len, i;
  const char *p = stream_input(s, &len);
  luaL_Buffer b;
  if (!line) lua_pushlstring(L, p, n);
  else {
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++)
      if (p[i] != '\r') luaL_addchar(&b, p[i]);
    luaL_pushresult(&b);
  }
  stream_consume(s, n + skip);
}

/* The pattern's result once it is complete: 1 pushed, or 0. */
static int complete(lua_State *L, Stream *s, int pat, size_t n) {
  size_t len;
  const char *p = stream_input(s, &len), *nl;
  if (pat == PAT_COUNT && len >= n) {
    take(L, s, n, 0, 0);
    return 1;
  }
  if (pat == PAT_SOME && len > 0) {
    take(L, s, n < len ? n : len, 0, 0);
    return 1;
  }
  if (pat == PAT_LINE && len > 0 && (nl = memchr(p, '\n', len)) != NULL) {
    take(L, s, (size_t)(nl - p), 1, 1);
    return 1;
  }
  if (pat == PAT_ALL && stream_ended(s) && !stream_failed(s) && len > 0) {
    take(L, s, len, 0, 0);
    return 1;
  }
  return 0;
}

/* nil, err, partial: what the input holds (no more than n) is taken. */
static int incomplete(lua_State *L, Stream *s, int pat, size_t n,
                      const char *err) {
  size_t len;
  stream_input(s, &len);
  lua_pushnil(L);
  lua_pushstring(L, err);
  take(L, s, pat >= PAT_COUNT && n < len ? n : len, 0, pat == PAT_LINE);
  return 3;
}

/* When to stop waiting: the nearer of now + block (block < 0: none) and
** the total deadline (0: none); 0 for no deadline at all. */
static double wait_deadline(double block, double total, double now) {
  double d = block < 0 ? 0 : now + block;
  if (total > 0 && (d == 0 || total < d)) d = total;
  return d;
}

static int receive_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  int pat = (int)lua_tointeger(L, 2), timedout = 0;
  size_t n = (size_t)lua_tointeger(L, 3), len;
  double now, d;
  (void)ctx;
  if (status == LUA_YIELD) timedout = stream_input_resumed(L, s, RESUMED);
  if (complete(L, s, pat, n)) return 1;
  stream_input(s, &len);
  if ((pat == PAT_LINE || pat == PAT_ALL) && len >= SOCK_CHUNK)
    return incomplete(L, s, pat, n, "more");
  if (stream_failed(s)) return incomplete(L, s, pat, n,
                                          sock_strerror(stream_failed(s)));
  if (stream_ended(s)) return incomplete(L, s, pat, n, "closed");
  now = lasync_now();
  d = wait_deadline(lua_tonumber(L, 4), lua_tonumber(L, 5), now);
  if (timedout || (d > 0 && d <= now)) return incomplete(L, s, pat, n, "timeout");
  lua_settop(L, RESUMED - 1);
  return stream_wait_input(L, s, len + 1, d, 0,
                           receive_k, "receive");
}

/* core._sock_receive(stream, pattern, count, block, total) -> data, or
** nil, err, partial. pattern: "l" (a line), "a" (to the end), "n" (count
** bytes), "s" (some: up to count bytes, as soon as there are any). block: seconds each wait may last (< 0: no limit; 0: never
** waits); total: the loop time the call must end by (0: none). */
static int l_receive(lua_State *L) {
  static const char *const pats[] = {"l", "a", "n", "s", NULL};
  Stream *s = stream_check(L, 1);
  int pat = luaL_checkoption(L, 2, NULL, pats);
  lua_Integer n = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, n >= 0 && n <= SOCK_CHUNK, 3, "count out of range");
  luaL_checknumber(L, 4);
  luaL_checknumber(L, 5);
  lua_settop(L, 5);
  lua_pushinteger(L, pat);
  lua_replace(L, 2);
  (void)s;
  return receive_k(L, LUA_OK, 0);
}

/* core._sock_ready(stream) -> whether a receive would not wait, whether
** input is buffered. */
static int l_ready(lua_State *L) {
  Stream *s = stream_check(L, 1);
  size_t len;
  stream_input(s, &len);
  lua_pushboolean(L, len > 0 || stream_ended(s) || stream_failed(s));
  lua_pushboolean(L, len > 0);
  return 2;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  size_t len;
  (void)ctx;
  if (status == LUA_YIELD) stream_input_resumed(L, s, 2);
  stream_input(s, &len);
  if (len > 0 || stream_ended(s) || stream_failed(s)) return 0;
  lua_settop(L, 1);
  return stream_wait_input(L, s, len + 1, 0, 0, wait_k, "select");
}

/* core._sock_wait(stream): suspends until input is there (or ends). */
static int l_wait(lua_State *L) {
  stream_check(L, 1);
  lua_settop(L, 1);
  return wait_k(L, LUA_OK, 0);
}

/* core._sock_gettime() -> seconds since the epoch (LuaSocket's gettime). */
static int l_gettime(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* ---------- options (LuaSocket's options.c names) ---------- */

enum { OPT_BOOL, OPT_INT, OPT_LINGER };

static const struct Opt {
  const char *name;
  int level, opt, kind;
} opts[] = {
  {"keepalive", SOL_SOCKET, SO_KEEPALIVE, OPT_BOOL},
  {"reuseaddr", SOL_SOCKET, SO_REUSEADDR, OPT_BOOL},
  {"reuseport", SOL_SOCKET, SO_REUSEPORT, OPT_BOOL},
  {"broadcast", SOL_SOCKET, SO_BROADCAST, OPT_BOOL},
  {"dontroute", SOL_SOCKET, SO_DONTROUTE, OPT_BOOL},
  {"linger", SOL_SOCKET, SO_LINGER, OPT_LINGER},
  {"recv-buffer-size", SOL_SOCKET, SO_RCVBUF, OPT_INT},
  {"send-buffer-size", SOL_SOCKET, SO_SNDBUF, OPT_INT},
  {"tcp-nodelay", IPPROTO_TCP, TCP_NODELAY, OPT_BOOL},
  {"tcp-keepidle", IPPROTO_TCP, TCP_KEEPIDLE, OPT_INT},
  {"tcp-keepcnt", IPPROTO_TCP, TCP_KEEPCNT, OPT_INT},
  {"tcp-keepintvl", IPPROTO_TCP, TCP_KEEPINTVL, OPT_INT},
  {"ipv6-v6only", IPPROTO_IPV6, IPV6_V6ONLY, OPT_BOOL},
  {"ip-multicast-ttl", IPPROTO_IP, IP_MULTICAST_TTL, OPT_INT},
  {"ip-multicast-loop", IPPROTO_IP, IP_MULTICAST_LOOP, OPT_BOOL},
  {NULL, 0, 0, 0}
};

static const char *const kinds[] = {"boolean", "number", "linger"};

static const struct Opt *find_opt(const char *name) {
  const struct Opt *o;
  for (o = opts; o->name; o++)
    if (strcmp(o->name, name) == 0) return o;
  return NULL;
}

static const struct Opt *checkopt(lua_State *L, int idx) {
  const struct Opt *o = find_opt(luaL_checkstring(L, idx));
  if (o == NULL) luaL_argerror(L, idx, "unsupported option");
  return o;
}

/* core._sock_option_kind(name) -> "boolean", "number", "linger" or nil:
** what the option takes, nil if unsupported. */
static int l_option_kind(lua_State *L) {
  const struct Opt *o = find_opt(luaL_checkstring(L, 1));
  if (o == NULL) return 0;
  lua_pushstring(L, kinds[o->kind]);
  return 1;
}

static int opt_result(lua_State *L, int r) {
  if (r == 0) {
    lua_pushinteger(L, 1);
    return 1;
  }
  r = errno;
  luaL_pushfail(L);
  lua_pushstring(L, sock_strerror(r));
  return 2;
}

/* core._sock_setoption(fd, name, value) -> 1, or nil, err. value as
** _sock_option_kind says, checked by the caller (linger: {on=, timeout=}). */
static int l_setoption(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1), v;
  const struct Opt *o = checkopt(L, 2);
  struct linger li;
  if (o->kind == OPT_LINGER) {
    lua_getfield(L, 3, "on");
    lua_getfield(L, 3, "timeout");
    li.l_onoff = lua_toboolean(L, -2);
    li.l_linger = (int)lua_tointeger(L, -1);
    return opt_result(L, setsockopt(fd, o->level, o->opt, &li, sizeof li));
  }
  v = o->kind == OPT_BOOL ? lua_toboolean(L, 3) : (int)lua_tointeger(L, 3);
  return opt_result(L, setsockopt(fd, o->level, o->opt, &v, sizeof v));
}

/* core._sock_getoption(fd, name) -> value, or nil, err. */
static int l_getoption(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1), v = 0;
  const struct Opt *o = checkopt(L, 2);
  struct linger li;
  socklen_t len = o->kind == OPT_LINGER ? sizeof li : sizeof v;
  if (getsockopt(fd, o->level, o->opt, o->kind == OPT_LINGER
                 ? (void *)&li : (void *)&v, &len) != 0)
    return opt_result(L, -1);
  if (o->kind == OPT_BOOL) lua_pushboolean(L, v != 0);
  else if (o->kind == OPT_INT) lua_pushinteger(L, v);
  else {
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, li.l_onoff != 0);
    lua_setfield(L, -2, "on");
    lua_pushinteger(L, li.l_linger);
    lua_setfield(L, -2, "timeout");
  }
  return 1;
}

static const luaL_Reg socket_funcs[] = {
  {"_sock_option_kind", l_option_kind},
  {"_sock_setoption", l_setoption},
  {"_sock_getoption", l_getoption},
  {"_sock_gettime", l_gettime},
  {"_sock_receive", l_receive},
  {"_sock_strerror", l_strerror},
  {"_sock_ready", l_ready},
  {"_sock_wait", l_wait},
  {NULL, NULL}
};

void socket_register(lua_State *L) {
  lasync_addfuncs(L, socket_funcs);
  lua_pushinteger(L, SOCK_CHUNK);
  lua_setfield(L, -2, "_SOCK_CHUNK");
}
