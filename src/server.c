/*
** Servers: listening sockets (one per address: IPv4 and IPv6 for every
** interface, each address of a name) whose accept events queue one
** handle (as a watch does); the handle accepts what is waiting and runs,
** in a new task per connection, conn_main, which calls handler(stream,
** stream) under a protected call, then closes the connection and reports
** a failure to the loop's exception handler: a handler that fails costs
** its own connection only. While the system is out of descriptors, accepting pauses for a
** moment instead of spinning on an accept event that stays ready.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include "lasync.h"

#define ACCEPT_MAX 128           /* connections taken per accept event */
#define RETRY_MS 100             /* pause after running out of fds */
#define DEFAULT_BACKLOG 100
#define LISTEN_MAX 8             /* sockets per server */

typedef struct Server {
  OBJ_HEAD;                      /* K_SERVER */
  int fds[LISTEN_MAX];           /* the listening sockets, -1 once closed */
  unsigned char nsock;           /* how many of fds (and accept events) */
  unsigned char first;           /* the socket accepted from first */
  size_t limit;                  /* of each connection's stream */
  StreamLimits lim;              /* and its timeouts and max output */
  int nconns;                    /* connection tasks not finished */
  int maxconns;                  /* accepting holds at this many, 0: never */
  unsigned char serving, closed, warned, forever;
  unsigned char held;            /* at maxconns: the accept event is off */
  unsigned char assigned;        /* the events are set up */
  Handle *acceptor;              /* queued by the accept event */
  dev_t dev;                     /* the Unix socket file it made */
  ino_t ino;
  EvMem evmem[];                 /* nsock accept events, the retry timer */
} Server;

/* Server user values. */
enum {
  SVUV_LOOP = 1,   /* the loop, kept alive: its base holds the events */
  SVUV_HANDLER,    /* handler(reader, writer) */
  SVUV_MAIN,       /* conn_main, the body of the connection tasks */
  SVUV_WAKE,       /* conn_wake, the callback of parked connections */
  SVUV_CONNS,      /* stream -> true, while its handler runs */
  SVUV_PATH,       /* the Unix socket path, or nil */
  SVUV_CLOSED,     /* futures of wait_closed() callers */
  SVUV_STOPPED,    /* the future of serve_forever() */
  SVUV_ACCEPTOR,   /* the acceptor handle: *acceptor stays valid */
  SVUV_NUV = SVUV_ACCEPTOR
};

#define checkserver(L) ((Server *)lasync_checkobj(L, 1, K_SERVER, "server"))

/* The accept event of socket i; i = nsock: the retry timer. */
static struct event *event_of(Server *sv, int i) {
  return (struct event *)((char *)sv->evmem + i * lasync_evsize());
}

/* Turn the accept events on or off; 0 if one could not be added. */
static int accepting(Server *sv, int on) {
  int i, ok = 1;
  for (i = 0; i < sv->nsock; i++)
    if (on) ok &= event_add(event_of(sv, i), NULL) == 0;
    else event_del(event_of(sv, i));
  return ok;
}

/* ---------- connections ---------- */

/* The protected call's message handler: the error and its traceback. */
static int conn_msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  if (msg == NULL) msg = lasync_tostring(L, 1);
  luaL_traceback(L, L, msg, 1);
  lua_rawseti(L, 2, 2);
  lua_settop(L, 2);
  return 1;
}

static void accept_resume(Server *sv);

/* The connection's handler is done: the stream at sidx leaves the list;
** the last one out of a closed server lets wait_closed() return. */
static void conn_forget(lua_State *L, Server *sv, int svidx, int sidx) {
  lua_getiuservalue(L, svidx, SVUV_CONNS);
  lua_pushvalue(L, sidx);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  if (--sv->nconns == 0 && sv->closed) future_list_finish(L, svidx, SVUV_CLOSED);
  if (sv->held && sv->nconns < sv->maxconns) accept_resume(sv);
}

/* Report the failure of a handler (the error at erridx, as conn_msgh
** wrapped it for a run-time error) to the exception handler; a
** cancellation goes on up, so that the task ends cancelled. */
static void conn_report(lua_State *L, Server *sv, int status, int erridx) {
  int tb = 0;
  if (status == LUA_ERRRUN) {
    lua_rawgeti(L, erridx, 1);
    lua_rawgeti(L, erridx, 2);
    tb = lua_gettop(L);
    erridx = tb - 1;
  }
  if (errors_is_cancelled(L, sv->loop->mod, erridx)) {
    lua_pushvalue(L, erridx);
    lua_error(L);
  }
  loop_push_anchored(L, sv->loop, sv->loop->current);
  loop_report_error(L, sv->loop, "Unhandled error in connection handler",
                    erridx, -1, "task", tb);
}

/* A handler may return PARK, fn, arg, deadline (lasync.http's does for a
** kept-alive connection with nothing to read): its task then ends, and the
** connection waits with no task, so no coroutine (its stack is most of an
** idle connection's memory), until input comes, the input ends or fails,
** or the deadline passes; then a new task calls fn(arg, timedout) the same
** way. The connection stays counted and listed meanwhile. */
static const char park_key = 0;
#define PARK ((void *)&park_key)

static int conn_done(lua_State *L, int status, lua_KContext ctx);

/* The body of a connection task: conn_main(server, stream, fn, a, b)
** calls fn(a, b): handler(stream, stream) for a new connection,
** fn(arg, timedout) for a parked one. */
static int conn_main(lua_State *L) {
  lua_settop(L, 5);
  lua_pushcfunction(L, conn_msgh);
  lua_insert(L, 3);
  return conn_done(L, lua_pcallk(L, 2, 4, 3, 0, conn_done), 0);
}

/* A task, which takes its first step at once, runs conn_main with the
** server at svidx and the 4 values at the top (which it takes). Started,
** it always reaches conn_done, which closes the connection and counts it
** out (a task cancelled before its first step would never run). */
static void conn_task(lua_State *L, Server *sv, int svidx) {
  Task *t;
  lua_getiuservalue(L, svidx, SVUV_MAIN);
  lua_pushvalue(L, svidx);
  lua_rotate(L, -6, 2);
  t = task_new(L, sv->loop, lua_gettop(L) - 5, 5, 1);
  lua_settop(L, lua_gettop(L) - 7);
  task_step(L, sv->loop, t);
}

/* The parked connection's handle: conn_wake(server, stream, fn, arg). */
static int conn_wake(lua_State *L) {
  lua_settop(L, 4);
  lua_pushboolean(L, stream_park_timedout(lua_touserdata(L, 2)));
  conn_task(L, lua_touserdata(L, 1), 1);
  return 0;
}

/* Park the connection (the handler returned PARK, fn, arg, deadline at
** 4..7) on a handle that calls conn_wake(server, stream, fn, arg). */
static void conn_park(lua_State *L, Server *sv) {
  Handle *h;
  lua_getiuservalue(L, 1, SVUV_WAKE);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 5);
  lua_pushvalue(L, 6);
  h = handle_new(L, sv->loop, K_HANDLE, 8, 4);
  loop_anchor(L, sv->loop, -1);
  stream_park(lua_touserdata(L, 2), h, lua_tonumber(L, 7));
}

/* After the handler: server, stream, msgh, then the error if it failed,
** or what it returned (4 values). */
static int conn_done(lua_State *L, int status, lua_KContext ctx) {
  Server *sv = lua_touserdata(L, 1);
  (void)ctx;
  if ((status == LUA_OK || status == LUA_YIELD) && lua_touserdata(L, 4) == PARK) {
    conn_park(L, sv);
    return 0;
  }
  stream_close(L, lua_touserdata(L, 2), 2, 0);
  conn_forget(L, sv, 1, 2);
  if (status != LUA_OK && status != LUA_YIELD) conn_report(L, sv, status, 4);
  return 0;
}

/* A task runs handler(stream, stream) for the new stream at sidx. */
static void conn_start(lua_State *L, Server *sv, int svidx, int sidx) {
  lua_getiuservalue(L, svidx, SVUV_CONNS);
  lua_pushvalue(L, sidx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  sv->nconns++;
  lua_pushvalue(L, sidx);
  lua_getiuservalue(L, svidx, SVUV_HANDLER);
  lua_pushvalue(L, sidx);
  lua_pushvalue(L, sidx);
  conn_task(L, sv, svidx);
}

/* ---------- accepting ---------- */

static void queue_acceptor(Server *sv) {
  Handle *h = sv->acceptor;
  if (h && !h->queued && !h->cancelled) {
    h->queued = 1;
    loop_ready_push(sv->loop, h);
  }
}

static void on_acceptable(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what;
  queue_acceptor(arg);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  Server *sv = arg;
  (void)fd; (void)what;
  if (sv->serving && accepting(sv, 1)) queue_acceptor(sv);
}

/* At maxconns: new connections wait in the listen backlog, where the
** kernel keeps them, until a handler finishes. */
static void accept_hold(Server *sv) {
  sv->held = 1;
  accepting(sv, 0);
}

static void accept_resume(Server *sv) {
  sv->held = 0;
  if (sv->serving && accepting(sv, 1)) queue_acceptor(sv);
}

/* Out of descriptors (or memory): the accept event would stay ready and
** spin, so accepting pauses for RETRY_MS. Reported once per shortage. */
static void accept_pause(lua_State *L, Server *sv, int err) {
  struct timeval tv = {0, RETRY_MS * 1000};
  accepting(sv, 0);
  evtimer_add(event_of(sv, sv->nsock), &tv);
  if (sv->warned) return;
  sv->warned = 1;
  errors_push_oserror(L, err, "accept");
  loop_report_error(L, sv->loop, "Server could not accept a connection; "
                    "accepting again in 0.1 s", -1, 1, "server", 0);
  lua_pop(L, 1);
}

/* Accept from socket k what is waiting, up to `room` connections (fewer
** at maxconns); returns how many tries are left. */
static int accept_from(lua_State *L, Server *sv, int k, int room) {
  int fd, err;
  for (; room > 0 && sv->serving; room--) {
    Stream *s;
    if (sv->maxconns && sv->nconns >= sv->maxconns) {
      accept_hold(sv);
      return 0;
    }
    s = stream_new(L, sv->loop, sv->limit);  /* before the fd */
    fd = accept4(sv->fds[k], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      err = errno;
      lua_pop(L, 1);
      if (err == EINTR || err == ECONNABORTED || err == EPROTO ||
          err == EPERM)
        continue;  /* that connection only */
      if (err == EAGAIN || err == EWOULDBLOCK) return room;
      accept_pause(L, sv, err);
      return 0;
    }
    sv->warned = 0;
    stream_set_limits(s, &sv->lim);
    stream_attach(s, fd, 1);
    conn_start(L, sv, 1, 2);
    lua_pop(L, 1);
  }
  return room;
}

/* The acceptor handle's callback: acceptor(server). Each call starts at
** the next socket, so that a flood on one does not starve the others. */
static int server_accept(lua_State *L) {
  Server *sv = lua_touserdata(L, 1);
  int i, room = ACCEPT_MAX, n = sv->nsock;
  for (i = 0; i < n && room > 0; i++)
    room = accept_from(L, sv, (sv->first + i) % n, room);
  if (n > 1) sv->first = (unsigned char)((sv->first + 1) % n);
  return 0;
}

/* ---------- opening and closing ---------- */

/* Push a new server on lp for the handler at hidx, for nsock sockets, none
** open yet. */
static Server *server_new(lua_State *L, Loop *lp, int hidx, size_t limit,
                          int nsock) {
  Server *sv = lua_newuserdatauv(L, sizeof(Server) +
                                 (nsock + 1) * lasync_evsize(), SVUV_NUV);
  int i;
  memset(sv, 0, sizeof *sv);
  sv->magic = LASYNC_MAGIC;
  sv->kind = K_SERVER;
  sv->loop = lp;
  sv->nsock = (unsigned char)nsock;
  for (i = 0; i < LISTEN_MAX; i++) sv->fds[i] = -1;
  sv->limit = limit;
  lasync_setmt(L, lp->mod, K_SERVER);
  loop_push(L, lp);
  lua_setiuservalue(L, -2, SVUV_LOOP);
  lua_pushvalue(L, hidx);
  lua_setiuservalue(L, -2, SVUV_HANDLER);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, conn_main, 1);
  lua_setiuservalue(L, -2, SVUV_MAIN);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, conn_wake, 1);
  lua_setiuservalue(L, -2, SVUV_WAKE);
  lua_newtable(L);
  lua_setiuservalue(L, -2, SVUV_CONNS);
  return sv;
}

/* Close the listening sockets (and remove the Unix socket file it made,
** unless another took its place). Idempotent; for close() and __gc. */
static void server_release(lua_State *L, Server *sv, int svidx) {
  struct stat st;
  int i;
  if (sv->fds[0] < 0) return;
  if (sv->assigned && sv->loop->base) {  /* a closed loop freed them */
    accepting(sv, 0);
    event_del(event_of(sv, sv->nsock));
  }
  for (i = 0; i < sv->nsock; i++) {
    if (sv->fds[i] >= 0) close(sv->fds[i]);
    sv->fds[i] = -1;
  }
  if (lua_getiuservalue(L, svidx, SVUV_PATH) == LUA_TSTRING &&
      stat(lua_tostring(L, -1), &st) == 0 && st.st_dev == sv->dev &&
      st.st_ino == sv->ino)
    unlink(lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* Stop serving: no more connections; the running ones go on. */
static void server_stop(lua_State *L, Server *sv, int svidx) {
  Handle *h = sv->acceptor;
  if (sv->closed) return;
  sv->closed = 1;
  sv->serving = 0;
  server_release(L, sv, svidx);
  if (h) {  /* the loop lets go of it, at once or when it is popped */
    h->cancelled = 1;
    if (!h->queued && sv->loop->base) loop_unanchor(L, sv->loop, h);
    sv->acceptor = NULL;
  }
  future_list_finish(L, svidx, SVUV_STOPPED);
  if (sv->nconns == 0) future_list_finish(L, svidx, SVUV_CLOSED);
}

/* Raise an OSError for err (saved) about what, closing the server. */
static int listen_failed(lua_State *L, Server *sv, int svidx, int err,
                         const char *what) {
  server_stop(L, sv, svidx);
  errors_push_oserror(L, err, what);
  return lua_error(L);
}

/* Start accepting on the sockets, which listen. */
static void server_start(lua_State *L, Server *sv, int svidx,
                         const char *what) {
  Loop *lp = sv->loop;
  int i, top = lua_gettop(L);
  for (i = 0; i < sv->nsock; i++)
    event_assign(event_of(sv, i), lp->base, sv->fds[i], EV_READ | EV_PERSIST,
                 on_acceptable, sv);
  evtimer_assign(event_of(sv, sv->nsock), lp->base, on_retry, sv);
  sv->assigned = 1;
  if (!accepting(sv, 1)) listen_failed(L, sv, svidx, ENOMEM, what);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, server_accept, 1);
  lua_pushvalue(L, svidx);
  sv->acceptor = handle_new(L, lp, K_WATCH, top + 1, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, svidx, SVUV_ACCEPTOR);
  loop_anchor(L, lp, -1);  /* the handle holds the server while serving */
  sv->serving = 1;
  lua_settop(L, top);
}

/* The listen backlog at idx (default DEFAULT_BACKLOG); also
** core.sys.listen_socket's. */
int server_checkbacklog(lua_State *L, int idx) {
  lua_Integer n = luaL_optinteger(L, idx, DEFAULT_BACKLOG);
  luaL_argcheck(L, n > 0 && n <= 65535, idx, "backlog must be from 1 to "
                "65535");
  return (int)n;
}

static void setopt(int fd, int level, int name, int on) {
  setsockopt(fd, level, name, &on, sizeof on);
}

/* A TCP socket bound to a as a server's are (also core.sys.listen_socket's):
** SO_REUSEADDR as asked, SO_REUSEPORT if asked, an IPv6 one IPv6 only.
** -1 on failure, errno telling why. */
int server_bind(const Addr *a, int reuse_address, int reuse_port) {
  int err, fd = socket(a->ss.ss_family,
                       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  setopt(fd, SOL_SOCKET, SO_REUSEADDR, reuse_address);
  if (reuse_port) setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (a->ss.ss_family == AF_INET6) setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == 0) return fd;
  err = errno;
  close(fd);
  errno = err;
  return -1;
}

/* Socket k of sv for a: bound, listening. On failure errno tells why;
** the socket, if made, is sv's to close. */
static int listen_socket(Server *sv, int k, const Addr *a, int reuse_address,
                         int reuse_port, int backlog) {
  int fd = server_bind(a, reuse_address, reuse_port);
  if (fd < 0) return -1;
  sv->fds[k] = fd;
  return listen(fd, backlog);
}

/* The addresses of the hosts at idx (a numeric address, or a list of 1 to
** LISTEN_MAX) with port; returns how many. */
static int checkhosts(lua_State *L, int idx, int port, Addr *as) {
  int i, n;
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, 1);
    lua_replace(L, idx);
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  n = (int)luaL_len(L, idx);
  luaL_argcheck(L, n >= 1 && n <= LISTEN_MAX, idx, "1 to 8 hosts expected");
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    if (lua_type(L, -1) != LUA_TSTRING ||
        addr_parse(lua_tostring(L, -1), port, &as[i]) != 0)
      luaL_argerror(L, idx, "numeric IPv4 or IPv6 addresses expected");
    lua_pop(L, 1);
  }
  return n;
}

/* "listen on HOST:PORT", for the errors about host i. */
static const char *listen_what(lua_State *L, int hosts, int i, int port) {
  const char *host;
  lua_rawgeti(L, hosts, i + 1);
  host = lua_tostring(L, -1);
  lua_pushfstring(L, strchr(host, ':') ? "listen on [%s]:%d"
                  : "listen on %s:%d", host, port);
  lua_remove(L, -2);
  return lua_tostring(L, -1);
}

/* core.tcp_server(handler, hosts, port, limit, backlog, reuse_address,
** reuse_port, any) -> Server, serving: a socket for each host (numeric,
** or a list of them). Port 0: the first socket's free port, taken by
** the others too. any: a later address of a family the system lacks is
** left out (the IPv6 of every interface, without IPv6). */
static int l_tcp_server(lua_State *L) {
  Loop *lp = lasync_running(L, lasync_mod(L));
  Addr as[LISTEN_MAX];
  int i, n, k = 0, port, backlog, reuse_address, reuse_port, any;
  size_t limit;
  Server *sv;
  lasync_checkcallable(L, 1, "handler function");
  port = addr_checkport(L, 3);
  n = checkhosts(L, 2, port, as);
  limit = stream_checklimit(L, 4);
  backlog = server_checkbacklog(L, 5);
  reuse_address = lua_isnoneornil(L, 6) || lua_toboolean(L, 6);
  reuse_port = lua_toboolean(L, 7);
  any = lua_toboolean(L, 8);
  lua_settop(L, 8);
  sv = server_new(L, lp, 1, limit, n);  /* 9 */
  for (i = 0; i < n; i++) {
    if (i > 0 && port == 0) addr_set_port(&as[i], addr_port_of(sv->fds[0]));
    if (listen_socket(sv, k, &as[i], reuse_address, reuse_port, backlog) == 0) {
      k++;
    } else if (any && k > 0 &&
               (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
      if (sv->fds[k] >= 0) close(sv->fds[k]);
      sv->fds[k] = -1;
    } else {
      int err = errno;
      return listen_failed(L, sv, 9, err, listen_what(L, 2, i, port ? port
                           : addr_port_of(sv->fds[0])));
    }
  }
  sv->nsock = (unsigned char)k;
  server_start(L, sv, 9, listen_what(L, 2, 0, port));
  lua_settop(L, 9);
  return 1;
}

/* The listening socket in the list at idx, item i (0-based): a copy of it,
** for the server at svidx; raises on failure. */
static void copy_socket(lua_State *L, Server *sv, int svidx, int idx, int i) {
  int fd;
  lua_rawgeti(L, idx, i + 1);
  fd = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
  lua_pop(L, 1);
  if (fd < 0) {
    server_stop(L, sv, svidx);
    luaL_argerror(L, idx, "a list of file descriptors expected");
  }
  sv->fds[i] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (sv->fds[i] < 0) listen_failed(L, sv, svidx, errno, "dup");
}

/* core._fd_server(handler, fds, limit) -> Server, serving the listening
** sockets of the list fds (1 to LISTEN_MAX), non-blocking, through copies
** of them: closing the server closes the copies only. The workers of
** `lasync serve` serve their master's sockets so: one accept queue for
** all of them, which outlives any worker (nginx's design). */
static int l_fd_server(lua_State *L) {
  Loop *lp = lasync_running(L, lasync_mod(L));
  int i, n;
  size_t limit;
  Server *sv;
  lasync_checkcallable(L, 1, "handler function");
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (int)luaL_len(L, 2);
  if (n < 1 || n > LISTEN_MAX)
    return luaL_argerror(L, 2, lua_pushfstring(L, "1 to %d descriptors expected", LISTEN_MAX));
  limit = stream_checklimit(L, 3);
  lua_settop(L, 3);
  sv = server_new(L, lp, 1, limit, n);  /* 4 */
  for (i = 0; i < n; i++) copy_socket(L, sv, 4, 2, i);
  server_start(L, sv, 4, "listen");
  return 1;
}

/* Remove a socket file left by a server that is gone, as asyncio does; a
** file of any other kind stays (and bind fails). */
static void remove_stale(const char *path) {
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
}

/* core.unix_server(handler, path, limit, backlog) -> Server, serving. */
static int l_unix_server(lua_State *L) {
  Loop *lp = lasync_running(L, lasync_mod(L));
  size_t limit;
  Server *sv;
  struct stat st;
  Addr a;
  int backlog;
  lasync_checkcallable(L, 1, "handler function");
  addr_from_path(L, 2, &a);
  limit = stream_checklimit(L, 3);
  backlog = server_checkbacklog(L, 4);
  lua_settop(L, 4);
  lua_pushfstring(L, "listen on %s", lua_tostring(L, 2));
  sv = server_new(L, lp, 1, limit, 1);  /* 6 */
  sv->fds[0] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (sv->fds[0] < 0) return listen_failed(L, sv, 6, errno, lua_tostring(L, 5));
  remove_stale(lua_tostring(L, 2));
  if (bind(sv->fds[0], (struct sockaddr *)&a.ss, a.len) != 0)
    return listen_failed(L, sv, 6, errno, lua_tostring(L, 5));
  if (stat(lua_tostring(L, 2), &st) == 0) {
    sv->dev = st.st_dev;
    sv->ino = st.st_ino;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 6, SVUV_PATH);
  }
  if (listen(sv->fds[0], backlog) != 0)
    return listen_failed(L, sv, 6, errno, lua_tostring(L, 5));
  server_start(L, sv, 6, lua_tostring(L, 5));
  lua_settop(L, 6);
  return 1;
}

/* ---------- Lua methods ---------- */

static int l_close(lua_State *L) {
  server_stop(L, checkserver(L), 1);
  return 0;
}

static int l_gc(lua_State *L) {
  server_release(L, checkserver(L), 1);
  return 0;
}

static int l_is_serving(lua_State *L) {
  lua_pushboolean(L, checkserver(L)->serving);
  return 1;
}

/* sockname(): host, port, or the path of a Unix socket; nil once closed. */
static int l_sockname(lua_State *L) {
  Server *sv = checkserver(L);
  if (sv->fds[0] < 0) return 0;
  if (lua_getiuservalue(L, 1, SVUV_PATH) == LUA_TSTRING) return 1;
  return addr_push_of(L, sv->fds[0], 0);
}

/* socknames(): a list of {host=, port=} ({path=} for a Unix socket), one
** per listening socket; empty once closed. */
static int l_socknames(lua_State *L) {
  Server *sv = checkserver(L);
  int i, n = 0;
  lua_settop(L, 1);
  lua_newtable(L);
  if (lua_getiuservalue(L, 1, SVUV_PATH) == LUA_TSTRING && sv->fds[0] >= 0) {
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, "path");
    lua_rawseti(L, 2, 1);
    return 1;
  }
  lua_pop(L, 1);
  for (i = 0; i < sv->nsock && sv->fds[i] >= 0; i++) {
    lua_createtable(L, 0, 2);
    if (addr_push_of(L, sv->fds[i], 0) != 2) {
      lua_pop(L, 1);
      continue;
    }
    lua_setfield(L, -3, "port");
    lua_setfield(L, -2, "host");
    lua_rawseti(L, 2, ++n);
  }
  return 1;
}

/* Close (or abort: without sending what is buffered) every connection
** whose handler runs; the handlers see the end of their input. */
static int close_all(lua_State *L, int abort) {
  checkserver(L);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, SVUV_CONNS);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    stream_close(L, lua_touserdata(L, -1), -1, abort);
  }
  return 0;
}

static int l_close_clients(lua_State *L) {
  return close_all(L, 0);
}

static int l_abort_clients(lua_State *L) {
  return close_all(L, 1);
}

/* wait_closed(): returns once closed and every handler has finished. */
static int l_wait_closed(lua_State *L) {
  Server *sv = checkserver(L);
  Task *t;
  lua_settop(L, 1);
  if (sv->closed && sv->nconns == 0) return 0;
  t = task_running(L, "wait_closed");
  future_list_push(L, sv->loop, 1, SVUV_CLOSED);
  return task_suspend(L, t, 2, task_resumed_k);
}

/* serve_forever(): returns once the server is closed; cancelled, it
** closes the server first. */
static int forever_k(lua_State *L, int status, lua_KContext ctx) {
  Server *sv = lua_touserdata(L, 1);
  (void)status; (void)ctx;
  sv->forever = 0;
  if (task_wait_cancelled(L, 2)) server_stop(L, sv, 1);
  task_resumed(L, 2);
  return 0;
}

static int l_serve_forever(lua_State *L) {
  Server *sv = checkserver(L);
  Task *t;
  lua_settop(L, 1);
  if (sv->closed) return luaL_error(L, "serve_forever: the server is closed");
  if (sv->forever)
    return luaL_error(L, "serve_forever: already running in another task");
  t = task_running(L, "serve_forever");
  future_list_push(L, sv->loop, 1, SVUV_STOPPED);
  sv->forever = 1;
  return task_suspend(L, t, 0, forever_k);
}

/* set_max_connections(n): beyond n running handlers, stop accepting until
** one finishes; nil or 0: no limit. */
static int l_set_max_connections(lua_State *L) {
  Server *sv = checkserver(L);
  lua_Integer n = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, n >= 0 && n <= INT_MAX, 2, "count from 0 expected");
  sv->maxconns = (int)n;
  if (sv->held && (n == 0 || sv->nconns < n)) accept_resume(sv);
  return 0;
}

/* core._server_set_limits(server, read_timeout, write_timeout, max_buffer)
** (checked by lasync.streams; nil or 0: none): of the connections it
** accepts from now on. */
static int l_set_limits(lua_State *L) {
  Server *sv = checkserver(L);
  sv->lim.read_timeout = (float)luaL_optnumber(L, 2, 0);
  sv->lim.write_timeout = (float)luaL_optnumber(L, 3, 0);
  sv->lim.max_buffer = (uint32_t)luaL_optinteger(L, 4, 0);
  return 0;
}

static int l_tostring(lua_State *L) {
  Server *sv = checkserver(L);
  if (sv->fds[0] < 0) lua_pushfstring(L, "<Server closed %p>", (void *)sv);
  else lua_pushfstring(L, "<Server fd=%d %d connections>", sv->fds[0],
                       sv->nconns);
  return 1;
}

static const luaL_Reg server_methods[] = {
  {"close", l_close},
  {"wait_closed", l_wait_closed},
  {"serve_forever", l_serve_forever},
  {"is_serving", l_is_serving},
  {"sockname", l_sockname},
  {"socknames", l_socknames},
  {"close_clients", l_close_clients},
  {"abort_clients", l_abort_clients},
  {"set_max_connections", l_set_max_connections},
  {NULL, NULL}
};

static const luaL_Reg server_meta[] = {
  {"__gc", l_gc},
  {"__close", l_close},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

static const luaL_Reg server_funcs[] = {
  {"tcp_server", l_tcp_server},
  {"unix_server", l_unix_server},
  {"_fd_server", l_fd_server},
  {"_server_set_limits", l_set_limits},
  {NULL, NULL}
};

void server_register(lua_State *L) {
  lasync_newmeta(L, K_SERVER, server_methods, server_meta);
  lasync_addfuncs(L, server_funcs);
  lua_pushinteger(L, LISTEN_MAX);  /* start_server's own check */
  lua_setfield(L, -2, "LISTEN_MAX");
  lua_pushlightuserdata(L, PARK);
  lua_setfield(L, -2, "_server_park");
}
