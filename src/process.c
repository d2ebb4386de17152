/*
** Processes, for the `lasync serve` master: fork, waitpid, kill, getpid,
** getppid, ignore_signal, _exit, the wall clock of its logs and the pipe
** on which workers say they listen. A forked child inherits the kernel
** state of every libevent base (the epoll instance, the signal
** socketpair), shared with the parent: core.sys.fork(loop) gives the child's
** copy of that loop its own (event_reinit), so that the child may close it
** without touching the parent's. core.sys.listen_socket gives the master
** the listening sockets its workers share. core.sys.malloc_tune and
** malloc_trim give a serving process's freed memory back to the system.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/time.h>
#include <sys/wait.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include "lasync.h"

static int oserror(lua_State *L, const char *what) {
  errors_push_oserror(L, errno, what);
  return lua_error(L);
}

/* In the child: get sig when the parent dies (Linux only). A parent gone
** before the request is the caller's to see (getppid). */
static void die_with_parent(int sig) {
#ifdef __linux__
  if (sig) prctl(PR_SET_PDEATHSIG, sig);
#else
  (void)sig;
#endif
}

/* core.sys.fork([loop [, deathsig]]) -> pid in the parent, 0 in the child.
** The loop must not be running. deathsig: the signal the child gets when
** the parent dies (Linux). */
static int l_fork(lua_State *L) {
  Loop *lp = lua_isnoneornil(L, 1) ? NULL
             : lasync_checkobj(L, 1, K_LOOP, "loop");
  int deathsig = lua_isnoneornil(L, 2) ? 0 : watch_checksig(L, 2);
  pid_t pid;
  if (lp && lp->running) return luaL_error(L, "fork: the loop is running");
  pid = fork();
  if (pid < 0) return oserror(L, "fork");
  if (pid == 0) die_with_parent(deathsig);
  if (pid == 0 && lp && !lp->closed && event_reinit(lp->base) != 0)
    _exit(70);  /* the child cannot tell its loop from its parent's */
  lua_pushinteger(L, pid);
  return 1;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

static int l_getppid(lua_State *L) {
  lua_pushinteger(L, getppid());
  return 1;
}

/* core.sys.ignore_signal(sig): SIG_IGN, kept by forked children. */
static int l_ignore_signal(lua_State *L) {
  signal(watch_checksig(L, 1), SIG_IGN);
  return 0;
}

/* core.sys.waitpid(pid, nohang) -> pid, "exit" | "signal", code; or nothing
** with nohang when no child has finished (or there is none). */
static int l_waitpid(lua_State *L) {
  lua_Integer want = luaL_checkinteger(L, 1);
  int status, nohang = lua_toboolean(L, 2);
  pid_t pid;
  do pid = waitpid((pid_t)want, &status, nohang ? WNOHANG : 0);
  while (pid < 0 && errno == EINTR);
  if (pid < 0 && errno == ECHILD && nohang) return 0;
  if (pid < 0) return oserror(L, "waitpid");
  if (pid == 0) return 0;
  lua_pushinteger(L, pid);
  if (WIFSIGNALED(status)) {
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, WTERMSIG(status));
  } else {
    lua_pushliteral(L, "exit");
    lua_pushinteger(L, WEXITSTATUS(status));
  }
  return 3;
}

/* core.sys.kill(pid, sig): sig is a number or a name ("SIGTERM"). Returns
** true, or false when the process is gone. */
static int l_kill(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  int sig = watch_checksig(L, 2);
  luaL_argcheck(L, pid > 0, 1, "process id expected");
  if (kill((pid_t)pid, sig) == 0) lua_pushboolean(L, 1);
  else if (errno == ESRCH) lua_pushboolean(L, 0);
  else return oserror(L, "kill");
  return 1;
}

/* core.sys.signame(sig) -> "SIGTERM", or "signal N" for an unnamed one. */
static int l_signame(lua_State *L) {
  int sig = (int)luaL_checkinteger(L, 1);
  const char *name = watch_signame(sig);
  if (name) lua_pushstring(L, name);
  else lua_pushfstring(L, "signal %d", sig);
  return 1;
}

/* core.sys.wall_time() -> seconds since the epoch, to the microsecond (the
** loop's time is monotonic: no use for a log's timestamps). */
static int l_wall_time(lua_State *L) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  lua_pushnumber(L, (lua_Number)tv.tv_sec + tv.tv_usec / 1e6);
  return 1;
}

/* core.sys._exit(code): ends the process at once, without closing the Lua
** state (a forked child must not free what it shares with its parent). */
static int l_exit(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 0);
  fflush(NULL);
  _exit(code);
  return 0;
}

/* core.sys.listen_socket(host, port, backlog) -> host, port, fd: a TCP
** socket bound to the numeric host and port (0: a free one), listening,
** and the address bound. It stays open for the life of the process: the
** master of `lasync serve` keeps it and its workers, forked, serve it
** (core._fd_server), so they share one accept queue that no worker's
** death or exit resets. */
static int l_listen_socket(lua_State *L) {
  Addr a;
  int fd;
  int backlog = server_checkbacklog(L, 3);
  addr_from_host(L, 1, 2, &a);
  if ((fd = server_bind(&a, 1, 0)) < 0) return oserror(L, "bind");
  if (listen(fd, backlog) != 0 || addr_push_of(L, fd, 0) != 2) {
    int err = errno;
    close(fd);
    errno = err;
    return oserror(L, "listen");
  }
  lua_pushinteger(L, fd);
  return 3;
}

/* core.sys.pipe() -> rfd, wfd: non-blocking and close-on-exec. `lasync serve`
** workers tell their master through one that they listen. */
static int l_pipe(lua_State *L) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return oserror(L, "pipe");
  lua_pushinteger(L, fds[0]);
  lua_pushinteger(L, fds[1]);
  return 2;
}

/* core.sys.fd_read(fd) -> what one read(2) gives ("" at end of file), or nil
** when nothing is there yet. */
static int l_fd_read(lua_State *L) {
  char buf[4096];
  ssize_t n;
  int fd = watch_checkfd(L, 1);
  do n = read(fd, buf, sizeof buf);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  if (n < 0) return oserror(L, "read");
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

/* core.sys.fd_write(fd, s) -> true, or false when not all of s went out (a
** pipe of up to PIPE_BUF bytes is written whole or not at all). */
static int l_fd_write(lua_State *L) {
  size_t len;
  int fd = watch_checkfd(L, 1);
  const char *s = luaL_checklstring(L, 2, &len);
  ssize_t n;
  do n = write(fd, s, len);
  while (n < 0 && errno == EINTR);
  lua_pushboolean(L, n >= 0 && (size_t)n == len);
  return 1;
}

static int l_fd_close(lua_State *L) {
  if (close(watch_checkfd(L, 1)) != 0 && errno != EINTR)
    return oserror(L, "close");
  return 0;
}

/* glibc raises its mmap threshold to the largest block freed (up to
** 32 MiB), so after one 1 MiB body every such body comes from the heap,
** whose freed middle is never given back: a server's RSS climbs to its
** highest use. A fixed threshold keeps blocks of 128 KiB and more in
** mappings of their own, returned when freed. */
static int l_malloc_tune(lua_State *L) {
  (void)L;
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
#endif
  return 0;
}

/* The heap's free pages back to the system (glibc keeps all but the top's):
** some 60 us for a 2 MiB heap, 4 ms for one in 100,000 free fragments. */
static int l_malloc_trim(lua_State *L) {
  (void)L;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return 0;
}

static const luaL_Reg process_funcs[] = {
  {"fork", l_fork},
  {"getpid", l_getpid},
  {"getppid", l_getppid},
  {"ignore_signal", l_ignore_signal},
  {"waitpid", l_waitpid},
  {"kill", l_kill},
  {"signame", l_signame},
  {"wall_time", l_wall_time},
  {"_exit", l_exit},
  {"listen_socket", l_listen_socket},
  {"malloc_tune", l_malloc_tune},
  {"malloc_trim", l_malloc_trim},
  {"pipe", l_pipe},
  {"fd_read", l_fd_read},
  {"fd_write", l_fd_write},
  {"fd_close", l_fd_close},
  {NULL, NULL}
};

/* The serve command's system calls go in core.sys, apart from the API. */
void process_register(lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, process_funcs, 1);
  lua_setfield(L, -2, "sys");
}
