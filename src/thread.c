/*
** to_thread: a pool of native threads, each with a Lua state of its own,
** per loop (the loop's LX_THREAD extension, made on first use).
**
** A call copies its function (bytecode, lua_dump) and its arguments into a
** Job, a malloc'ed byte buffer: no Lua value crosses threads. A worker
** loads the function, runs it and writes its results (or its error and
** traceback) into the Job, then hands it back to the loop. Threads start
** only when work needs them (so `lasync serve` forks before any exists),
** up to the pool's size, and wait for more work between jobs.
**
** Completion reaches the loop through an eventfd read by one libevent
** event per pool: the loop's event base is made with
** EVENT_BASE_FLAG_NOLOCK, so event_active from another thread is not
** safe, and libevent's locking (evthread_use_pthreads) would make every
** event operation of every loop pay for a mutex. A worker writes the
** eventfd only when the list of finished jobs was empty, so that a burst
** of completions costs one wake-up. The event's callback (no Lua) queues
** each finished job's handle, which runs thread_done in Lua.
**
** Ownership: a Job is in exactly one place: the pool's queue, a worker
** (running), the pool's done list, or the delivered list (its handle is
** queued) until thread_done frees it. The caller's Ticket (a userdata on
** its stack and in the handle) points at the Job until then, so that a
** cancelled caller can take back a job no worker has started. Everything
** under Pool.mu but the delivered list and the event, which only the
** loop's thread touches.
**
** Closing the loop (thread_close) drops the jobs not started, waits for
** the running ones (as asyncio waits for its default executor at
** shutdown), ends and joins every worker, and frees what is left. A child
** forked while the pool had threads (a `lasync serve` master that ran
** to_thread) has none of them: it forsakes the pool and makes its own.
*/
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <lualib.h>
#include "lasync.h"

#define MAX_POOL 1024        /* set_thread_pool_size's bound */
#define MAX_DEPTH 100        /* nesting of copied tables */
#define FN_CACHE 64          /* loaded functions a worker keeps */
/* A worker that finishes a job gives way this many times (sched_yield)
** before it sleeps on the condition variable: a caller that awaits one
** job and submits the next finds it still awake, which spares a futex
** wake-up and a thread switch per call (calls made one after another
** went about twice as fast here). Yielding gives the core away when
** anything else wants it. */
#define SPINS 100

/* ---------- byte buffers ---------- */

typedef struct Buf { char *p; size_t n, cap; } Buf;

static int buf_put(Buf *b, const void *p, size_t n) {
  if (b->cap - b->n < n) {
    size_t cap = b->cap ? b->cap : 256;
    char *q;
    while (cap - b->n < n) {
      if (cap > SIZE_MAX / 2) return 0;
      cap *= 2;
    }
    if ((q = realloc(b->p, cap)) == NULL) return 0;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  return 1;
}

static void buf_free(Buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* ---------- copying values: encoding ---------- */

enum { V_NIL, V_FALSE, V_TRUE, V_INT, V_FLOAT, V_STR, V_TABLE, V_END };

/* An encoding in progress. keys[i]: the stack index of the key at depth
** i of the path to the value being encoded, for the error message. */
typedef struct Enc {
  lua_State *L;
  Buf *b;
  int seen;                      /* tables on the path, made at the first */
  int depth;
  int keys[MAX_DEPTH];
  const char *what;              /* what could not be copied, or NULL */
  int why;                       /* and why: F_* */
  int what_depth;                /* the length of the path to it */
} Enc;

/* Why a value could not be copied: its type (what is its name), as a
** value or as a key, or a limit (what says which). */
enum { F_VALUE, F_KEY, F_LIMIT };

static int enc_fail(Enc *e, const char *what, int why) {
  e->what = what;
  e->why = why;
  e->what_depth = e->depth;
  return 0;
}

#define enc_nomem(e) enc_fail(e, "not enough memory", F_LIMIT)

static int enc_tag(Enc *e, int tag) {
  char c = (char)tag;
  return buf_put(e->b, &c, 1) || enc_nomem(e);
}

static int enc_data(Enc *e, int tag, const void *p, size_t n) {
  return enc_tag(e, tag) && (buf_put(e->b, p, n) || enc_nomem(e));
}

static int enc_string(Enc *e, int idx) {
  size_t len;
  const char *s = lua_tolstring(e->L, idx, &len);
  return enc_data(e, V_STR, &len, sizeof len) &&
         (buf_put(e->b, s, len) || enc_nomem(e));
}

static int enc_number(Enc *e, int idx) {
  if (lua_isinteger(e->L, idx)) {
    lua_Integer i = lua_tointeger(e->L, idx);
    return enc_data(e, V_INT, &i, sizeof i);
  } else {
    lua_Number d = lua_tonumber(e->L, idx);
    return enc_data(e, V_FLOAT, &d, sizeof d);
  }
}

static int enc_value(Enc *e, int idx, int as);

/* Mark the table at idx as on the path (0 when it already is: a cycle). */
static int enc_enter(Enc *e, int idx) {
  lua_State *L = e->L;
  const void *p = lua_topointer(L, idx);
  if (e->seen == 0) {  /* depth 0: nothing is being iterated above */
    lua_newtable(L);
    e->seen = lua_gettop(L);
  }
  if (lua_rawgetp(L, e->seen, p) != LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  lua_rawsetp(L, e->seen, p);
  return 1;
}

/* Its raw contents, without the metatable. A table met twice on other
** paths (shared, not a cycle) is copied twice. */
static int enc_table(Enc *e, int idx) {
  lua_State *L = e->L;
  if (e->depth >= MAX_DEPTH)
    return enc_fail(e, "table nested too deep", F_LIMIT);
  if (!lua_checkstack(L, 4)) return enc_nomem(e);
  if (!enc_enter(e, idx)) return enc_fail(e, "table with a cycle", F_LIMIT);
  if (!enc_tag(e, V_TABLE)) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    if (!enc_value(e, top - 1, F_KEY)) return 0;
    e->keys[e->depth++] = top - 1;
    if (!enc_value(e, top, F_VALUE)) return 0;
    e->depth--;
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  lua_rawsetp(L, e->seen, lua_topointer(L, idx));
  return enc_tag(e, V_END);
}

/* Append the value at idx (absolute; as: F_VALUE or F_KEY); 0 with
** e->what set if it cannot be copied. The stack is then left as it is,
** for the message. */
static int enc_value(Enc *e, int idx, int as) {
  switch (lua_type(e->L, idx)) {
    case LUA_TNIL: return enc_tag(e, V_NIL);
    case LUA_TBOOLEAN:
      return enc_tag(e, lua_toboolean(e->L, idx) ? V_TRUE : V_FALSE);
    case LUA_TNUMBER: return enc_number(e, idx);
    case LUA_TSTRING: return enc_string(e, idx);
    case LUA_TTABLE: return enc_table(e, idx);
  }
  return enc_fail(e, luaL_typename(e->L, idx), as);
}

/* Push the path of the failed value: 'a.b[3]'. */
static void push_path(lua_State *L, Enc *e) {
  luaL_Buffer b;
  int i;
  luaL_buffinit(L, &b);
  for (i = 0; i < e->what_depth; i++) {
    int k = e->keys[i];
    if (lua_type(L, k) == LUA_TSTRING) {
      if (i > 0) luaL_addchar(&b, '.');
      lua_pushvalue(L, k);
      luaL_addvalue(&b);
    } else {
      lua_pushfstring(L, "[%s]", luaL_tolstring(L, k, NULL));
      lua_remove(L, -2);
      luaL_addvalue(&b);
    }
  }
  luaL_pushresult(&b);
}

/* Push what the failed encoding could not copy, as a message:
** "function at key 'a.b' cannot be copied to a thread", "table with a
** cycle at key 'a.b'". */
static void push_why(lua_State *L, Enc *e) {
  lua_pushfstring(L, "%s%s", e->what, e->why == F_KEY ? " key" : "");
  if (e->what_depth > 0) {
    lua_pushliteral(L, " at key '");
    push_path(L, e);
    lua_pushliteral(L, "'");
    lua_concat(L, 4);
  }
  if (e->why != F_LIMIT) {
    lua_pushliteral(L, " cannot be copied to a thread");
    lua_concat(L, 2);
  }
}

/* Encode the count n and the n values from first: 1, or 0 with *bad
** the number of the value that failed (from 1) and a message saying what
** and where pushed. */
static int enc_values(lua_State *L, Buf *b, int first, int n, int *bad) {
  Enc e;
  int i;
  memset(&e, 0, sizeof e);
  e.L = L;
  e.b = b;
  if (!buf_put(b, &n, sizeof n)) {
    *bad = 1;
    lua_pushliteral(L, "not enough memory");
    return 0;
  }
  for (i = 0; i < n; i++) {
    if (!enc_value(&e, first + i, F_VALUE)) {
      *bad = i + 1;
      push_why(L, &e);
      return 0;
    }
  }
  if (e.seen) lua_remove(L, e.seen);
  return 1;
}

/* ---------- copying values: decoding ---------- */

typedef struct Dec { const char *p; } Dec;

static void dec_get(Dec *d, void *p, size_t n) {
  memcpy(p, d->p, n);
  d->p += n;
}

/* Push the next value (trusted: encoded by enc_value, nested at most
** MAX_DEPTH deep). */
static void dec_value(lua_State *L, Dec *d) {
  lua_Integer i;
  lua_Number x;
  size_t len;
  luaL_checkstack(L, 3, "copying a value from a thread");
  switch (*d->p++) {
    case V_NIL: lua_pushnil(L); return;
    case V_FALSE: lua_pushboolean(L, 0); return;
    case V_TRUE: lua_pushboolean(L, 1); return;
    case V_INT: dec_get(d, &i, sizeof i); lua_pushinteger(L, i); return;
    case V_FLOAT: dec_get(d, &x, sizeof x); lua_pushnumber(L, x); return;
    case V_STR:
      dec_get(d, &len, sizeof len);
      lua_pushlstring(L, d->p, len);
      d->p += len;
      return;
  }
  lua_newtable(L);  /* V_TABLE */
  while (*d->p != V_END) {
    dec_value(L, d);
    dec_value(L, d);
    lua_rawset(L, -3);
  }
  d->p++;
}

/* Push the values encoded by enc_values; their number. */
static int dec_values(lua_State *L, Dec *d) {
  int i, n;
  dec_get(d, &n, sizeof n);
  luaL_checkstack(L, n + LUA_MINSTACK, "too many values from a thread");
  for (i = 0; i < n; i++) dec_value(L, d);
  return n;
}

/* ---------- jobs and the pool ---------- */

enum { J_QUEUED, J_RUNNING, J_DONE };
enum { RES_OK, RES_ERROR, RES_BAD };  /* first byte of a job's output */

typedef struct Job {
  struct Job *next, **prevp;     /* in the queue or the delivered list */
  Buf in;                        /* bytecode, then the arguments */
  Buf out;                       /* RES_*, then results or error */
  Handle *h;                     /* runs thread_done(future, ticket) */
  int state;                     /* J_*, under Pool.mu */
} Job;

typedef struct Ticket { Job *job; } Ticket;

typedef struct Worker {
  struct Worker *next;
  pthread_t tid;
  lua_State *L;
  struct Pool *pool;
  int dead;                      /* returned (to join), under Pool.mu */
} Worker;

typedef struct Pool {
  pthread_mutex_t mu;
  pthread_cond_t work;           /* a job is queued, or a worker must end */
  Job *queue, **qtail;           /* FIFO of jobs not started */
  int nqueued;
  Job *done, **dtail;            /* FIFO of finished jobs for the loop */
  Job *delivered;                /* handles queued (the loop's thread) */
  Worker *workers;
  int nthreads, nidle, size;     /* running workers, idle ones, at most */
  int stopping;
  int efd;                       /* written when done becomes non-empty */
  struct event *ev;
  Loop *loop;
  pid_t pid;                     /* the process whose threads these are */
} Pool;

#define thread_pool(lp) ((Pool *)(lp)->ext[LX_THREAD])

static void job_free(Job *j) {
  buf_free(&j->in);
  buf_free(&j->out);
  free(j);
}

static void list_insert(Job **head, Job *j) {
  j->next = *head;
  j->prevp = head;
  if (j->next) j->next->prevp = &j->next;
  *head = j;
}

static void list_remove(Job *j) {
  *j->prevp = j->next;
  if (j->next) j->next->prevp = j->prevp;
}

static void free_chain(Job *j) {
  while (j) {
    Job *next = j->next;
    job_free(j);
    j = next;
  }
}

/* Under mu: take j off the queue. */
static void queue_remove(Pool *p, Job *j) {
  if (p->qtail == &j->next) p->qtail = j->prevp;
  list_remove(j);
  p->nqueued--;
}

/* Under mu: the first queued job, taken off the queue. */
static Job *queue_pop(Pool *p) {
  Job *j = p->queue;
  queue_remove(p, j);
  return j;
}

/* ---------- the workers ---------- */

static const char tb_key = 0, cache_key = 0;

/* The message handler of fn's call: keeps the traceback where the error
** happened, returns the error as it is. */
static int worker_msgh(lua_State *L) {
  luaL_traceback(L, L, NULL, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &tb_key);
  return 1;
}

/* Push the worker's cache of loaded functions (bytecode -> function),
** made afresh when it is full; its size in *n. */
static void push_cache(lua_State *L, int *n) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) == LUA_TTABLE) {
    lua_getfield(L, -1, "n");
    *n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (*n < FN_CACHE) return;
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  *n = 0;
}

/* Replace the bytecode string at the top by its function: from the
** worker's cache, or loaded (binary only) and cached. */
static void load_fn(lua_State *L) {
  int n;
  push_cache(L, &n);
  lua_pushvalue(L, -2);
  if (lua_rawget(L, -2) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, lua_tostring(L, -2), lua_rawlen(L, -2), "=?",
                         "b") != LUA_OK)
      lua_error(L);
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
    lua_pushinteger(L, n + 1);
    lua_setfield(L, -3, "n");
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* Write fn's error and its traceback; an error value that cannot be
** copied is replaced by a message saying what it was. 0 when memory ran
** out. */
static int put_error(lua_State *L, Buf *b, int erridx) {
  int bad;
  char r = RES_ERROR;
  if (!buf_put(b, &r, 1)) return 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &tb_key);
  lua_insert(L, erridx + 1);
  if (enc_values(L, b, erridx, 2, &bad)) return 1;
  b->n = 1;
  lua_pushfstring(L, "(error object is a %s value)",
                  luaL_typename(L, erridx));
  lua_replace(L, erridx);
  return enc_values(L, b, erridx, 2, &bad);
}

/* Write a bad result: the message at the top (0 when even that fails:
** thread_done then says memory ran out). */
static void put_bad(lua_State *L, Buf *b) {
  int bad;
  char r = RES_BAD;
  b->n = 0;
  if (!buf_put(b, &r, 1) || !enc_values(L, b, lua_gettop(L), 1, &bad))
    b->n = 0;
}

/* Run in the worker's state, protected: load fn, call it with the
** arguments, write its results or its error. Returns whether the output
** is complete. */
static int job_call(lua_State *L) {
  Job *j = lua_touserdata(L, 1);
  Dec d = {j->in.p};
  int bad;
  char r = RES_OK;
  lua_settop(L, 0);
  lua_pushcfunction(L, worker_msgh);
  dec_value(L, &d);
  load_fn(L);
  if (lua_pcall(L, dec_values(L, &d), LUA_MULTRET, 1) != LUA_OK)
    lua_pushboolean(L, put_error(L, &j->out, 2));
  else if (buf_put(&j->out, &r, 1) &&
           enc_values(L, &j->out, 2, lua_gettop(L) - 1, &bad))
    lua_pushboolean(L, 1);
  else {
    lua_pushfstring(L, "bad result #%d from 'to_thread' (%s)", bad,
                    lua_tostring(L, -1));
    put_bad(L, &j->out);
    lua_pushboolean(L, j->out.n > 0);
  }
  return 1;
}

/* Run a job; the worker's state is left empty. A failure outside fn
** (memory) is reported as a bad result. */
static void job_run(lua_State *L, Job *j) {
  lua_pushcfunction(L, job_call);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    if (!lua_isstring(L, -1)) lua_pushliteral(L, "not enough memory");
    put_bad(L, &j->out);
  } else if (!lua_toboolean(L, -1)) j->out.n = 0;
  lua_settop(L, 0);
  buf_free(&j->in);
}

/* Under mu: hand a finished job to the loop; 1 when the loop must be
** woken (the done list was empty). */
static int done_push(Pool *p, Job *j) {
  int wake = p->done == NULL;
  j->state = J_DONE;
  j->next = NULL;
  *p->dtail = j;
  p->dtail = &j->next;
  return wake;
}

static void wake_loop(Pool *p) {
  uint64_t one = 1;
  ssize_t r;
  do r = write(p->efd, &one, sizeof one);
  while (r < 0 && errno == EINTR);  /* EAGAIN: it is awake already */
}

/* Under mu, the worker counted idle: wait for a job (giving way counts
** as idle: no new worker for the job); NULL when this worker must end
** (the pool stops or shrank). */
static Job *worker_next(Pool *p) {
  int spin;
  for (spin = 0; spin < SPINS && p->queue == NULL && !p->stopping; spin++) {
    pthread_mutex_unlock(&p->mu);
    sched_yield();
    pthread_mutex_lock(&p->mu);
  }
  while (p->queue == NULL && !p->stopping && p->nthreads <= p->size)
    pthread_cond_wait(&p->work, &p->mu);
  p->nidle--;
  if (p->queue == NULL || p->nthreads > p->size) return NULL;
  return queue_pop(p);
}

static void *worker_main(void *arg) {
  Worker *w = arg;
  Pool *p = w->pool;
  Job *j;
  pthread_mutex_lock(&p->mu);  /* counted idle since pool_grow */
  while ((j = worker_next(p)) != NULL) {
    int wake;
    j->state = J_RUNNING;
    pthread_mutex_unlock(&p->mu);
    job_run(w->L, j);
    pthread_mutex_lock(&p->mu);
    wake = done_push(p, j);
    /* idle before the loop can see the result: the call it makes next
    ** finds this worker, not a reason to start another */
    p->nidle++;
    if (wake) {
      pthread_mutex_unlock(&p->mu);
      wake_loop(p);
      pthread_mutex_lock(&p->mu);
    }
  }
  p->nthreads--;
  pthread_mutex_unlock(&p->mu);
  lua_close(w->L);
  w->L = NULL;
  pthread_mutex_lock(&p->mu);
  w->dead = 1;
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Join and free the workers that ended (the pool shrank), or all of them
** when the pool stops; not under mu. */
static void workers_reap(Pool *p, int all) {
  Worker **wp = &p->workers;
  while (*wp) {
    Worker *w = *wp;
    int dead;
    pthread_mutex_lock(&p->mu);
    dead = w->dead;
    pthread_mutex_unlock(&p->mu);
    if (!dead && !all) {
      wp = &w->next;
      continue;
    }
    pthread_join(w->tid, NULL);
    *wp = w->next;
    free(w);
  }
}

/* ---------- the loop's side ---------- */

/* The event's callback (the loop's thread, no Lua): queue the handle of
** every finished job. */
static void pool_ready(evutil_socket_t fd, short what, void *arg) {
  Pool *p = arg;
  uint64_t n;
  Job *j;
  (void)what;
  if (read(fd, &n, sizeof n) < 0) { /* EAGAIN: nothing new */ }
  pthread_mutex_lock(&p->mu);
  j = p->done;
  p->done = NULL;
  p->dtail = &p->done;
  pthread_mutex_unlock(&p->mu);
  while (j) {
    Job *next = j->next;
    list_insert(&p->delivered, j);
    loop_ready_push(p->loop, j->h);
    j = next;
  }
}

/* Free the pool's jobs, event, descriptor and memory; its workers are
** gone. */
static void pool_free(Loop *lp, Pool *p) {
  free_chain(p->queue);
  free_chain(p->done);
  free_chain(p->delivered);
  event_free(p->ev);
  close(p->efd);
  free(p);
  lp->ext[LX_THREAD] = NULL;
}

/* In a child forked after the pool started threads (a `lasync serve`
** script that used to_thread at its top level, in the master): they do
** not exist here, so neither join them, nor close their Lua states (a
** fork copies them in whatever state they were), nor touch the mutex
** and condition variable (a worker may have held the one, and waited on
** the other, whose destruction would then wait forever); free the rest. */
static void pool_forsake(Loop *lp, Pool *p) {
  while (p->workers) {
    Worker *w = p->workers;
    p->workers = w->next;
    free(w);
  }
  pool_free(lp, p);
}

/* The loop's close hook (LX_THREAD): drop the jobs not started, let the
** running ones finish, end and join the workers, free the rest. */
static void thread_close(lua_State *L, Loop *lp, int loopidx) {
  Pool *p = thread_pool(lp);
  Job *queued;
  (void)L, (void)loopidx;
  if (p == NULL) return;
  if (p->pid != getpid()) {
    pool_forsake(lp, p);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  queued = p->queue;
  p->queue = NULL;
  p->qtail = &p->queue;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  free_chain(queued);
  workers_reap(p, 1);
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  pool_free(lp, p);
}

/* The number of cores, at least 4. */
static int default_size(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 4 ? 4 : n > MAX_POOL ? MAX_POOL : (int)n;
}

static int pool_size(Mod *m) {
  if (m->thread_pool_size == 0) m->thread_pool_size = default_size();
  return m->thread_pool_size;
}

static void pool_init(Pool *p, Loop *lp) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  p->qtail = &p->queue;
  p->dtail = &p->done;
  p->loop = lp;
  p->size = pool_size(lp->mod);
  p->pid = getpid();
}

/* The loop's pool, made on first use (and again in a forked child). */
static Pool *pool_get(lua_State *L, Loop *lp) {
  Pool *p = thread_pool(lp);
  int efd, err;
  if (p && p->pid == getpid()) return p;
  if (p) pool_forsake(lp, p);
  if ((p = malloc(sizeof *p)) == NULL) luaL_error(L, "not enough memory");
  efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  err = errno;
  if (efd < 0) {
    free(p);
    errors_push_oserror(L, err, "eventfd");
    lua_error(L);
  }
  pool_init(p, lp);
  p->efd = efd;
  p->ev = event_new(lp->base, efd, EV_READ | EV_PERSIST, pool_ready, p);
  if (p->ev == NULL || event_add(p->ev, NULL) != 0) {
    if (p->ev) event_free(p->ev);
    close(efd);
    free(p);
    luaL_error(L, "cannot watch the thread pool's eventfd");
  }
  lp->ext[LX_THREAD] = p;
  return p;
}

/* A worker's state: the standard libraries and the caller's
** package.path and package.cpath, so that it can require what the caller
** can. NULL when there is no memory. */
static lua_State *worker_state(lua_State *L) {
  static const char *const fields[] = {"path", "cpath"};
  lua_State *W = luaL_newstate();
  int i, top = lua_gettop(L);
  if (W == NULL) return NULL;
  luaL_openlibs(W);
  lua_getglobal(W, "package");
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "package") == LUA_TTABLE) {
    for (i = 0; i < 2; i++) {
      if (lua_getfield(L, top + 2, fields[i]) == LUA_TSTRING) {
        lua_pushstring(W, lua_tostring(L, -1));
        lua_setfield(W, -2, fields[i]);
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  lua_pop(W, 1);
  return W;
}

/* Start a worker, with every signal blocked (they are the loop thread's
** to handle); errno, or 0. */
static int worker_start(lua_State *L, Pool *p) {
  sigset_t all, old;
  Worker *w = calloc(1, sizeof *w);
  int err;
  if (w == NULL || (w->L = worker_state(L)) == NULL) {
    free(w);
    return ENOMEM;
  }
  w->pool = p;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = pthread_create(&w->tid, NULL, worker_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err) {
    lua_close(w->L);
    free(w);
    return err;
  }
  w->next = p->workers;
  p->workers = w;
  return 0;
}

/* Under mu: does the queue need one more worker? */
static int needs_worker(Pool *p) {
  return p->nqueued > p->nidle && p->nthreads < p->size;
}

/* Under mu: append j to the queue. */
static void queue_push(Pool *p, Job *j) {
  j->state = J_QUEUED;
  j->next = NULL;
  j->prevp = p->qtail;
  *p->qtail = j;
  p->qtail = &j->next;
  p->nqueued++;
}

/* Take back a job no worker has started; 1 if it was. */
static int pool_unqueue(Pool *p, Job *j) {
  int queued;
  pthread_mutex_lock(&p->mu);
  queued = j->state == J_QUEUED;
  if (queued) queue_remove(p, j);
  pthread_mutex_unlock(&p->mu);
  return queued;
}

/* Start workers while the queue needs them; errno of the first that
** could not start, or 0. A new worker counts as running and idle at once,
** before its thread runs: the next job waits for it rather than starting
** another. */
static int pool_grow(lua_State *L, Pool *p) {
  int err = 0;
  pthread_mutex_lock(&p->mu);
  while (err == 0 && needs_worker(p)) {
    p->nthreads++;
    p->nidle++;
    pthread_mutex_unlock(&p->mu);
    err = worker_start(L, p);
    pthread_mutex_lock(&p->mu);
    if (err) p->nthreads--, p->nidle--;
  }
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  return err;
}

/* Queue the job and start a worker if none is free and the pool may
** grow; a failure to start one is an error only when there is none (the
** job is then taken back). */
static void pool_submit(lua_State *L, Pool *p, Job *j) {
  int err, alone;
  pthread_mutex_lock(&p->mu);
  p->size = pool_size(p->loop->mod);
  queue_push(p, j);
  if (!needs_worker(p)) {
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return;
  }
  pthread_mutex_unlock(&p->mu);
  if ((err = pool_grow(L, p)) == 0) return;
  pthread_mutex_lock(&p->mu);
  alone = p->nthreads == 0;
  pthread_mutex_unlock(&p->mu);
  if (alone && pool_unqueue(p, j)) {
    job_free(j);
    errors_push_oserror(L, err, "cannot start a worker thread");
    lua_error(L);
  }
}

/* ---------- lasync.to_thread ---------- */

/* The worker's error at 3 and its traceback at 4: a string gets the
** traceback after it, a table in its field traceback (unless it has
** one); other values stay as they are. */
static void with_traceback(lua_State *L) {
  if (lua_type(L, 3) == LUA_TSTRING) {
    lua_pushvalue(L, 3);
    lua_pushliteral(L, "\n");
    lua_pushvalue(L, 4);
    lua_concat(L, 3);
    lua_replace(L, 3);
  } else if (lua_type(L, 3) == LUA_TTABLE &&
             lua_getfield(L, 3, "traceback") == LUA_TNIL) {
    lua_pushvalue(L, 4);
    lua_setfield(L, 3, "traceback");
  }
  lua_settop(L, 4);
}

/* The handle's callback: future, ticket. A future no longer pending was
** cancelled: the job's output is dropped. */
static int thread_done(lua_State *L) {
  Future *f = lua_touserdata(L, 1);
  Ticket *tk = lua_touserdata(L, 2);
  Job *j = tk->job;
  Dec d;
  int n, res;
  tk->job = NULL;
  list_remove(j);
  if (f->state != F_PENDING || j->out.n == 0) {
    int nomem = f->state == F_PENDING;
    job_free(j);
    if (nomem) {
      lua_pushliteral(L, "not enough memory in a worker thread");
      future_set_error(L, f, 1, -1, 0);
    }
    return 0;
  }
  res = j->out.p[0];
  d.p = j->out.p + 1;
  lua_settop(L, 2);
  n = dec_values(L, &d);
  job_free(j);
  if (res == RES_OK) future_set_results(L, f, 1, 3, n);
  else if (res == RES_BAD) future_set_error(L, f, 1, 3, 0);
  else {
    with_traceback(L);
    future_set_error(L, f, 1, 3, 4);
  }
  return 0;
}

/* Refuse a function that cannot travel as bytecode: a C function, or one
** with an upvalue other than _ENV. */
static void check_fn(lua_State *L) {
  const char *name;
  int i;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_iscfunction(L, 1))
    luaL_argerror(L, 1, "Lua function expected, got C function");
  for (i = 1; (name = lua_getupvalue(L, 1, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      luaL_argerror(L, 1, lua_pushfstring(L,
          "function with upvalue '%s' cannot be sent to a thread; "
          "only _ENV may be an upvalue", name));
  }
}

/* lua_dump's writer: the buffer starts at the first block, once the
** function is at the top (as string.dump does it). */
typedef struct DumpState { int init; luaL_Buffer b; } DumpState;

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  DumpState *ds = ud;
  if (!ds->init) {
    ds->init = 1;
    luaL_buffinit(L, &ds->b);
  }
  luaL_addlstring(&ds->b, p, n);
  return 0;
}

/* Push fn's bytecode (with debug information, for tracebacks), from the
** weak cache in upvalue 3 or dumped into it. */
static void push_bytecode(lua_State *L) {
  DumpState ds;
  lua_pushvalue(L, 1);
  if (lua_rawget(L, lua_upvalueindex(3)) == LUA_TSTRING) return;
  lua_pop(L, 1);
  lua_pushvalue(L, 1);  /* lua_dump dumps the function at the top */
  ds.init = 0;
  lua_dump(L, dump_writer, &ds, 0);
  luaL_pushresult(&ds.b);  /* a Lua function's dump is never empty */
  lua_remove(L, -2);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, lua_upvalueindex(3));
}

/* A new job holding fn's bytecode and the arguments from 2 to n, or an
** error naming the argument that cannot be copied. */
static Job *job_new(lua_State *L, int n) {
  Job *j = calloc(1, sizeof *j);
  Enc e;
  int bad;
  if (j == NULL) luaL_error(L, "not enough memory");
  memset(&e, 0, sizeof e);
  e.L = L;
  e.b = &j->in;
  push_bytecode(L);
  if (!enc_value(&e, lua_gettop(L), F_VALUE) ||
      !enc_values(L, &j->in, 2, n - 1, &bad)) {
    job_free(j);
    if (e.what) luaL_error(L, "not enough memory");
    luaL_argerror(L, bad + 1, lua_tostring(L, -1));
  }
  return j;
}

/* Stack slots of to_thread once the job is made. */
enum { SLOT_TICKET = 1, SLOT_FUTURE };

/* After the wait, however it ended: a job a cancelled caller leaves is
** taken back if no worker started it (the others run to the end, their
** results dropped). */
static int to_thread_k(lua_State *L, int status, lua_KContext ctx) {
  Ticket *tk = lua_touserdata(L, SLOT_TICKET);
  Future *f = lua_touserdata(L, SLOT_FUTURE);
  (void)ctx;
  if (status == LUA_OK || status == LUA_YIELD)
    return lua_gettop(L) - SLOT_FUTURE;
  if (tk->job && pool_unqueue(thread_pool(f->loop), tk->job)) {
    loop_unanchor(L, f->loop, tk->job->h);
    job_free(tk->job);
    tk->job = NULL;
  }
  return lua_error(L);
}

/* to_thread(fn, ...): fn(...)'s results, from a worker thread.
** Upvalues: Mod, thread_done, the bytecode cache, await. */
static int l_to_thread(lua_State *L) {
  Loop *lp;
  Pool *p;
  Job *j;
  Ticket *tk;
  int fn;
  check_fn(L);
  lp = lasync_running(L, lasync_mod(L));
  if (lp->current == NULL)
    return luaL_error(L, "to_thread called outside a task");
  p = pool_get(L, lp);
  j = job_new(L, lua_gettop(L));
  lua_settop(L, 0);
  tk = lua_newuserdatauv(L, sizeof *tk, 0);
  tk->job = j;
  future_new(L, lp, K_FUTURE, sizeof(Future), FUV_NUV);
  fn = lua_gettop(L) + 1;
  lua_pushvalue(L, lua_upvalueindex(2));  /* thread_done */
  lua_pushvalue(L, SLOT_FUTURE);
  lua_pushvalue(L, SLOT_TICKET);
  j->h = handle_new(L, lp, K_HANDLE, fn, 2);
  loop_anchor(L, lp, -1);
  lua_settop(L, SLOT_FUTURE);
  pool_submit(L, p, j);
  lua_pushvalue(L, lua_upvalueindex(4));  /* await(future) */
  lua_pushvalue(L, SLOT_FUTURE);
  return to_thread_k(L, lua_pcallk(L, 1, LUA_MULTRET, 0, 0, to_thread_k), 0);
}

/* set_thread_pool_size(n): at most n workers per loop from now on; the
** running loop's pool grows for the jobs waiting, or shrinks as workers
** finish their job. Returns the size it had. */
static int l_set_thread_pool_size(lua_State *L) {
  Mod *m = lasync_mod(L);
  Pool *p = m->running ? thread_pool(m->running) : NULL;
  if (p && p->pid != getpid()) p = NULL;  /* forked: to_thread makes anew */
  lua_Integer n;
  luaL_argexpected(L, lua_isinteger(L, 1), 1, "integer");
  n = lua_tointeger(L, 1);
  if (n < 1 || n > MAX_POOL)
    luaL_argerror(L, 1, lua_pushfstring(L,
        "pool size must be from 1 to %d, got %I", MAX_POOL, n));
  lua_pushinteger(L, pool_size(m));
  m->thread_pool_size = (int)n;
  if (p == NULL) return 1;
  workers_reap(p, 0);
  pthread_mutex_lock(&p->mu);
  p->size = (int)n;
  pthread_mutex_unlock(&p->mu);
  pool_grow(L, p);  /* and the excess idle workers end */
  return 1;
}

/* core._thread_workers(): the workers the running loop's pool has
** started and not yet ended (0 without a pool), for the specs. */
static int l_thread_workers(lua_State *L) {
  Mod *m = lasync_mod(L);
  Pool *p = m->running ? thread_pool(m->running) : NULL;
  int n = 0;
  if (p) {
    pthread_mutex_lock(&p->mu);
    n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
  }
  lua_pushinteger(L, n);
  return 1;
}

/* Stack: Mod, core table (with core.await, from task_register). */
void thread_register(lua_State *L) {
  loop_register_ext(L, LX_THREAD, thread_close);
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, thread_done, 1);
  lua_newtable(L);  /* weak-keyed: function -> its bytecode */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_getfield(L, -4, "await");
  lua_pushcclosure(L, l_to_thread, 4);
  lua_setfield(L, -2, "to_thread");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, l_set_thread_pool_size, 1);
  lua_setfield(L, -2, "set_thread_pool_size");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, l_thread_workers, 1);
  lua_setfield(L, -2, "_thread_workers");
}
