/*
** Subprocesses (lua/lasync/subprocess.lua composes them): core._spawn
** starts a child with posix_spawn and gives a Child, which owns the
** child's pidfd (pidfd_open(2)): the loop watches it (it becomes readable
** when the child ends), then Child:reap() collects the status with
** waitid(P_PIDFD, WNOHANG), so no SIGCHLD handler and no blocking wait is
** ever needed, and only this child is reaped. Signals go through the
** pidfd too (pidfd_send_signal), which cannot reach a process that took
** a reaped child's pid.
**
** Where pidfd_open is missing (ENOSYS: Linux before 5.3, valgrind 3.19, a
** seccomp filter), a Child watches SIGCHLD instead, with a libevent
** signal event of its own (libevent runs every event of a signal, so it
** shares SIGCHLD with `lasync serve`'s handler): it reaps its pid alone
** with waitpid(WNOHANG), then writes to an exit pipe whose read end is
** what the loop watches, as it would the pidfd. The signals then go by
** pid: kill(2), while the child is not reaped.
**
** glibc's posix_spawn runs the child with CLONE_VFORK until it execs: a
** failure to exec (ENOENT, EACCES, ...) is its return value, raised here.
** The child gets an empty signal mask and every signal at its default
** (libevent and `lasync serve` install handlers and ignore SIGPIPE). It
** inherits only its 0, 1 and 2: the pipes are made close-on-exec, and
** every other descriptor (some this process inherited without
** close-on-exec) is closed in it, as asyncio's close_fds does.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "lasync.h"

#define CHILD_MT "lasync.Child"

extern char **environ;

/* A child started by core._spawn: what the loop watches until it is
** reaped (or the Child is closed or collected: the child then goes on
** unwatched). */
typedef struct Child {
  int fd;                        /* the pidfd, or the exit pipe's read end
                                    (SIGCHLD watching); -1 once closed */
  int notify;                    /* the exit pipe's write end, or -1 */
  pid_t pid;
  int reaped;                    /* status collected: returncode is set */
  int returncode;                /* exit status, or -signal */
  int watching;                  /* the SIGCHLD event is added */
  Loop *loop;                    /* for the SIGCHLD event; a user value
                                    keeps it */
  EvMem evmem[];                 /* the SIGCHLD event */
} Child;

/* Use pidfds when the kernel has them; core._subprocess_use_pidfd(false)
** makes the specs try the SIGCHLD way. */
static int use_pidfd = 1;

/* What _spawn builds: the spawn's settings and the pipes' ends. */
typedef struct Spawn {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int parent[3];                 /* the parent's end of each pipe, or -1 */
  int child[3];                  /* the child's end, closed once spawned */
} Spawn;

enum { IO_INHERIT, IO_PIPE, IO_NULL, IO_STDOUT };
static const char *const io_modes[] = {"inherit", "pipe", "null", "stdout",
                                       NULL};

static Child *checkchild(lua_State *L) {
  return luaL_checkudata(L, 1, CHILD_MT);
}

/* ---------- the arguments ---------- */

/* A NULL-terminated array, in a userdata pushed (the GC frees it), of the
** strings of the list at idx (validated by the Lua layer: checked again,
** as this runs with pointers into them). */
static char **push_strv(lua_State *L, int idx) {
  lua_Integer i, n = luaL_len(L, idx);
  char **v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (i = 1; i <= n; i++) {
    lua_geti(L, idx, i);  /* the list keeps the string: the pointer stays */
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, idx, "list of strings");
    v[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  v[n] = NULL;
  return v;
}

/* The environment table at idx as a list of "name=value", pushed. */
static void push_envlist(lua_State *L, int idx) {
  lua_Integer n = 0;
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING &&
                  lua_type(L, -1) == LUA_TSTRING, idx, "table of strings");
    lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_rawseti(L, -4, ++n);
    lua_pop(L, 1);
  }
}

/* ---------- the spawn ---------- */

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* A pipe for the child's fd (0: its stdin), the parent's end non-blocking;
** both ends above 2, so that no dup2 of the child's overwrites another
** (the parent's own 0, 1 or 2 may be closed). 0 or an errno. */
static int make_pipe(Spawn *sp, int fd) {
  int p[2], i;
  if (pipe2(p, O_CLOEXEC) != 0) return errno;
  for (i = 0; i < 2; i++) {
    if (p[i] <= 2) {
      int moved = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
      close(p[i]);
      p[i] = moved;
    }
  }
  sp->child[fd] = fd == 0 ? p[0] : p[1];
  sp->parent[fd] = fd == 0 ? p[1] : p[0];
  if (p[0] < 0 || p[1] < 0) return EMFILE;
  if (fcntl(sp->parent[fd], F_SETFL, O_NONBLOCK) != 0) return errno;
  return posix_spawn_file_actions_adddup2(&sp->fa, sp->child[fd], fd);
}

/* The file action for the child's fd in mode; 0 or an errno. */
static int set_stdio(Spawn *sp, int fd, int mode) {
  switch (mode) {
    case IO_PIPE: return make_pipe(sp, fd);
    case IO_NULL:
      return posix_spawn_file_actions_addopen(&sp->fa, fd, "/dev/null",
                                              fd == 0 ? O_RDONLY : O_WRONLY,
                                              0);
    case IO_STDOUT: return posix_spawn_file_actions_adddup2(&sp->fa, 1, 2);
  }
  return 0;
}

/* Empty signal mask, every signal at its default, in the child. */
static int set_signals(Spawn *sp) {
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (posix_spawnattr_setsigmask(&sp->attr, &none) != 0 ||
      posix_spawnattr_setsigdefault(&sp->attr, &all) != 0)
    return EINVAL;
  return posix_spawnattr_setflags(&sp->attr, POSIX_SPAWN_SETSIGMASK |
                                  POSIX_SPAWN_SETSIGDEF);
}

/* The modes at 2..4, checked before any resource is taken. */
static void check_modes(lua_State *L, int *modes) {
  int fd;
  for (fd = 0; fd < 3; fd++) {
    modes[fd] = luaL_checkoption(L, fd + 2, NULL, io_modes);
    luaL_argcheck(L, modes[fd] != IO_STDOUT || fd == 2, fd + 2,
                  "\"stdout\" is for stderr only");
  }
}

/* Settings and pipes for the modes and the directory (or NULL); 0 or an
** errno. */
static int spawn_prepare(Spawn *sp, const int *modes, const char *cwd) {
  int fd, err;
  if ((err = set_signals(sp)) != 0) return err;
  for (fd = 0; fd < 3; fd++)
    if ((err = set_stdio(sp, fd, modes[fd])) != 0) return err;
  if ((err = posix_spawn_file_actions_addclosefrom_np(&sp->fa, 3)) != 0)
    return err;
  return cwd ? posix_spawn_file_actions_addchdir_np(&sp->fa, cwd) : 0;
}

/* The settings go; the child's ends close, and on failure (err) the
** parent's too. */
static void spawn_end(Spawn *sp, int err) {
  int fd;
  posix_spawn_file_actions_destroy(&sp->fa);
  posix_spawnattr_destroy(&sp->attr);
  for (fd = 0; fd < 3; fd++) {
    close_fd(&sp->child[fd]);
    if (err) close_fd(&sp->parent[fd]);
  }
}

static int raise_spawn(lua_State *L, int err, const char *prog) {
  const char *cwd = lua_tostring(L, 6);
  if (cwd) lua_pushfstring(L, "cannot run '%s' in '%s'", prog, cwd);
  else lua_pushfstring(L, "cannot run '%s'", prog);
  errors_push_oserror(L, err, lua_tostring(L, -1));
  return lua_error(L);
}

static void push_fd(lua_State *L, int fd) {
  if (fd >= 0) lua_pushinteger(L, fd);
  else lua_pushnil(L);
}

/* ---------- watching the child ---------- */

static void set_status(Child *c, int returncode) {
  c->reaped = 1;
  c->returncode = returncode;
}

static void sigchld_stop(Child *c) {
  if (c->watching && c->loop->base) event_del((struct event *)c->evmem);
  c->watching = 0;
}

/* SIGCHLD watching: reap the child if it ended, and tell the loop through
** the exit pipe. */
static void sigchld_reap(Child *c) {
  int status;
  pid_t r;
  if (c->reaped) return;
  do r = waitpid(c->pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return;
  set_status(c, r < 0 ? 255 : WIFSIGNALED(status) ? -WTERMSIG(status)
                : WEXITSTATUS(status));
  sigchld_stop(c);
  if (write(c->notify, "x", 1) < 0) {}  /* an empty pipe takes a byte */
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg) {
  (void)sig; (void)what;
  sigchld_reap(arg);
}

/* Watch the child c by SIGCHLD on lp; 0 or an errno. It may have ended
** already: reaped at once then. */
static int sigchld_watch(lua_State *L, Loop *lp, Child *c, int cidx) {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return errno;
  c->fd = p[0];
  c->notify = p[1];
  c->loop = lp;
  loop_push(L, lp);
  lua_setiuservalue(L, cidx, 1);
  evsignal_assign((struct event *)c->evmem, lp->base, SIGCHLD, on_sigchld, c);
  if (event_add((struct event *)c->evmem, NULL) != 0) return ENOMEM;
  c->watching = 1;
  sigchld_reap(c);
  return 0;
}

/* Watch the child c by its pidfd, or by SIGCHLD where there are none;
** 0 or an errno. */
static int child_watch(lua_State *L, Loop *lp, Child *c, int cidx) {
  if (use_pidfd && (c->fd = pidfd_open(c->pid, 0)) >= 0) return 0;
  if (use_pidfd && errno != ENOSYS) return errno;
  return sigchld_watch(L, lp, c, cidx);
}

/* The child started but cannot be watched: it goes, and err is raised. */
static int unwatchable(lua_State *L, Child *c, int err) {
  int status;
  kill(c->pid, SIGKILL);
  while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {}
  c->reaped = 1;
  errors_push_oserror(L, err, "cannot watch the child");
  return lua_error(L);
}

static Child *push_child(lua_State *L) {
  Child *c = lua_newuserdatauv(L, sizeof *c + lasync_evsize(), 1);
  memset(c, 0, sizeof *c);
  c->fd = c->notify = -1;
  luaL_setmetatable(L, CHILD_MT);
  return c;
}

/* core._spawn(argv, stdin, stdout, stderr, env, cwd) -> child, in_fd,
** out_fd, err_fd: argv a non-empty list of strings (its first searched
** in PATH unless it has a "/"); the modes "inherit", "pipe", "null" or
** (stderr) "stdout"; env nil (this process's) or a table name -> value,
** the child's whole environment; cwd nil or a directory. The fds are
** the parent's ends of the pipes (nil for the others). Raises OSError
** when the program cannot be started. Runs on the running loop, which
** watches the child. */
static int l_spawn(lua_State *L) {
  Loop *lp = lasync_running(L, lasync_mod(L));  /* before the child */
  char **argv, **envp = environ;
  Spawn sp = {.parent = {-1, -1, -1}, .child = {-1, -1, -1}};
  Child *c;
  int err, fd, modes[3];
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, luaL_len(L, 1) > 0, 1, "non-empty list of strings");
  check_modes(L, modes);
  lua_settop(L, 6);
  if (!lua_isnil(L, 6)) luaL_checktype(L, 6, LUA_TSTRING);
  argv = push_strv(L, 1);  /* 7 */
  if (!lua_isnil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    push_envlist(L, 5);  /* 8 */
    envp = push_strv(L, 8);
  }
  c = push_child(L);  /* before the resources */
  if (posix_spawn_file_actions_init(&sp.fa) != 0) return luaL_error(L, "out of memory");
  if (posix_spawnattr_init(&sp.attr) != 0) {
    posix_spawn_file_actions_destroy(&sp.fa);
    return luaL_error(L, "out of memory");
  }
  if ((err = spawn_prepare(&sp, modes, lua_tostring(L, 6))) == 0)
    err = posix_spawnp(&c->pid, argv[0], &sp.fa, &sp.attr, argv, envp);
  spawn_end(&sp, err);
  if (err) return raise_spawn(L, err, argv[0]);
  if ((err = child_watch(L, lp, c, lua_gettop(L))) != 0) {
    for (fd = 0; fd < 3; fd++) close_fd(&sp.parent[fd]);
    return unwatchable(L, c, err);
  }
  for (fd = 0; fd < 3; fd++) push_fd(L, sp.parent[fd]);
  return 4;
}

/* ---------- the Child ---------- */

/* reap() -> returncode (the exit status, or -signal), or nil while the
** child runs. A child someone else reaped (waitpid(-1) elsewhere in the
** process) reports 255, as asyncio does. */
static int l_reap(lua_State *L) {
  Child *c = checkchild(L);
  siginfo_t info;
  int r;
  if (c->notify >= 0) sigchld_reap(c);
  else if (!c->reaped && c->fd >= 0) {
    memset(&info, 0, sizeof info);
    do r = waitid((idtype_t)P_PIDFD, (id_t)c->fd, &info, WEXITED | WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r < 0 || info.si_pid != 0)
      set_status(c, r < 0 ? 255 : info.si_code == CLD_EXITED
                 ? info.si_status : -info.si_status);
  }
  if (!c->reaped) return 0;
  lua_pushinteger(L, c->returncode);
  return 1;
}

/* Signal the child: through its pidfd, or by pid while SIGCHLD watching
** has not reaped it (its pid cannot have been reused). */
static int child_signal(Child *c, int sig) {
  if (c->notify >= 0) return kill(c->pid, sig);
  return (int)syscall(SYS_pidfd_send_signal, c->fd, sig, NULL, 0);
}

/* send_signal(sig) -> true, or false when the child has ended. */
static int l_send_signal(lua_State *L) {
  Child *c = checkchild(L);
  int sig = watch_checksig(L, 2);
  if (c->reaped || c->fd < 0) lua_pushboolean(L, 0);
  else if (child_signal(c, sig) == 0) lua_pushboolean(L, 1);
  else if (errno == ESRCH) lua_pushboolean(L, 0);
  else {
    errors_push_oserror(L, errno, "send_signal");
    return lua_error(L);
  }
  return 1;
}

static int l_fileno(lua_State *L) {
  Child *c = checkchild(L);
  push_fd(L, c->fd);
  return 1;
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, checkchild(L)->pid);
  return 1;
}

/* A child still running when its Child goes (collected once the loop
** that watched it closed): killed and reaped, as asyncio's transport does,
** so that no zombie is left. SIGKILL makes the wait short. */
static void child_kill(Child *c) {
  siginfo_t info;
  int status;
  if (c->reaped || c->fd < 0) return;
  (void)child_signal(c, SIGKILL);  /* ESRCH: it has ended, not been reaped */
  if (c->notify >= 0) while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {}
  else while (waitid((idtype_t)P_PIDFD, (id_t)c->fd, &info, WEXITED) < 0 && errno == EINTR) {}
  set_status(c, -SIGKILL);
}

/* close(): a running child is killed and reaped; the pidfd (or the
** SIGCHLD event and the exit pipe) goes. */
static int l_close(lua_State *L) {
  Child *c = checkchild(L);
  child_kill(c);
  sigchld_stop(c);
  close_fd(&c->fd);
  close_fd(&c->notify);
  return 0;
}

/* core._subprocess_use_pidfd(on): pidfds (the default) or SIGCHLD. */
static int l_use_pidfd(lua_State *L) {
  use_pidfd = lua_toboolean(L, 1);
  return 0;
}

static const luaL_Reg child_methods[] = {
  {"reap", l_reap},
  {"send_signal", l_send_signal},
  {"fileno", l_fileno},
  {"pid", l_pid},
  {"close", l_close},
  {NULL, NULL}
};

static const luaL_Reg child_meta[] = {
  {"__gc", l_close},
  {"__close", l_close},
  {NULL, NULL}
};

static const luaL_Reg subprocess_funcs[] = {
  {"_spawn", l_spawn},
  {"_subprocess_use_pidfd", l_use_pidfd},
  {NULL, NULL}
};

void subprocess_register(lua_State *L) {
  luaL_newmetatable(L, CHILD_MT);
  luaL_setfuncs(L, child_meta, 0);
  luaL_newlib(L, child_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lasync_addfuncs(L, subprocess_funcs);
}
