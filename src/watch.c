/*
** Watch handles: add_reader/add_writer on file descriptors and signal
** handlers. A persistent libevent event pushes the handle onto the ready
** queue (once, however often it fires before it runs); the callback runs
** from the loop like any handle.
*/
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include "lasync.h"

/* Signal names for add_signal_handler, core.sys.kill and core.sys.signame (which
** names a worker's death in `lasync serve` logs). */
static const struct { const char *name; int sig; } signames[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGPIPE", SIGPIPE},
  {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD},
  {"SIGCONT", SIGCONT}, {"SIGTSTP", SIGTSTP}, {"SIGWINCH", SIGWINCH},
  {"SIGKILL", SIGKILL}, {"SIGSEGV", SIGSEGV}, {"SIGABRT", SIGABRT},
  {"SIGSTOP", SIGSTOP}, {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE},
  {NULL, 0}
};

/* Key in the loop's watch table: fds by direction, signals negative. */
static lua_Integer watch_key(const Handle *h) {
  if (h->what == EV_SIGNAL) return -(lua_Integer)h->fd;
  return (lua_Integer)h->fd * 2 + (h->what == EV_WRITE);
}

static void watch_cb(evutil_socket_t fd, short what, void *arg) {
  Handle *h = arg;
  (void)fd; (void)what;
  if (!h->queued && !h->cancelled) {
    h->queued = 1;
    loop_ready_push(h->loop, h);
  }
}

/* Stop watching; the table at tidx loses its entry. A handle still queued
** stays anchored until the loop pops it. */
static void watch_stop(lua_State *L, Handle *h, int tidx) {
  h->cancelled = 1;
  if (h->ev) {
    event_free(h->ev);
    h->ev = NULL;
  }
  lua_pushnil(L);
  lua_rawseti(L, tidx, watch_key(h));
  if (!h->queued) loop_unanchor(L, h->loop, h);
}

void watch_cancel(lua_State *L, Handle *h) {
  loop_push(L, h->loop);
  lua_getiuservalue(L, -1, LUV_WATCH);
  watch_stop(L, h, lua_gettop(L));
  lua_pop(L, 2);
}

/* The loop's close hook (LX_WATCH): stop every watch. */
static void watch_close_all(lua_State *L, Loop *lp, int loopidx) {
  int t;
  (void)lp;
  lua_getiuservalue(L, loopidx, LUV_WATCH);
  t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    Handle *h = lua_touserdata(L, -1);
    lua_pop(L, 2);
    watch_stop(L, h, t);
    lua_pushnil(L);  /* the table changed: restart */
  }
  lua_pop(L, 1);
}

/* Replace any watch with the same key by the handle at hidx. */
static void watch_add(lua_State *L, Loop *lp, Handle *h, int hidx) {
  short flags = (short)(h->what | EV_PERSIST);
  loop_push(L, lp);
  lua_getiuservalue(L, -1, LUV_WATCH);
  if (lua_rawgeti(L, -1, watch_key(h)) != LUA_TNIL)
    watch_stop(L, lua_touserdata(L, -1), lua_gettop(L) - 1);
  lua_pop(L, 1);
  h->ev = event_new(lp->base, h->fd, flags, watch_cb, h);
  if (h->ev == NULL || event_add(h->ev, NULL) != 0) {
    if (h->ev) event_free(h->ev);  /* the handle has no __gc to do it */
    h->ev = NULL;
    h->cancelled = 1;
    luaL_error(L, "cannot watch %s %d", h->what == EV_SIGNAL ? "signal"
               : "fd", h->fd);
  }
  lua_pushvalue(L, hidx);
  lua_rawseti(L, -2, watch_key(h));
  lua_pop(L, 2);
  loop_anchor(L, lp, hidx);
}

static Loop *checkopenloop(lua_State *L) {
  Loop *lp = lasync_checkobj(L, 1, K_LOOP, "loop");
  if (lp->closed) luaL_error(L, "event loop is closed");
  return lp;
}

/* The file descriptor at idx (also for core.sys.fd_read and the like). */
int watch_checkfd(lua_State *L, int idx) {
  lua_Integer fd = luaL_checkinteger(L, idx);
  luaL_argcheck(L, fd >= 0 && fd < 1 << 30, idx, "file descriptor expected");
  return (int)fd;
}

/* The signal at idx: a number or a name of signames. */
int watch_checksig(lua_State *L, int idx) {
  int i;
  lua_Integer n;
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *name = lua_tostring(L, idx);
    for (i = 0; signames[i].name; i++)
      if (strcmp(name, signames[i].name) == 0) return signames[i].sig;
    luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal name '%s'",
                                          name));
  }
  n = luaL_checkinteger(L, idx);  /* checked before the cast to int */
  luaL_argcheck(L, n > 0 && n < NSIG, idx, "signal number out of range");
  return (int)n;
}

/* The name of sig in signames, or NULL. */
const char *watch_signame(int sig) {
  int i;
  for (i = 0; signames[i].name; i++)
    if (signames[i].sig == sig) return signames[i].name;
  return NULL;
}

static int add(lua_State *L, int fd, short what) {
  Loop *lp = lua_touserdata(L, 1);
  Handle *h;
  if (what != EV_SIGNAL && fcntl(fd, F_GETFD) == -1)  /* before libevent */
    luaL_argerror(L, 2, "bad file descriptor");       /* warns on stderr */
  lasync_checkcallable(L, 3, "function");
  h = handle_new(L, lp, K_WATCH, 3, lua_gettop(L) - 3);
  h->fd = fd;
  h->what = what;
  watch_add(L, lp, h, lua_gettop(L));
  return 1;
}

static int remove_watch(lua_State *L, int fd, short what) {
  Handle key;
  key.fd = fd;
  key.what = what;
  loop_push(L, lua_touserdata(L, 1));
  lua_getiuservalue(L, -1, LUV_WATCH);
  if (lua_rawgeti(L, -1, watch_key(&key)) == LUA_TNIL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  watch_stop(L, lua_touserdata(L, -1), lua_gettop(L) - 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_add_reader(lua_State *L) {
  checkopenloop(L);
  return add(L, watch_checkfd(L, 2), EV_READ);
}

static int l_add_writer(lua_State *L) {
  checkopenloop(L);
  return add(L, watch_checkfd(L, 2), EV_WRITE);
}

static int l_add_signal_handler(lua_State *L) {
  checkopenloop(L);
  return add(L, watch_checksig(L, 2), EV_SIGNAL);
}

static int l_remove_reader(lua_State *L) {
  checkopenloop(L);
  return remove_watch(L, watch_checkfd(L, 2), EV_READ);
}

static int l_remove_writer(lua_State *L) {
  checkopenloop(L);
  return remove_watch(L, watch_checkfd(L, 2), EV_WRITE);
}

static int l_remove_signal_handler(lua_State *L) {
  checkopenloop(L);
  return remove_watch(L, watch_checksig(L, 2), EV_SIGNAL);
}

static const luaL_Reg loop_methods[] = {
  {"add_reader", l_add_reader},
  {"add_writer", l_add_writer},
  {"remove_reader", l_remove_reader},
  {"remove_writer", l_remove_writer},
  {"add_signal_handler", l_add_signal_handler},
  {"remove_signal_handler", l_remove_signal_handler},
  {NULL, NULL}
};

void watch_register(lua_State *L) {
  loop_register_ext(L, LX_WATCH, watch_close_all);
  lasync_addmethods(L, K_LOOP, loop_methods);
}
