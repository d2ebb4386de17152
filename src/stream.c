/*
** Streams: a connected socket with its own input and output buffers, over
** plain libevent events (bufferevents cap a read at 4 KiB per callback and
** delay every write by one loop pass, which the echo benchmarks against
** c-libevent-raw measured: bench/README.md). One Stream is both the
** reader and the writer of a connection.
**
** The two events are persistent and their callbacks touch C memory only:
** the read event receives into the input buffer, up to the limit while no
** reader waits (then reading pauses: backpressure), or only wakes a
** read(n) that found nothing buffered, which then receives straight into
** its string; the write event, made only while output waits for room,
** sends the output buffer. Every wait of a stream is a park (a wait with
** no Future: task_park): a reader parks as s->reader, a drain(), the
** connect or the TLS handshake as s->writer, and the callbacks unpark them
** (no Lua); a cancellation takes them off the stream at once (the park's
** cleanup). The waiter then looks at the stream again: nothing is handed
** to it; a connection error is kept as an errno and raised by the
** waiter.
**
** TLS (src/tls.c): start_tls puts a session between the stream and its
** socket. The handshake runs from the events, under a deadline, while the
** task that asked is parked as the writer; afterwards the same paths
** read and write through the session. OpenSSL may want the socket the other
** way round (tls_rww, tls_wwr), and may hold input that the socket will not
** signal again: the read event is then made active by hand.
**
** Pipes (a subprocess's stdio, src/subprocess.c): a stream over one end
** of a pipe reads and writes with read() and write(), SIGPIPE held back;
** the read end cannot be written, the write end reads as at EOF, and its
** write_eof() is its close (the child's EOF).
**
** Lifetime: whoever uses a stream holds it (a task waiting in one of its
** methods has it on its stack); one dropped is collected and its socket
** closed. close() with output still buffered anchors a handle that keeps
** the stream until the flush ends, then runs closer_done.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include "lasync.h"

#define HIGH_WATER (64 * 1024)   /* drain() waits while more is buffered */
#define LOW_WATER (16 * 1024)    /* and is woken once at most this is */
#define CHUNK (64 * 1024)        /* most one recv() asks for */
#define SCRATCH(lp) ((char *)(lp)->ext[LX_STREAM])  /* see scratch() */
#define SMALL 4096               /* input buffers above it are shrunk */
#define DEFAULT_LIMIT 65536

/* 32-bit sizes (every idle connection has two): a buffer that would pass
** 4 GiB fails as out of memory. */
typedef struct Buf {
  char *p;
  uint32_t off, len, cap;        /* data is p[off .. off+len) */
} Buf;

/* The phases of a connection, in this order; a stream only goes forward,
** but for the handshake, which starts from PH_OPEN and returns to it. */
enum {
  PH_CONNECTING,   /* the writer waits for the connect to end */
  PH_HANDSHAKING,  /* the TLS handshake runs the events (hs_wait) */
  PH_OPEN,         /* (also a new stream, until stream_attach) */
  PH_WRITE_SHUT,   /* write_eof() shut the sending side, once flushed */
  PH_CLOSING,      /* close() or a failure: closes once flushed */
  PH_CLOSED        /* the socket is closed (fd -1) */
};
#define is_closing(s) ((s)->phase >= PH_CLOSING)
enum { PIPE_NONE, PIPE_R, PIPE_W };
/* The limits (StreamLimits) that fail a connection, for its error. */
enum { FAIL_NONE, FAIL_READ, FAIL_WRITE, FAIL_BUFFER };
/* Output written now is dropped, as asyncio drops it (drain() raises). */
#define drops_output(s) ((s)->fd < 0 || is_closing(s) || (s)->err)

struct Stream {
  OBJ_HEAD;                      /* K_STREAM */
  int fd;                        /* -1 before connecting and once closed */
  int err;                       /* errno of the connection's failure */
  size_t limit;                  /* input buffered before reading pauses */
  size_t want;                   /* input the waiting reader needs */
  size_t received;               /* bytes received so far, for idle checks */
  double deadline;               /* the waiting reader's, on loop time; 0:
                                    none (stream_wait_input) */
  StreamLimits lim;              /* a server's: timeouts, max output */
  Buf in, out;
  Task *reader;                  /* the task parked in a read, or NULL */
  Task *writer;                  /* the task parked in drain(), the connect
                                    or the handshake, or NULL */
  Handle *waker;                 /* queued when input comes to a connection
                                    parked without a task (stream_park) */
  Handle *closer;                /* anchored while close() flushes */
  Tls *tls;                      /* the TLS session, or NULL */
  struct event *wev;             /* the write event, while it is added */
  unsigned char reading, writing;  /* the read / write event is added */
  /* bits: every idle connection has a stream */
  unsigned phase : 3;            /* PH_* */
  unsigned direct : 1;           /* the reader receives itself: on_read */
  unsigned eof : 1;              /* no more input: the peer's EOF, close() */
  unsigned wrote_eof : 1;        /* write_eof() was called: no more writes */
  unsigned accepted : 1;         /* a server's: the TLS server side */
  unsigned hs_timedout : 1;      /* the handshake took too long */
  unsigned tls_rww : 1;          /* a TLS read waits for room to write */
  unsigned tls_wwr : 1;          /* a TLS write waits for input */
  unsigned timedout : 1;         /* the reader's deadline passed */
  unsigned pipe : 2;             /* PIPE_R, PIPE_W: a pipe's end; 0: a socket */
  unsigned failed_by : 2;        /* FAIL_*: which limit failed it, if any */
  EvMem evmem[];                 /* the read event */
};

/* Stream user values. */
enum {
  SUV_LOOP = 1,    /* the loop, kept alive: its base holds the events */
  SUV_EXTRAS,      /* the extras below, or nil */
  SUV_NUV = SUV_EXTRAS
};

/* The user values an idle stream never needs are those of a userdata of
** their own, the extras, made on first use (16 bytes less per stream for
** each). */
enum {
  XUV_DRAINERS = 1, /* futures of further drain() callers, or nil */
  XUV_CLOSED,      /* futures of wait_closed() callers, or nil */
  XUV_CLOSER,      /* the closer handle, or nil: *closer stays valid */
  XUV_NUV = XUV_CLOSER
};

#define checkstream(L) stream_check(L, 1)

#define push_extras(L, sidx, make) \
  lasync_pushx(L, sidx, SUV_EXTRAS, XUV_NUV, make)

/* future_list_finish for the futures in extra user value xuv. */
static void wake_all(lua_State *L, int sidx, int xuv) {
  if (push_extras(L, sidx, 0)) future_list_finish(L, -1, xuv);
  lua_pop(L, 1);
}

/* future_list_push with the list in extra user value xuv. */
static void push_listed(lua_State *L, Stream *s, int sidx, int xuv) {
  push_extras(L, sidx, 1);
  future_list_push(L, s->loop, -1, xuv);
  lua_remove(L, -2);
}

#define set_extra(L, sidx, xuv) lasync_setx(L, sidx, SUV_EXTRAS, xuv, XUV_NUV)

/* ---------- buffers ---------- */

#define buf_data(b) ((b)->p + (b)->off)
#define buf_end(b) ((b)->p + (b)->off + (b)->len)

static void buf_free(Buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* Room for n more bytes after the data; 0 when out of memory. */
static int buf_reserve(Buf *b, size_t n) {
  size_t cap;
  char *p;
  if ((size_t)b->cap - b->off - b->len >= n) return 1;
  if (n > UINT32_MAX - b->len) return 0;
  if (b->off) {
    memmove(b->p, b->p + b->off, b->len);
    b->off = 0;
    if (b->cap - b->len >= n) return 1;
  }
  for (cap = b->cap ? b->cap : n; cap - b->len < n; cap *= 2) {}
  if (cap > UINT32_MAX) cap = UINT32_MAX;
  if ((p = realloc(b->p, cap)) == NULL) return 0;
  b->p = p;
  b->cap = (uint32_t)cap;
  return 1;
}

static int buf_append(Buf *b, const char *s, size_t n) {
  if (!buf_reserve(b, n)) return 0;
  memcpy(buf_end(b), s, n);
  b->len += (uint32_t)n;
  return 1;
}

/* Drop n bytes from the front; an emptied buffer gives its memory back,
** so that an idle stream holds none. */
static void buf_consume(Buf *b, size_t n) {
  b->off += (uint32_t)n;
  b->len -= (uint32_t)n;
  if (b->len == 0) buf_free(b);
}

/* A big buffer mostly empty shrinks to its data: a stream waiting for the
** rest of a short line does not keep a whole chunk. */
static void buf_fit(Buf *b) {
  char *p;
  if (b->len == 0 || b->cap <= SMALL || b->off + b->len > b->cap / 4) return;
  memmove(b->p, b->p + b->off, b->len);
  b->off = 0;
  if ((p = realloc(b->p, b->len)) == NULL) return;  /* keeps the old one */
  b->p = p;
  b->cap = b->len;
}

/* ---------- events: C only, they run inside event_base_loop ---------- */

static void on_write(evutil_socket_t fd, short what, void *arg);

static struct event *event_of(Stream *s, int write) {
  return write ? s->wev : (struct event *)s->evmem;
}

/* The write event exists only while it is added (output waits for room,
** or a connect for its end): an idle stream does not carry one. */
static int wev_make(Stream *s) {
  if ((s->wev = malloc(lasync_evsize())) == NULL) return 0;
  event_assign(s->wev, s->loop->base, s->fd, EV_WRITE | EV_PERSIST,
               on_write, s);
  return 1;
}

static void wev_free(Stream *s) {
  free(s->wev);
  s->wev = NULL;
}

static void to_timeval(double seconds, struct timeval *tv) {
  if (seconds < 0) seconds = 0;
  tv->tv_sec = (time_t)seconds;
  tv->tv_usec = (suseconds_t)((seconds - (double)tv->tv_sec) * 1e6);
}

/* The read event's timeout: the time left to a waiting reader's deadline,
** or none. */
static const struct timeval *read_tv(Stream *s, struct timeval *tv) {
  if ((s->reader == NULL && s->waker == NULL) || s->deadline <= 0) return NULL;
  to_timeval(s->deadline - loop_time(s->loop), tv);
  return tv;
}

/* The write event's timeout: with a write timeout, output that no event
** moves on for that long fails the connection (a persistent event's
** timeout restarts each time it fires, so it times the lack of progress). */
static const struct timeval *write_tv(Stream *s, struct timeval *tv) {
  if (s->lim.write_timeout <= 0 || s->phase < PH_OPEN) return NULL;
  to_timeval(s->lim.write_timeout, tv);
  return tv;
}

/* The connection fails by one of its limits. */
static void limit_failed(Stream *s, int by, int err) {
  if (s->err) return;
  s->err = err;
  s->failed_by = (unsigned)by & 3;
}

/* Add or delete an event; failing to add one is the stream's failure. A
** closed loop freed its base and its events with it. */
static void ev_switch(Stream *s, int write, int on) {
  unsigned char *added = write ? &s->writing : &s->reading;
  struct timeval tv;
  if (*added == on || s->loop->base == NULL) return;
  if (!on) {
    event_del(event_of(s, write));
    if (write) wev_free(s);
  } else if ((write && !wev_make(s)) ||
             event_add(event_of(s, write), write ? write_tv(s, &tv)
                       : read_tv(s, &tv)) != 0) {
    if (!s->err) s->err = errno ? errno : ENOMEM;
    if (write) wev_free(s);
    return;
  }
  *added = (unsigned char)on;
}

/* Past the connect and the handshake: read while the input is under the
** limit or a reader waits for more (TLS may want to read to write, or to
** write first). */
static int wants_read(const Stream *s) {
  if (s->tls_wwr) return 1;
  if (s->tls_rww || s->eof || s->err) return 0;
  return s->reader || s->in.len < s->limit;
}

/* The events the phase asks for. Input a TLS session holds already makes
** the read event active now. */
static void update_events(Stream *s) {
  int open = s->fd >= 0;
  if (s->phase == PH_HANDSHAKING) return;  /* hs_wait arms the events */
  if (s->phase == PH_CONNECTING) {  /* its end is the socket's writability */
    ev_switch(s, 0, 0);
    ev_switch(s, 1, open);
    return;
  }
  ev_switch(s, 0, open && wants_read(s));
  ev_switch(s, 1, open && (s->out.len > 0 || s->tls_rww));
  if (s->tls && s->reading && s->loop->base && tls_pending(s->tls))
    event_active(event_of(s, 0), EV_READ, 1);
}

/* The socket goes; a close() that waited for the flush queues its handle
** (anchored since close(), unless the loop was closed since). */
static void close_fd(Stream *s) {
  ev_switch(s, 0, 0);
  ev_switch(s, 1, 0);
  if (s->tls) tls_shutdown(s->tls);  /* closing: no handshake runs */
  close(s->fd);
  s->fd = -1;
  s->phase = PH_CLOSED;
  s->eof = 1;
  if (s->closer && !s->closer->queued && s->loop->base) {
    s->closer->queued = 1;
    loop_ready_push(s->loop, s->closer);
  }
}

static void wake_parked(Stream *s);

/* Bring the socket and the events in line with the stream's state, and
** wake a waiter whose wait is over. Runs after every change. */
static void settle(Stream *s) {
  if (s->err) {  /* the connection is lost: as asyncio, it closes */
    buf_free(&s->out);
    s->eof = 1;
    if (s->phase >= PH_OPEN && !is_closing(s)) s->phase = PH_CLOSING;
  }
  if (s->fd >= 0 && s->out.len == 0) {
    if (s->phase == PH_OPEN && s->wrote_eof && s->pipe)
      s->phase = PH_CLOSING;  /* a pipe's EOF is its close */
    if (s->phase == PH_OPEN && s->wrote_eof) {
      shutdown(s->fd, SHUT_WR);  /* fails only on a broken connection */
      s->phase = PH_WRITE_SHUT;
    }
    if (s->phase == PH_CLOSING) close_fd(s);
  }
  update_events(s);
  if (s->reader && (s->in.len >= s->want || s->eof || s->err))
    task_unpark(NULL, s->reader, 0, 0);
  if (s->waker && (s->in.len > 0 || s->eof || s->err)) wake_parked(s);
  if (s->writer && s->phase >= PH_OPEN &&
      (s->out.len <= LOW_WATER || s->err || s->fd < 0))
    task_unpark(NULL, s->writer, 0, 0);  /* a drain() */
}

/* write() to a pipe whose reader is gone raises SIGPIPE, which send()'s
** MSG_NOSIGNAL spares a socket: it is blocked around the call and the one
** the call raised is taken back, so that EPIPE is the stream's error. (One
** already pending and blocked by this thread would be taken instead.) */
static ssize_t pipe_write(int fd, const void *p, size_t n) {
  sigset_t pipe, old, pending;
  struct timespec zero = {0, 0};
  ssize_t r;
  int err;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, &old);
  do r = write(fd, p, n);
  while (r < 0 && errno == EINTR);
  err = errno;
  if (r < 0 && err == EPIPE && sigpending(&pending) == 0 &&
      sigismember(&pending, SIGPIPE))
    sigtimedwait(&pipe, NULL, &zero);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = err;
  return r;
}

/* recv() and send(), or their TLS counterparts (with EPROTO when TLS
** failed); a TLS call that waits notes which way the socket must go. */
static ssize_t sock_recv(Stream *s, void *buf, size_t n) {
  ssize_t r;
  if (s->tls) {
    r = tls_read(s->tls, buf, n);
    s->tls_rww = r < 0 && errno == EAGAIN && tls_wants_write(s->tls);
    return r;
  }
  do r = s->pipe ? read(s->fd, buf, n) : recv(s->fd, buf, n, 0);
  while (r < 0 && errno == EINTR);
  return r;
}

static ssize_t sock_send(Stream *s, const void *p, size_t n) {
  ssize_t r;
  if (s->tls && s->phase != PH_HANDSHAKING) {  /* before start_tls: clear */
    r = tls_write(s->tls, p, n);
    s->tls_wwr = r < 0 && errno == EAGAIN && !tls_wants_write(s->tls);
    return r;
  }
  if (s->pipe) return pipe_write(s->fd, p, n);
  do r = send(s->fd, p, n, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r;
}

/* One recv() of at most room bytes into the scratch buffer: the count,
** 0 at EOF (s->eof set) or -1 when nothing came (s->err set on an error). */
static ssize_t receive(Stream *s, size_t room) {
  ssize_t n = sock_recv(s, SCRATCH(s->loop), room < CHUNK ? room : CHUNK);
  if (n > 0) s->received += (size_t)n;
  else if (n == 0) s->eof = 1;
  else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) s->err = errno;
  return n;
}

/* Receive what the socket holds: up to the limit, or while a reader waits
** (it may need more than the limit) one limit's worth more. Through the
** scratch buffer, so that the input buffer holds just the data. */
static void fill(Stream *s) {
  size_t budget = s->reader ? (s->limit > CHUNK ? s->limit : CHUNK)
                  : s->in.len < s->limit ? s->limit - s->in.len : 0;
  while (budget > 0) {
    size_t room = budget < CHUNK ? budget : CHUNK;
    ssize_t n = receive(s, room);
    if (n <= 0) break;
    if (!buf_append(&s->in, SCRATCH(s->loop), (size_t)n)) {
      s->err = ENOMEM;
      break;
    }
    budget -= (size_t)n;
    if ((size_t)n < room) break;  /* nothing more for now */
  }
  buf_fit(&s->in);
}


/* Send the output buffer until the socket takes no more. */
static void flush(Stream *s) {
  while (s->out.len > 0) {
    size_t len = s->out.len;
    ssize_t n = sock_send(s, buf_data(&s->out), len);
    if (n >= 0) {
      buf_consume(&s->out, (size_t)n);
      if ((size_t)n < len && !s->tls) break;  /* TLS: a record at a time */
    } else {
      if (errno != EAGAIN && errno != EWOULDBLOCK) s->err = errno;
      break;
    }
  }
}

/* A direct reader (read(n) with nothing buffered) receives the bytes
** itself, straight into its string: here it is only woken. The event stays
** armed: should it fire again before the reader ran, the wake is a no-op. */
static void handshake_step(Stream *s, int timedout);
static void hs_end(Stream *s, int err);

static void read_ready(Stream *s) {
  if (s->tls_wwr) flush(s);
  if (s->direct) {
    task_unpark(NULL, s->reader, 0, 0);
    if (!s->tls) return;
  } else fill(s);
  settle(s);
}

/* The read event's timeout: a waiting reader's deadline passed (it is
** woken, and its read sees s->timedout), or not yet (libevent times from
** its clock cached at the batch's start, and a persistent event's timeout
** restarts when it fires for input: armed again for the time left), or
** it is left from a read that has ended (taken off the event). */
static void read_timeout(Stream *s) {
  struct timeval tv;
  if ((s->reader || s->waker) && s->deadline > 0) {
    if (loop_time(s->loop) < s->deadline)
      event_add(event_of(s, 0), read_tv(s, &tv));
    else if (!s->timedout) {
      s->timedout = 1;
      if (s->reader) task_unpark(NULL, s->reader, 0, 0);
      else wake_parked(s);
    }
  } else if (s->reading) {
    ev_switch(s, 0, 0);
    update_events(s);
  }
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
  Stream *s = arg;
  (void)fd;
  if (s->phase == PH_HANDSHAKING) {
    handshake_step(s, what & EV_TIMEOUT);
    return;
  }
  if (what & EV_READ) read_ready(s);
  if (what & EV_TIMEOUT) read_timeout(s);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
  Stream *s = arg;
  (void)fd;
  if (s->phase == PH_HANDSHAKING) {
    handshake_step(s, what & EV_TIMEOUT);
    return;
  }
  if (s->phase == PH_CONNECTING) {  /* connect_k looks at the outcome */
    ev_switch(s, 1, 0);
    if (s->writer) task_unpark(NULL, s->writer, 0, 0);
    return;
  }
  if (what == EV_TIMEOUT) {  /* no byte left for the write timeout */
    limit_failed(s, FAIL_WRITE, ETIMEDOUT);
    settle(s);
    return;
  }
  if (s->tls_rww) {
    if (s->direct) task_unpark(NULL, s->reader, 0, 0);
    else fill(s);
  }
  flush(s);
  settle(s);
}

/* ---------- creation ---------- */

static const char scratch_key = 0;

/* The receive buffer of this Lua state, made on first use and kept in the
** registry: recv() lands there and only the bytes received are copied
** (into a string or the input buffer), so no stream holds a whole chunk.
** One per state, as a state runs one loop at a time; each loop of the
** state points to it (its LX_STREAM slot), not each stream. */
static char *scratch(lua_State *L) {
  int made;
  return lasync_state_buffer(L, &scratch_key, CHUNK, &made);
}

/* Push a new stream on lp, without a socket yet. */
Stream *stream_new(lua_State *L, Loop *lp, size_t limit) {
  Stream *s;
  if (SCRATCH(lp) == NULL) lp->ext[LX_STREAM] = scratch(L);
  s = lua_newuserdatauv(L, sizeof(Stream) + lasync_evsize(), SUV_NUV);
  memset(s, 0, sizeof *s);
  s->magic = LASYNC_MAGIC;
  s->kind = K_STREAM;
  s->loop = lp;
  s->fd = -1;
  s->phase = PH_OPEN;
  s->limit = limit;
  lasync_setmt(L, lp->mod, K_STREAM);
  loop_push(L, lp);
  lua_setiuservalue(L, -2, SUV_LOOP);
  return s;
}

/* The stream takes the non-blocking socket fd and starts reading (or, if
** connecting, waits for the connect to end). */
void stream_attach(Stream *s, int fd, int accepted) {
  int one = 1;
  struct event_base *base = s->loop->base;
  s->fd = fd;
  s->accepted = accepted != 0;
  event_assign(event_of(s, 0), base, fd, EV_READ | EV_PERSIST, on_read, s);
  /* as asyncio: small writes go out at once (fails on Unix sockets) */
  if (!s->pipe) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  settle(s);
}

/* The limit at idx: a positive integer, 65536 when nil. */
size_t stream_checklimit(lua_State *L, int idx) {
  lua_Integer n = luaL_optinteger(L, idx, DEFAULT_LIMIT);
  luaL_argcheck(L, n > 0, idx, "limit must be positive");
  return (size_t)n;
}

/* ---------- waiting ---------- */

/* The running task, which is to wait on s. */
static Task *running_task(lua_State *L, Stream *s, const char *what) {
  Task *t = task_running(L, what);
  if (t->f.loop != s->loop)
    luaL_error(L, "%s: the stream belongs to another loop", what);
  return t;
}

/* Park cleanups (task_park): a cancelled reader or writer leaves the
** stream at once, and the events follow. */
static void reader_cancelled(void *arg) {
  Stream *s = arg;
  s->reader = NULL;
  s->direct = 0;
  s->deadline = 0;
  s->timedout = 0;
  update_events(s);
}

static void writer_cancelled(void *arg) {
  ((Stream *)arg)->writer = NULL;
}

/* For dump_tasks: push the peer address (host, port, or a path) of the
** stream the parked task t waits on; 0 if it waits on no stream or the
** stream has no peer. */
int stream_push_wait_peer(lua_State *L, const Task *t) {
  const Stream *s = t->cleanup_arg;
  if (t->cleanup != reader_cancelled && t->cleanup != writer_cancelled)
    return 0;
  return s->fd >= 0 ? addr_push_of(L, s->fd, 1) : 0;
}

/* First thing in the continuation of a wait parked in *slot (the resume
** passed its values from thrown on): the task leaves the slot (unless its
** cancellation took it off already) and P_WOKEN is returned, those values
** dropped; or the CancelledError is pushed and P_CANCELLED returned. */
static int unparked(lua_State *L, Task **slot, int thrown) {
  int woken, st;
  Task *t = task_current(L);
  if (*slot == t) *slot = NULL;
  /* woken with no value: the task need not be on the stack */
  st = task_unparked(L, t, 0, thrown, &woken);
  if (st == P_WOKEN) lua_settop(L, thrown - 1);
  return st;
}

/* Wait (the stream at 1) until at least want bytes are buffered, the input
** ends, the connection fails or the deadline (on loop time, 0: none)
** passes; then k runs with ctx. A direct reader is woken instead when the
** socket is readable, and receives itself. */
static int wait_input(lua_State *L, Stream *s, size_t want, int direct,
                      double deadline, lua_KContext ctx, lua_KFunction k,
                      const char *what) {
  Task *t = running_task(L, s, what);
  struct timeval tv;
  if (s->reader)
    return luaL_error(L, "%s: another task is already waiting to read "
                      "this stream", what);
  s->reader = t;  /* pending, so anchored: valid until it resumes */
  s->want = want;
  s->direct = direct != 0;
  s->deadline = deadline;
  update_events(s);  /* reads on past the limit for it */
  /* an added event only gets its new timeout */
  if (deadline > 0 && s->reading) event_add(event_of(s, 0), read_tv(s, &tv));
  return task_park(L, t, what, reader_cancelled, s, ctx, k);
}

/* First thing in a reader's continuation: it no longer waits; a
** cancellation is raised. The events are left as they are until the
** reader takes its bytes or waits again (a del and an add per read
** otherwise); a reader that raises leaves the read event armed at most
** until it fires once more, finds no room and settles. */
static int input_resumed(lua_State *L, Stream *s, int thrown) {
  int st = unparked(L, &s->reader, thrown), timedout = s->timedout;
  if (s->reader == NULL) s->direct = 0;
  s->timedout = 0;  /* the deadline stays: read_deadline */
  if (st != P_WOKEN) lua_error(L);
  return timedout;
}

/* The deadline of a read call under a read timeout, 0 without: set when
** the call starts (status LUA_OK), kept while it waits again. */
static double read_deadline(Stream *s, int status) {
  if (s->lim.read_timeout <= 0) return 0;
  if (status == LUA_OK) return loop_time(s->loop) + s->lim.read_timeout;
  return s->deadline;
}

/* A read call resumes; past its read timeout the connection fails. */
static void read_resumed(lua_State *L, Stream *s, int thrown) {
  if (input_resumed(L, s, thrown)) {
    limit_failed(s, FAIL_READ, ETIMEDOUT);
    settle(s);
  }
}

/* The error of a connection that one of its limits failed. */
static void push_limit_error(lua_State *L, Stream *s) {
  if (s->failed_by == FAIL_BUFFER) {
    lua_pushfstring(L, "unsent output passed max_buffer (%I bytes)",
                    (lua_Integer)s->lim.max_buffer);
    errors_push_oserror(L, s->err, lua_tostring(L, -1));
  } else {
    int rd = s->failed_by == FAIL_READ;
    char msg[80];  /* pushfstring has no %g */
    snprintf(msg, sizeof msg, rd ? "read timed out: no complete read in %g s"
             : "write timed out: no output sent for %g s",
             (double)(rd ? s->lim.read_timeout : s->lim.write_timeout));
    lua_pushstring(L, msg);
    errors_push_newv(L, "TimeoutError", -1);
    lua_pushliteral(L, "ETIMEDOUT");  /* the connection's, not a wait_for's */
    lua_setfield(L, -2, "code");
  }
  lua_remove(L, -2);
}

static void push_error(lua_State *L, Stream *s) {
  if (s->failed_by) push_limit_error(L, s);
  else if (s->hs_timedout) {
    lua_pushfstring(L, "SSL handshake is taking longer than %f seconds: "
                    "aborting the connection", tls_timeout(s->tls, NULL));
    errors_push_newv(L, "ConnectionAbortedError", -1);
    lua_remove(L, -2);
  } else if (s->tls && s->err == EPROTO) tls_push_error(L, s->tls);
  else errors_push_oserror(L, s->err, NULL);
}

static int raise_error(lua_State *L, Stream *s) {
  push_error(L, s);
  return lua_error(L);
}

/* ---------- reading ---------- */

/* Push the first n bytes of input and drop them; as many as stripped of
** them are left out at the end. */
static int take(lua_State *L, Stream *s, size_t n, size_t stripped) {
  if (n == 0) {  /* the buffer may have no memory */
    lua_pushliteral(L, "");
    return 1;
  }
  lua_pushlstring(L, buf_data(&s->in), n - stripped);
  buf_consume(&s->in, n);
  update_events(s);  /* reading resumes once under the limit */
  return 1;
}

/* Raise IncompleteReadError with the whole input as `partial`; expected
** is the value at expidx (0: none). */
static int raise_incomplete(lua_State *L, Stream *s, int expidx) {
  take(L, s, s->in.len, 0);
  if (expidx)
    lua_pushfstring(L, "%I bytes read on a total of %I expected bytes",
                    (lua_Integer)lua_rawlen(L, -1), lua_tointeger(L, expidx));
  else
    lua_pushfstring(L, "%I bytes read on a total of undefined expected "
                    "bytes", (lua_Integer)lua_rawlen(L, -1));
  errors_push_newv(L, "IncompleteReadError", -1);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "partial");
  if (expidx) {
    lua_pushvalue(L, expidx);
    lua_setfield(L, -2, "expected");
  }
  return lua_error(L);
}

/* Raise LimitOverrunError after dropping `drop` bytes of input. */
static int raise_overrun(lua_State *L, Stream *s, const char *msg,
                         size_t consumed, size_t drop) {
  buf_consume(&s->in, drop);
  update_events(s);
  errors_push_new(L, "LimitOverrunError", msg);
  lua_pushinteger(L, (lua_Integer)consumed);
  lua_setfield(L, -2, "consumed");
  return lua_error(L);
}

/* A step of asyncio's readuntil: the length of input through the
** separator, or -1 to wait for more; *off is where the search goes on.
** At the end of input a line (line != 0) is the rest, else an
** IncompleteReadError. Over the limit LimitOverrunError is raised, a line
** first dropping what it cannot take (as asyncio's readline). */
static lua_Integer until_step(lua_State *L, Stream *s, const char *sep,
                              size_t seplen, size_t *off, int line) {
  const char *data = buf_data(&s->in), *p;
  if (s->in.len >= *off + seplen) {
    p = memmem(data + *off, s->in.len - *off, sep, seplen);
    if (p != NULL) {
      size_t isep = (size_t)(p - data);
      if (isep > s->limit)
        raise_overrun(L, s, "Separator is found, but chunk is longer than "
                      "limit", isep, line ? isep + seplen : 0);
      return (lua_Integer)(isep + seplen);
    }
    *off = s->in.len + 1 - seplen;
    if (*off > s->limit)
      raise_overrun(L, s, "Separator is not found, and chunk exceed the "
                    "limit", *off, line ? s->in.len : 0);
  }
  if (s->eof) {
    if (!line) raise_incomplete(L, s, 0);
    return (lua_Integer)s->in.len;
  }
  return -1;
}

/* read(n): stream, n; what the resume passed at 3. */
static int read_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  lua_Integer n = lua_tointeger(L, 2);
  (void)ctx;
  if (status == LUA_YIELD) read_resumed(L, s, 3);
  if (s->err) return raise_error(L, s);
  if (n < 0 && s->eof) return take(L, s, s->in.len, 0);
  if (n == 0 || (n > 0 && (s->in.len > 0 || s->eof)))
    return take(L, s, (size_t)n < s->in.len ? (size_t)n : s->in.len, 0);
  /* woken as a direct reader: readable; or TLS holds input already */
  if (n > 0 && (status == LUA_YIELD || (s->tls && tls_pending(s->tls)))) {
    ssize_t got = receive(s, (size_t)n);
    if (got > 0) {
      lua_pushlstring(L, SCRATCH(s->loop), (size_t)got);
      return 1;
    }
    if (got == 0 || s->err) {
      settle(s);  /* reading stops */
      if (s->err) return raise_error(L, s);
      lua_pushliteral(L, "");
      return 1;
    }
  }
  return wait_input(L, s, n < 0 ? SIZE_MAX : 1, n > 0,
                    read_deadline(s, status), 0, read_k, "read");
}

static int l_read(lua_State *L) {
  lua_Integer n;
  checkstream(L);
  n = luaL_optinteger(L, 2, -1);
  lua_settop(L, 1);
  lua_pushinteger(L, n);
  return read_k(L, LUA_OK, 0);
}

/* readexactly(n): stream, n; what the resume passed at 3. */
static int readexactly_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  size_t n = (size_t)lua_tointeger(L, 2);
  (void)ctx;
  if (status == LUA_YIELD) read_resumed(L, s, 3);
  if (s->err) return raise_error(L, s);
  if (s->in.len >= n) return take(L, s, n, 0);
  if (s->eof) return raise_incomplete(L, s, 2);
  return wait_input(L, s, n, 0, read_deadline(s, status), 0, readexactly_k,
                    "readexactly");
}

static int l_readexactly(lua_State *L) {
  lua_Integer n;
  checkstream(L);
  n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "size must not be negative");
  lua_settop(L, 2);
  return readexactly_k(L, LUA_OK, 0);
}

/* readuntil(sep): stream, sep; what the resume passed at 3; ctx: search
** offset. */
static int readuntil_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  size_t seplen, off = (size_t)ctx;
  const char *sep = lua_tolstring(L, 2, &seplen);
  lua_Integer n;
  if (status == LUA_YIELD) read_resumed(L, s, 3);
  if (s->err) return raise_error(L, s);
  if ((n = until_step(L, s, sep, seplen, &off, 0)) >= 0)
    return take(L, s, (size_t)n, 0);
  return wait_input(L, s, s->in.len + 1, 0, read_deadline(s, status),
                    (lua_KContext)off, readuntil_k, "readuntil");
}

static int l_readuntil(lua_State *L) {
  checkstream(L);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_pushliteral(L, "\n");
  }
  luaL_checktype(L, 2, LUA_TSTRING);
  luaL_argcheck(L, lua_rawlen(L, 2) > 0, 2, "separator must not be empty");
  lua_settop(L, 2);
  return readuntil_k(L, LUA_OK, 0);
}

/* readline(): the stream; what the resume passed at 2; ctx: search offset. */
static int readline_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  size_t off = (size_t)ctx;
  lua_Integer n;
  if (status == LUA_YIELD) read_resumed(L, s, 2);
  if (s->err) return raise_error(L, s);
  if ((n = until_step(L, s, "\n", 1, &off, 1)) >= 0)
    return take(L, s, (size_t)n, 0);
  return wait_input(L, s, s->in.len + 1, 0, read_deadline(s, status),
                    (lua_KContext)off, readline_k, "readline");
}

static int l_readline(lua_State *L) {
  checkstream(L);
  lua_settop(L, 1);
  return readline_k(L, LUA_OK, 0);
}

/* The iterator of lines(): readline without the "\n" or "\r\n"; nil at the
** end. Upvalue 2 is the stream, moved to 1; what the resume passed at 2. */
static int lines_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  size_t off = (size_t)ctx, strip = 0;
  lua_Integer n;
  if (status == LUA_YIELD) read_resumed(L, s, 2);
  if (s->err) return raise_error(L, s);
  if ((n = until_step(L, s, "\n", 1, &off, 1)) < 0)
    return wait_input(L, s, s->in.len + 1, 0, read_deadline(s, status),
                      (lua_KContext)off, lines_k, "lines");
  if (n == 0) return 0;
  if (buf_data(&s->in)[n - 1] == '\n')
    strip = n > 1 && buf_data(&s->in)[n - 2] == '\r' ? 2 : 1;
  return take(L, s, (size_t)n, strip);
}

static int lines_iter(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  return lines_k(L, LUA_OK, 0);
}

static int l_lines(lua_State *L) {
  checkstream(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, lines_iter, 2);
  return 1;
}

static int l_at_eof(lua_State *L) {
  Stream *s = checkstream(L);
  lua_pushboolean(L, s->eof && s->in.len == 0);
  return 1;
}

/* ---------- writing ---------- */

/* Would n more bytes of output pass the max_buffer limit? */
static int over_max(const Stream *s, size_t n) {
  return s->lim.max_buffer > 0 && (size_t)s->out.len + n > s->lim.max_buffer;
}

/* Send at once what the socket takes, buffer the rest. Output after
** close() or a failure is dropped, as asyncio does (drain() raises). */
static void stream_send(Stream *s, const char *p, size_t n) {
  if (drops_output(s) || n == 0) return;
  while (s->out.len == 0 && n > 0) {  /* TLS takes a record at a time */
    ssize_t sent = sock_send(s, p, n);
    if (sent <= 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) s->err = errno;
      break;
    }
    p += sent;
    n -= (size_t)sent;
    if (!s->tls) break;
  }
  if (n > 0 && !s->err && over_max(s, n)) limit_failed(s, FAIL_BUFFER, ENOBUFS);
  if (n > 0 && !s->err && !buf_append(&s->out, p, n)) s->err = ENOMEM;
  settle(s);
}

static void check_open_for_write(lua_State *L, Stream *s) {
  if (s->pipe == PIPE_R) luaL_error(L, "cannot write to a pipe's read end");
  if (s->wrote_eof) luaL_error(L, "cannot write after write_eof()");
  if (s->phase == PH_HANDSHAKING) luaL_error(L, "cannot write during the TLS handshake");
}

/* A write that passed max_buffer raises (the connection is lost). */
static int raise_overflow(lua_State *L, Stream *s) {
  if (s->failed_by == FAIL_BUFFER) return raise_error(L, s);
  return 0;
}

static int l_write(lua_State *L) {
  Stream *s = checkstream(L);
  size_t n;
  const char *p;
  luaL_checktype(L, 2, LUA_TSTRING);
  p = lua_tolstring(L, 2, &n);
  check_open_for_write(L, s);
  stream_send(s, p, n);
  return raise_overflow(L, s);
}

/* writelines(list): the strings joined, sent as one write. */
static int l_writelines(lua_State *L) {
  Stream *s = checkstream(L);
  lua_Integer i, n;
  luaL_Buffer b;
  size_t len;
  const char *p;
  luaL_checktype(L, 2, LUA_TTABLE);
  check_open_for_write(L, s);
  n = luaL_len(L, 2);
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (lua_geti(L, 2, i) != LUA_TSTRING)
      return luaL_argerror(L, 2, lua_pushfstring(L, "string expected at "
                           "index %I, got %s", i, luaL_typename(L, -1)));
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  p = lua_tolstring(L, -1, &len);
  stream_send(s, p, len);
  return raise_overflow(L, s);
}

/* drain(): the stream; what the resume passed at 2. The first caller
** parks as the writer, woken by the events; further ones wait on futures
** of their own, which the first wakes when it is woken (or cancelled):
** then each looks again, and one of them may become the first. ctx: is
** it the first. */
static int drain_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  Task *t;
  if (status == LUA_YIELD && ctx) {
    int st = unparked(L, &s->writer, 2);
    wake_all(L, 1, XUV_DRAINERS);
    if (st != P_WOKEN) return lua_error(L);
  } else if (status == LUA_YIELD) task_resumed(L, 2);
  if (s->err) return raise_error(L, s);
  if (is_closing(s)) return errors_raise(L, "ConnectionResetError",
                                      "Connection lost");
  if (s->out.len <= HIGH_WATER) return 0;
  t = running_task(L, s, "drain");
  if (s->writer) {  /* the first, or the handshake: woken after it */
    push_listed(L, s, 1, XUV_DRAINERS);
    return task_suspend(L, t, 0, drain_k);
  }
  s->writer = t;
  return task_park(L, t, "drain", writer_cancelled, s, 1, drain_k);
}

static int l_drain(lua_State *L) {
  checkstream(L);
  lua_settop(L, 1);
  return drain_k(L, LUA_OK, 0);
}

/* write_eof(): shuts down the sending side once the output is sent. */
static int l_write_eof(lua_State *L) {
  Stream *s = checkstream(L);
  if (s->tls) return luaL_error(L, "write_eof: a TLS connection cannot "
                                "close one direction only");
  if (!s->wrote_eof && !is_closing(s)) {
    s->wrote_eof = 1;
    settle(s);
  }
  return 0;
}

static int l_can_write_eof(lua_State *L) {
  Stream *s = checkstream(L);
  lua_pushboolean(L, s->tls == NULL && s->pipe != PIPE_R);
  return 1;
}

/* ---------- the internal API of the HTTP layer (lasync.h) ---------- */

Stream *stream_check(lua_State *L, int idx) {
  return lasync_checkobj(L, idx, K_STREAM, "stream");
}

char *stream_input(Stream *s, size_t *len) {
  *len = s->in.len;
  return buf_data(&s->in);
}

void stream_consume(Stream *s, size_t n) {
  if (n == 0) return;
  buf_consume(&s->in, n);
  update_events(s);
}

void stream_cut(Stream *s, size_t len) {
  s->in.len = (uint32_t)len;
  if (len == 0) buf_free(&s->in);
  update_events(s);
}

int stream_wait_input(lua_State *L, Stream *s, size_t want, double deadline,
                      lua_KContext ctx, lua_KFunction k, const char *what) {
  return wait_input(L, s, want, 0, deadline, ctx, k, what);
}

int stream_input_resumed(lua_State *L, Stream *s, int thrown) {
  return input_resumed(L, s, thrown);
}

int stream_ended(const Stream *s) { return s->eof; }

int stream_has_reader(const Stream *s) { return s->reader != NULL; }

int stream_failed(const Stream *s) { return s->err; }

void stream_raise_failure(lua_State *L, Stream *s) {
  if (s->err) raise_error(L, s);
}

void stream_check_writable(lua_State *L, Stream *s) {
  check_open_for_write(L, s);
}

char *stream_reserve(Stream *s, size_t n) {
  char *p;
  if (drops_output(s) || n == 0) return NULL;
  if (over_max(s, n)) {
    limit_failed(s, FAIL_BUFFER, ENOBUFS);
    return NULL;
  }
  if (!buf_reserve(&s->out, n)) {
    s->err = ENOMEM;
    return NULL;
  }
  p = buf_end(&s->out);
  s->out.len += (uint32_t)n;
  return p;
}

void stream_buffer(Stream *s, const char *p, size_t n) {
  char *dst = stream_reserve(s, n);
  if (dst) memcpy(dst, p, n);
}

void stream_flush(Stream *s) {
  if (s->fd >= 0 && !s->err) flush(s);
  settle(s);
}

void stream_flush_soon(Stream *s) { settle(s); }

/* The parked connection's handle runs (it was anchored by whoever parked
** it; running unanchors it). A closed loop runs nothing more. */
static void wake_parked(Stream *s) {
  Handle *h = s->waker;
  s->waker = NULL;
  s->deadline = 0;
  if (s->loop->base) loop_ready_push(s->loop, h);
}

void stream_park(Stream *s, Handle *h, double deadline) {
  struct timeval tv;
  s->waker = h;
  s->deadline = deadline;
  s->timedout = 0;
  settle(s);
  if (s->waker && deadline > 0 && s->reading)
    event_add(event_of(s, 0), read_tv(s, &tv));
}

void stream_set_limits(Stream *s, const StreamLimits *lim) { s->lim = *lim; }

int stream_park_timedout(Stream *s) {
  int timedout = s->timedout;
  s->timedout = 0;
  return timedout;
}

void stream_push_peer(lua_State *L, Stream *s) {
  int top = lua_gettop(L);
  lua_createtable(L, 0, 2);
  if (s->fd >= 0 && addr_push_of(L, s->fd, 1) == 2) {
    lua_setfield(L, top + 1, "port");
    lua_setfield(L, top + 1, "host");
    return;
  }
  lua_settop(L, top + 1);  /* a Unix socket's peer has no name: its path */
  if (s->fd >= 0 && addr_push_of(L, s->fd, 0) == 1)
    lua_setfield(L, top + 1, "host");
  lua_settop(L, top + 1);
}

/* ---------- closing ---------- */

/* The handle of a close() that waited for the flush: the socket is
** closed, the wait_closed() callers go on. */
static int closer_done(lua_State *L) {
  Stream *s = lua_touserdata(L, 1);
  s->closer = NULL;
  lua_pushnil(L);
  set_extra(L, 1, XUV_CLOSER);
  wake_all(L, 1, XUV_CLOSED);
  return 0;
}

/* Until the socket closes an anchored handle keeps the stream (a close()
** with output pending must not lose it when the stream is dropped); it
** then wakes the wait_closed() callers. */
static void closer_new(lua_State *L, Stream *s, int sidx) {
  int top = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, closer_done, 1);
  lua_pushvalue(L, sidx);
  s->closer = handle_new(L, s->loop, K_HANDLE, top + 1, 1);
  lua_pushvalue(L, -1);
  set_extra(L, sidx, XUV_CLOSER);
  loop_anchor(L, s->loop, -1);
  lua_settop(L, top);
}

/* Stop reading and close the socket once the buffered output is sent (at
** once if abort, dropping it). Idempotent; input already buffered can
** still be read. The caller is a C function whose upvalue 1 is the Mod. */
void stream_close(lua_State *L, Stream *s, int sidx, int abort) {
  int open = s->fd >= 0;
  sidx = lua_absindex(L, sidx);
  if (s->phase == PH_HANDSHAKING) hs_end(s, ECONNABORTED);
  if (abort || s->loop->base == NULL) buf_free(&s->out);
  if (!is_closing(s)) {
    s->phase = open ? PH_CLOSING : PH_CLOSED;
    s->eof = 1;
    if (open && s->out.len > 0 && !s->err && !s->closer)
      closer_new(L, s, sidx);
  }
  settle(s);
  if (open && s->fd < 0 && s->closer == NULL)
    wake_all(L, sidx, XUV_CLOSED);
}

static int l_close(lua_State *L) {
  stream_close(L, checkstream(L), 1, 0);
  return 0;
}

/* __gc: the stream is unreachable, so nothing can be flushed any more
** (a close() with output pending keeps it reachable until it is done).
** Called by hand on a stream in use, it aborts it: its waiters wake. */
static int l_gc(lua_State *L) {
  Stream *s = checkstream(L);
  s->waker = NULL;  /* collected with it, maybe first */
  stream_close(L, s, 1, 1);
  tls_free(s->tls);
  s->tls = NULL;
  wev_free(s);  /* still there if the loop was closed while writing */
  buf_free(&s->in);
  buf_free(&s->out);
  return 0;
}

static int l_is_closing(lua_State *L) {
  lua_pushboolean(L, is_closing(checkstream(L)));
  return 1;
}

/* The last wait_closed() caller was cancelled before the socket closed:
** the closer it made lets go of the stream (anchored, it would keep a
** dropped stream open), unless close() uses it to flush. */
static void closer_release(lua_State *L, Stream *s, int sidx) {
  Handle *h = s->closer;
  int waiting = 0;
  if (h == NULL || is_closing(s)) return;
  if (push_extras(L, sidx, 0)) waiting = future_list_pending(L, -1, XUV_CLOSED);
  lua_pop(L, 1);
  if (waiting) return;
  h->cancelled = 1;
  if (!h->queued && s->loop->base) loop_unanchor(L, s->loop, h);
  s->closer = NULL;
  lua_pushnil(L);
  set_extra(L, sidx, XUV_CLOSER);
}

/* wait_closed(): the stream at 1; the wait future at 2. As asyncio, it
** raises the error the connection was lost to, if any. */
static int wait_closed_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  Task *t;
  if (status == LUA_YIELD) {
    if (task_wait_cancelled(L, (int)ctx)) closer_release(L, s, 1);
    task_resumed(L, (int)ctx);
  }
  if (s->phase == PH_CLOSED && s->closer == NULL)
    return s->err ? raise_error(L, s) : 0;
  t = running_task(L, s, "wait_closed");
  /* the closer is queued whatever closes the socket: close(), or a lost
  ** connection seen in an event callback, where no Lua state is at hand */
  if (s->closer == NULL && s->fd >= 0) closer_new(L, s, 1);
  push_listed(L, s, 1, XUV_CLOSED);
  return task_suspend(L, t, 2, wait_closed_k);
}

static int l_wait_closed(lua_State *L) {
  checkstream(L);
  lua_settop(L, 1);
  return wait_closed_k(L, LUA_OK, 0);
}

/* ---------- information ---------- */

/* get_extra_info(name, default): "peername", "sockname" (host, port, or
** the path of a Unix socket), "fd"; default for anything else. */
static int l_get_extra_info(lua_State *L) {
  Stream *s = checkstream(L);
  const char *name = luaL_checkstring(L, 2);
  int n = 0;
  if (s->fd >= 0 && strcmp(name, "fd") == 0) {
    lua_pushinteger(L, s->fd);
    n = 1;
  } else if (s->fd >= 0 && strcmp(name, "peername") == 0)
    n = addr_push_of(L, s->fd, 1);
  else if (s->fd >= 0 && strcmp(name, "sockname") == 0)
    n = addr_push_of(L, s->fd, 0);
  else if (s->tls && s->phase != PH_HANDSHAKING)
    n = tls_push_info(L, s->tls, name);
  if (n > 0) return n;
  lua_settop(L, 3);
  return 1;
}


static int l_tostring(lua_State *L) {
  Stream *s = checkstream(L);
  if (s->fd < 0) lua_pushfstring(L, "<Stream closed %p>", (void *)s);
  else lua_pushfstring(L, "<Stream fd=%d%s>", s->fd,
                       is_closing(s) ? " closing" : "");
  return 1;
}

/* ---------- TLS ---------- */

/* The handshake is over (err: why it failed): the events go back to the
** stream's state (without the deadline) once the waiter looks. */
static void hs_end(Stream *s, int err) {
  s->phase = PH_OPEN;
  if (err && !s->err) s->err = err;
  ev_switch(s, 0, 0);
  ev_switch(s, 1, 0);
  if (s->writer) task_unpark(NULL, s->writer, 0, 0);
}

/* Wait for the socket the way the handshake needs it, until the deadline:
** an event added again only gets a new timeout. */
static void hs_wait(Stream *s) {
  int write = s->out.len > 0 || tls_wants_write(s->tls);
  double left;
  tls_timeout(s->tls, &left);
  struct timeval tv;
  if (left <= 0) {
    s->hs_timedout = 1;
    hs_end(s, ETIMEDOUT);
    return;
  }
  to_timeval(left, &tv);
  ev_switch(s, !write, 0);
  if ((write && !s->writing && !wev_make(s)) ||
      event_add(event_of(s, write), &tv) != 0) {
    if (write && !s->writing) wev_free(s);
    hs_end(s, errno ? errno : ENOMEM);
    return;
  }
  *(write ? &s->writing : &s->reading) = 1;
}

/* One step of the handshake, when the socket is ready (or the deadline
** passed). Output written before start_tls goes first, in clear. */
static void handshake_step(Stream *s, int timedout) {
  double left;
  tls_timeout(s->tls, &left);
  /* libevent times from its clock cached at the batch's start: it may
  ** fire early, and the handshake then goes on */
  if (timedout && left <= 0) {
    s->hs_timedout = 1;
    hs_end(s, ETIMEDOUT);
    return;
  }
  if (s->out.len > 0) {
    flush(s);
    if (s->err) {
      hs_end(s, 0);
      return;
    }
  }
  if (s->out.len > 0) hs_wait(s);
  else if (tls_handshake(s->tls) == 1) hs_end(s, 0);
  else if (errno == EAGAIN) hs_wait(s);
  else hs_end(s, errno);
}

/* The handshake ended: stream, ssl, opts, context; what the resume
** passed at 5. A failure (or a cancellation) closes the connection. */
static int start_tls_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  (void)ctx;
  if (status == LUA_YIELD) {
    int st = unparked(L, &s->writer, 5);
    wake_all(L, 1, XUV_DRAINERS);  /* a drain() that came meanwhile */
    if (st != P_WOKEN) {
      s->phase = PH_OPEN;  /* no ECONNABORTED: the error is the cancel */
      stream_close(L, s, 1, 1);
      return lua_error(L);
    }
  }
  if (s->err) {
    push_error(L, s);
    stream_close(L, s, 1, 1);
    return lua_error(L);
  }
  settle(s);
  return 0;
}

static void tls_check_state(lua_State *L, Stream *s) {
  if (s->fd < 0 || is_closing(s))
    luaL_error(L, "start_tls: the stream is closed");
  if (s->tls) luaL_error(L, "start_tls: the stream uses TLS already");
  if (s->err) raise_error(L, s);
  if (s->wrote_eof) luaL_error(L, "start_tls: write_eof() was called");
  if (s->reader || s->writer)
    luaL_error(L, "start_tls: another task is reading or draining this "
               "stream");
}

/* start_tls(ssl, opts): the connection goes on over TLS, as the server if
** the stream is a server's; returns once the handshake is done. Input
** buffered already is the handshake's; output goes first, in clear. */
static int l_start_tls(lua_State *L) {
  Stream *s = checkstream(L);
  double timeout;
  const char *host;
  TlsCtx *c;
  Task *t;
  lua_settop(L, 3);
  host = tls_checkopts(L, 3, "start_tls: opts", &timeout);
  tls_check_state(L, s);
  t = running_task(L, s, "start_tls");
  c = tls_checkctx(L, 2, s->accepted, "start_tls: ssl");  /* 4 */
  if (!s->accepted && host == NULL && tls_needs_host(c))
    return luaL_error(L, "start_tls: server_hostname is needed to check "
                      "the server's certificate (or verify = false)");
  if ((s->tls = tls_new(c, s->fd, s->accepted, host)) == NULL)
    return luaL_error(L, "start_tls: out of memory");
  if (s->in.len && !tls_preload(s->tls, buf_data(&s->in), s->in.len)) {
    tls_free(s->tls);
    s->tls = NULL;
    return luaL_error(L, "start_tls: out of memory");
  }
  buf_free(&s->in);
  tls_set_timeout(s->tls, timeout);
  s->phase = PH_HANDSHAKING;
  handshake_step(s, 0);
  if (s->phase != PH_HANDSHAKING) return start_tls_k(L, LUA_OK, 0);
  s->writer = t;
  return task_park(L, t, "start_tls", writer_cancelled, s, 0, start_tls_k);
}

/* ---------- connecting ---------- */

/* Close the stream at sidx and raise an OSError for err (saved) about the
** target described at sidx - 1. */
static int connect_failed(lua_State *L, Stream *s, int sidx, int err) {
  stream_close(L, s, sidx, 1);
  errors_push_oserror(L, err, lua_tostring(L, sidx - 1));
  return lua_error(L);
}

/* The connect ended: what, stream (ctx: its index), what the resume
** passed. */
static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  int sidx = (int)ctx, err = 0;
  Stream *s = lua_touserdata(L, sidx);
  socklen_t len = sizeof err;
  (void)status;
  s->phase = PH_OPEN;
  if (unparked(L, &s->writer, sidx + 1) != P_WOKEN) {
    stream_close(L, s, sidx, 1);
    return lua_error(L);
  }
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err) return connect_failed(L, s, sidx, err);
  settle(s);
  return 1;
}

/* Bind fd to the local address la before its connect. Port 0 is left to
** the connect (IP_BIND_ADDRESS_NO_PORT), which picks a port free for this
** destination: one bound at bind() is reserved for every destination, so
** a source address ran out at its port range, with binds slowing down
** quadratically on the way. A kernel without the option binds the port. */
static int bind_local(int fd, const Addr *la) {
#ifdef IP_BIND_ADDRESS_NO_PORT
  int on = 1;
  if (addr_port(la) == 0)
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
#endif
  return bind(fd, (const struct sockaddr *)&la->ss, la->len);
}

/* Push a stream connected to a (from la unless NULL), with the limit at
** limidx; the top of the stack describes the target, for errors. Waits
** while the connect is in progress. */
static int connect_to(lua_State *L, const Addr *a, const Addr *la,
                      int limidx) {
  size_t limit = stream_checklimit(L, limidx);
  Task *t = task_running(L, "open_connection");
  int sidx = lua_gettop(L) + 1, err;
  Stream *s = stream_new(L, t->f.loop, limit);
  s->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 0);
  if (s->fd < 0) return connect_failed(L, s, sidx, errno);
  if (la && bind_local(s->fd, la) != 0)
    return connect_failed(L, s, sidx, errno);
  if (connect(s->fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
    stream_attach(s, s->fd, 0);
    return 1;
  }
  if ((err = errno) != EINPROGRESS) return connect_failed(L, s, sidx, err);
  s->phase = PH_CONNECTING;
  stream_attach(s, s->fd, 0);
  s->writer = t;
  return task_park(L, t, "connect", writer_cancelled, s, sidx, connect_k);
}

/* core.tcp_connect(host, port, limit, local_host, local_port) -> stream:
** host and local_host are numeric addresses. */
static int l_tcp_connect(lua_State *L) {
  Addr a, la;
  int local = !lua_isnoneornil(L, 4);
  const char *host = luaL_checkstring(L, 1);
  addr_from_host(L, 1, 2, &a);
  if (local) addr_from_host(L, 4, 5, &la);
  lua_settop(L, 5);
  lua_pushfstring(L, strchr(host, ':') ? "connect to [%s]:%d"
                  : "connect to %s:%d", host, (int)lua_tointeger(L, 2));
  return connect_to(L, &a, local ? &la : NULL, 3);
}

/* core.unix_connect(path, limit) -> stream */
static int l_unix_connect(lua_State *L) {
  Addr a;
  addr_from_path(L, 1, &a);
  lua_settop(L, 2);
  lua_pushfstring(L, "connect to %s", lua_tostring(L, 1));
  return connect_to(L, &a, NULL, 2);
}

static const luaL_Reg stream_methods[] = {
  {"read", l_read},
  {"readline", l_readline},
  {"readexactly", l_readexactly},
  {"readuntil", l_readuntil},
  {"readresp", resp_readresp},  /* resp.c */
  {"at_eof", l_at_eof},
  {"lines", l_lines},
  {"write", l_write},
  {"writelines", l_writelines},
  {"drain", l_drain},
  {"write_eof", l_write_eof},
  {"can_write_eof", l_can_write_eof},
  {"close", l_close},
  {"wait_closed", l_wait_closed},
  {"is_closing", l_is_closing},
  {"get_extra_info", l_get_extra_info},
  {"start_tls", l_start_tls},
  {NULL, NULL}
};

static const luaL_Reg stream_meta[] = {
  {"__gc", l_gc},
  {"__close", l_close},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

/* core._stream_received(stream): the bytes received so far (lasync serve's
** idle timeout tells a silent peer from a slow one by it). */
static int l_received(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)checkstream(L)->received);
  return 1;
}

/* core._pipe_stream(fd, "r" | "w", limit) -> stream over that end of a
** non-blocking pipe, which it owns from then on. */
static int l_pipe_stream(lua_State *L) {
  static const char *const modes[] = {"r", "w", NULL};
  int fd = watch_checkfd(L, 1), w = luaL_checkoption(L, 2, NULL, modes);
  size_t limit = stream_checklimit(L, 3);
  Stream *s = stream_new(L, lasync_running(L, lasync_mod(L)), limit);
  s->pipe = w ? PIPE_W : PIPE_R;
  if (w) s->eof = 1;  /* nothing to read */
  else {
    s->wrote_eof = 1;  /* nothing to write */
    s->phase = PH_WRITE_SHUT;
  }
  stream_attach(s, fd, 0);
  return 1;
}

static const luaL_Reg stream_funcs[] = {
  {"_stream_received", l_received},
  {"_pipe_stream", l_pipe_stream},
  {"tcp_connect", l_tcp_connect},
  {"unix_connect", l_unix_connect},
  {NULL, NULL}
};

void stream_register(lua_State *L) {
  lasync_newmeta(L, K_STREAM, stream_methods, stream_meta);
  lasync_addfuncs(L, stream_funcs);
}
