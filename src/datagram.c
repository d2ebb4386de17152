/*
** Datagram endpoints (UDP, docs/reference.md §9): core.datagram_open and
** the endpoint's methods. lasync.datagram (Lua) resolves the names and
** picks the addresses; here every host is numeric.
**
** Receiving. recvfrom() takes the oldest queued datagram, or else receives
** itself (recvmmsg: the first datagram is returned, the rest of the batch
** queued), and parks as the reader only when nothing is there. The read
** event is always armed: with a reader parked it only wakes it (the reader
** receives itself, so a cancelled one takes nothing), otherwise it
** receives one batch into the queue per wake-up (a flood costs the loop a
** bounded amount per iteration). The queue is bounded: beyond opts.queue
** the oldest datagram goes and is counted in dropped(). A receiver that
** never has to wait gives way every QUOTA datagrams.
**
** Sending. send() and sendto() send at once, but for two cases where the
** datagram is copied to the output list, which goes out in order with
** sendmmsg. When the socket has no room (EAGAIN), the write event flushes
** the list and the sender parks until its own datagram went; a cancelled
** sender's datagram still goes (it was accepted), the sender is only
** taken off it. And a reply sent while received datagrams are still
** queued (an echo working through a batch) waits for the next recvfrom
** that finds the queue empty, the loop's next poll or a full batch, so
** that the replies to one batch cost one system call; its error, if any,
** is kept for the next call. While the list is not empty every sender
** joins it, so datagrams leave in the order they were sent.
**
** Errors. An ICMP error on a connected endpoint (port unreachable) comes
** back from the next recv or send system call; one the read event meets
** is kept in d->err and raised by the next send/sendto/recvfrom.
**
** Memory: the receive batch lands in a scratch area per Lua state (one
** loop runs at a time); only queued datagrams are copied (malloc'd), and
** only the datagrams that wait in the output list.
*/
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include "lasync.h"

#define DGRAM_MAX 65507       /* the largest UDP payload over IPv4 */
#define DGRAM_BUF 65536       /* receive room per datagram: any IPv6 one */
#define BATCH_MAX 32          /* datagrams per recvmmsg/sendmmsg */
#define QUEUE_DEFAULT 256
#define QUEUE_MAX (1 << 20)
#define QUOTA 64              /* datagrams taken without waiting, then a
                                 recvfrom gives way once */

typedef struct Slot {          /* a queued datagram */
  char *p;
  uint32_t len;
  Addr from;
} Slot;

typedef struct Out {           /* a datagram waiting for room */
  struct Out *next;
  Task *t;                     /* its sender, parked; NULL once cancelled */
  int err;                     /* its outcome for the sender: errno, or
                                  ERR_CLOSED */
  int has_to;                  /* sendto: to holds the address */
  Addr to;
  size_t len;
  char p[];
} Out;
#define ERR_CLOSED (-1)

/* The receive and send batches of a Lua state (see scratch()). */
typedef struct Scratch {
  int batch;                   /* datagrams per system call (bench: 1) */
  struct mmsghdr msgs[BATCH_MAX];
  struct iovec iov[BATCH_MAX];
  Addr from[BATCH_MAX];
  char buf[BATCH_MAX][DGRAM_BUF];
} Scratch;

typedef struct Dgram {
  OBJ_HEAD;                    /* K_DATAGRAM */
  int fd;                      /* -1 once closed */
  int err;                     /* errno to raise from the next call, or 0 */
  const char *err_what;        /* what failed, or NULL: that next call */
  int family;
  Scratch *sc;
  Slot *q;                     /* ring of qsize slots, qlen used from qhead */
  uint32_t qcap, qsize, qhead, qlen;
  lua_Integer dropped;
  Task *reader;                /* the task parked in recvfrom, or NULL */
  Out *out, **out_tail;        /* datagrams waiting to go, in order */
  int nout;                    /* how many */
  unsigned streak;             /* recvfroms in a row that did not wait */
  unsigned char connected, reading, writing;  /* events added */
  unsigned char held;          /* core._datagram_hold: sends wait */
  EvMem evmem[];               /* the read event, then the write event */
} Dgram;
/* User value 1: the loop, kept alive (its base holds the events). */

#define checkdatagram(L) ((Dgram *)lasync_checkobj(L, 1, K_DATAGRAM, \
                                                "DatagramEndpoint"))
#define rev(d) ((struct event *)(d)->evmem)
#define wev(d) ((struct event *)((char *)(d)->evmem + lasync_evsize()))
#define live(d) ((d)->fd >= 0 && (d)->loop->base != NULL)

/* ---------- the queue ---------- */

/* Room for one more slot, the ring grown up to qcap; 0 if out of memory. */
static int queue_room(Dgram *d) {
  uint32_t n, i;
  Slot *q;
  if (d->qlen < d->qsize) return 1;
  n = d->qsize ? d->qsize * 2 : 8;
  if (n > d->qcap) n = d->qcap;
  if ((q = malloc(n * sizeof *q)) == NULL) return 0;
  for (i = 0; i < d->qlen; i++) q[i] = d->q[(d->qhead + i) % d->qsize];
  free(d->q);
  d->q = q;
  d->qsize = n;
  d->qhead = 0;
  return 1;
}

static void queue_drop_oldest(Dgram *d) {
  free(d->q[d->qhead].p);
  d->qhead = (d->qhead + 1) % d->qsize;
  d->qlen--;
  d->dropped++;
}

/* Queue datagram i of the scratch batch; the oldest goes when full. */
static void queue_push(Dgram *d, int i) {
  struct msghdr *h = &d->sc->msgs[i].msg_hdr;
  size_t len = d->sc->msgs[i].msg_len;
  Slot *s;
  char *p;
  if (d->qlen == d->qcap) queue_drop_oldest(d);
  if (!queue_room(d) || (p = malloc(len ? len : 1)) == NULL) {
    d->dropped++;  /* out of memory: it is lost as the network loses it */
    return;
  }
  memcpy(p, d->sc->buf[i], len);
  s = &d->q[(d->qhead + d->qlen++) % d->qsize];
  s->p = p;
  s->len = (uint32_t)len;
  s->from.ss = d->sc->from[i].ss;
  s->from.len = h->msg_namelen;
}

static void queue_free(Dgram *d) {
  while (d->qlen) queue_drop_oldest(d);
  free(d->q);
  d->q = NULL;
  d->qsize = 0;
}

/* ---------- system calls, C only (the events run them too) ---------- */

/* Receive up to n datagrams into the scratch batch: how many, or -1 with
** errno set. */
static int recv_batch(Dgram *d, int n) {
  Scratch *sc = d->sc;
  int i, r;
  for (i = 0; i < n; i++) {
    struct msghdr *h = &sc->msgs[i].msg_hdr;
    sc->iov[i].iov_base = sc->buf[i];
    sc->iov[i].iov_len = DGRAM_BUF;
    memset(h, 0, sizeof *h);
    h->msg_name = &sc->from[i].ss;
    h->msg_namelen = sizeof sc->from[i].ss;
    h->msg_iov = &sc->iov[i];
    h->msg_iovlen = 1;
  }
  do r = recvmmsg(d->fd, sc->msgs, (unsigned)n, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  return r;
}

#define would_block(e) ((e) == EAGAIN || (e) == EWOULDBLOCK)

/* The batch a receive asks for: no more than the queue keeps, plus the
** one returned. */
static int batch_of(Dgram *d, int returned) {
  uint32_t n = d->qcap + (returned ? 1 : 0);
  return n < (uint32_t)d->sc->batch ? (int)n : d->sc->batch;
}

static void ev_write(Dgram *d, int on) {
  if (on && d->held) return;
  if (d->writing == on || d->loop->base == NULL) return;
  if (on) event_add(wev(d), NULL);
  else event_del(wev(d));
  d->writing = (unsigned char)on;
}

/* Keep err (an errno) for the next call to raise; what: what failed. */
static void keep_error(Dgram *d, int err, const char *what) {
  d->err = err;
  d->err_what = what;
}

/* What failed, for a datagram no sender waits for any more. */
#define earlier(o) ((o)->has_to ? "sendto (an earlier datagram)" \
                                : "send (an earlier datagram)")

/* The head of the output list is done with err (0: sent): its sender is
** woken (it frees the entry) or, if it left, the entry goes here and an
** error waits for the next call. */
static void out_finish(Dgram *d, int err) {
  Out *o = d->out;
  d->nout--;
  if ((d->out = o->next) == NULL) d->out_tail = &d->out;
  if (o->t) {
    o->err = err;
    task_unpark(NULL, o->t, 0, 0);
    return;
  }
  if (err > 0) keep_error(d, err, earlier(o));
  free(o);
}

/* Send up to a batch of the output list with one sendmmsg; the number
** sent, or -1 with errno. */
static int send_batch(Dgram *d) {
  Scratch *sc = d->sc;
  Out *o = d->out;
  int n;
  for (n = 0; o && n < sc->batch; o = o->next, n++) {
    struct msghdr *h = &sc->msgs[n].msg_hdr;
    memset(h, 0, sizeof *h);
    sc->iov[n].iov_base = o->p;
    sc->iov[n].iov_len = o->len;
    h->msg_iov = &sc->iov[n];
    h->msg_iovlen = 1;
    if (o->has_to) {
      h->msg_name = &o->to.ss;
      h->msg_namelen = o->to.len;
    }
  }
  do n = sendmmsg(d->fd, sc->msgs, (unsigned)n, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Send the output list in order while the socket takes it; a datagram
** refused fails alone and the next ones go on. */
static void flush(Dgram *d) {
  if (d->held) return;
  while (d->out) {
    int n = send_batch(d);
    if (n < 0 && would_block(errno)) {
      ev_write(d, 1);
      return;
    }
    if (n < 0) out_finish(d, errno);
    while (n-- > 0) out_finish(d, 0);
  }
  ev_write(d, 0);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what;
  flush(arg);
}

/* Readable: a parked reader receives itself; else one batch is queued. */
static void on_read(evutil_socket_t fd, short what, void *arg) {
  Dgram *d = arg;
  int i, n;
  (void)fd; (void)what;
  if (d->reader) {
    task_unpark(NULL, d->reader, 0, 0);
    return;
  }
  n = recv_batch(d, batch_of(d, 0));
  if (n < 0 && !would_block(errno)) keep_error(d, errno, NULL);
  for (i = 0; i < n; i++) queue_push(d, i);
}

/* ---------- errors ---------- */

/* Push the OSError of a closed endpoint (EBADF), as the stream's waiters
** get theirs when it closes. */
static void push_closed(lua_State *L, const char *what) {
  errors_push_oserror(L, EBADF, NULL);
  lua_pushfstring(L, "%s: the endpoint is closed", what);
  lua_setfield(L, -2, "message");
}

static int raise_errno(lua_State *L, int err, const char *what) {
  if (err == ERR_CLOSED) push_closed(L, what);
  else errors_push_oserror(L, err, what);
  return lua_error(L);
}

/* Raise unless the endpoint can be used now; a kept error is raised once. */
static void check_usable(lua_State *L, Dgram *d, const char *what) {
  int err = d->err;
  if (d->fd < 0) raise_errno(L, ERR_CLOSED, what);
  if (d->loop->base == NULL)
    luaL_error(L, "%s: the endpoint's loop is closed", what);
  if (err) {
    d->err = 0;
    raise_errno(L, err, d->err_what ? d->err_what : what);
  }
}

/* The running task, on the endpoint's loop. */
static Task *running_task(lua_State *L, Dgram *d, const char *what) {
  Task *t = task_running(L, what);
  if (t->f.loop != d->loop)
    luaL_error(L, "%s: the endpoint belongs to another loop", what);
  return t;
}

/* ---------- recvfrom ---------- */

enum { R_PARKED = 1, R_GAVE_WAY };  /* how a recvfrom suspended */

static int recvfrom_k(lua_State *L, int status, lua_KContext ctx);

/* Push data, host, port of the oldest queued datagram, and drop it. */
static int pop_slot(lua_State *L, Dgram *d) {
  Slot *s = &d->q[d->qhead];
  lua_pushlstring(L, s->p, s->len);
  addr_push(L, &s->from);
  free(s->p);
  d->qhead = (d->qhead + 1) % d->qsize;
  d->qlen--;
  return 3;
}

/* Push data, host, port of datagram i of the scratch batch. */
static int push_received(lua_State *L, Dgram *d, int i) {
  Addr a;
  a.ss = d->sc->from[i].ss;
  a.len = d->sc->msgs[i].msg_hdr.msg_namelen;
  lua_pushlstring(L, d->sc->buf[i], d->sc->msgs[i].msg_len);
  addr_push(L, &a);
  return 3;
}

static void reader_cancelled(void *arg) {
  ((Dgram *)arg)->reader = NULL;
}

/* A queued datagram, or one received now, or park as the reader. */
/* A datagram without waiting: the values pushed, or -1 if none came. */
static int recv_now(lua_State *L, Dgram *d) {
  int i, n, err;
  check_usable(L, d, "recvfrom");
  if (d->qlen) return pop_slot(L, d);
  if (d->out && !d->writing) flush(d);  /* the replies to the last batch */
  n = recv_batch(d, batch_of(d, 1));
  if (n > 0) {
    for (i = 1; i < n; i++) queue_push(d, i);
    return push_received(L, d, 0);
  }
  if (!would_block(err = errno)) return raise_errno(L, err, "recvfrom");
  return -1;
}

static int recv_step(lua_State *L, Dgram *d) {
  int n = recv_now(L, d);
  if (n >= 0) return n;
  if (d->reader)
    return luaL_error(L, "recvfrom: another task is already waiting to "
                      "receive on this endpoint");
  d->reader = running_task(L, d, "recvfrom");
  d->streak = 0;
  return task_park(L, d->reader, "recvfrom", reader_cancelled, d, R_PARKED,
                   recvfrom_k);
}

/* recvfrom(): the endpoint at 1, what the resume passed from 2. */
static int recvfrom_k(lua_State *L, int status, lua_KContext ctx) {
  Dgram *d = lua_touserdata(L, 1);
  (void)status;
  if (ctx == R_GAVE_WAY && lua_touserdata(L, 2) == CANCEL_KEY) {
    lua_settop(L, 3);
    return lua_error(L);
  }
  if (ctx == R_PARKED) {
    int woken;
    Task *t = task_current(L);
    if (d->reader == t) d->reader = NULL;
    if (task_unparked(L, t, 0, 2, &woken) != P_WOKEN) return lua_error(L);
  }
  lua_settop(L, 1);
  return recv_step(L, d);
}

/* ep:recvfrom() -> data, host, port. */
static int l_recvfrom(lua_State *L) {
  Dgram *d = checkdatagram(L);
  lua_settop(L, 1);
  if (++d->streak > QUOTA && live(d)) {  /* let the others run once */
    running_task(L, d, "recvfrom");
    d->streak = 0;
    lua_pushlightuserdata(L, SUSPEND_KEY);
    return lua_yieldk(L, 1, R_GAVE_WAY, recvfrom_k);
  }
  return recv_step(L, d);
}

/* ---------- send, sendto ---------- */

static void out_cancelled(void *arg) {
  ((Out *)arg)->t = NULL;
}

/* send(): the endpoint at 1, what the resume passed from 2; ctx: the
** Out entry, which the sender frees once handed back to it (woken). */
static int send_k(lua_State *L, int status, lua_KContext ctx) {
  Dgram *d = lua_touserdata(L, 1);
  Out *o = (Out *)(intptr_t)ctx;  /* not ours if cancelled before woken */
  int woken, err;
  const char *what;
  (void)status;
  if (task_unparked(L, task_current(L), 0, 2, &woken) != P_WOKEN) {
    if (woken) {  /* sent or failed before the cancellation came */
      if (o->err > 0) keep_error(d, o->err, earlier(o));
      free(o);
    }
    return lua_error(L);
  }
  err = o->err;
  what = o->has_to ? "sendto" : "send";
  free(o);
  if (err) return raise_errno(L, err, what);
  return 0;
}

/* Append a copy of the datagram to the output list, for sender t (NULL:
** none waits for it). */
static Out *out_append(lua_State *L, Dgram *d, const char *p, size_t len,
                       const Addr *to, Task *t, const char *what) {
  Out *o = malloc(sizeof *o + len);
  if (o == NULL) raise_errno(L, ENOMEM, what);
  memset(o, 0, sizeof *o);
  memcpy(o->p, p, len);
  o->len = len;
  o->t = t;
  if (to) {
    o->has_to = 1;
    o->to = *to;
  }
  *d->out_tail = o;
  d->out_tail = &o->next;
  d->nout++;
  return o;
}

/* A reply while received datagrams are still queued: it waits for the
** others sent before the queue is empty, and they leave in one sendmmsg
** (at the next recvfrom that finds the queue empty, at the loop's next
** poll, or once a batch is full). Its error, if any, is kept for the next
** call, as an ICMP error is. */
static int send_corked(lua_State *L, Dgram *d, const char *p, size_t len,
                       const Addr *to, const char *what) {
  out_append(L, d, p, len, to, NULL, what);
  if (d->nout >= d->sc->batch) flush(d);
  else if (d->nout == 1) event_active(wev(d), EV_WRITE, 1);
  return 0;
}

/* Copy the datagram to the output list and park until it went. */
static int send_later(lua_State *L, Dgram *d, const char *p, size_t len,
                      const Addr *to, const char *what) {
  Task *t = running_task(L, d, what);
  Out *o = out_append(L, d, p, len, to, t, what);
  ev_write(d, 1);
  lua_settop(L, 1);
  return task_park(L, t, what, out_cancelled, o, (lua_KContext)(intptr_t)o,
                   send_k);
}

/* Send at once if nothing waits before it (corked replies go first);
** park only when it would block. to: NULL for the connected peer. */
static int send_now(lua_State *L, Dgram *d, const char *p, size_t len,
                    const Addr *to, const char *what) {
  ssize_t r;
  int err;
  check_usable(L, d, what);
  if (d->held || d->writing) return send_later(L, d, p, len, to, what);
  if (d->qlen > 0) return send_corked(L, d, p, len, to, what);
  if (d->out) flush(d);
  if (d->out) return send_later(L, d, p, len, to, what);
  do r = to ? sendto(d->fd, p, len, 0, (const struct sockaddr *)&to->ss,
                     to->len)
            : send(d->fd, p, len, 0);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return 0;
  if (!would_block(err = errno)) return raise_errno(L, err, what);
  return send_later(L, d, p, len, to, what);
}

/* The datagram at idx: a string of at most DGRAM_MAX bytes. */
static const char *check_data(lua_State *L, int idx, size_t *len) {
  const char *p = luaL_checklstring(L, idx, len);
  if (*len > DGRAM_MAX)
    luaL_argerror(L, idx, lua_pushfstring(L, "datagram of at most %d bytes "
                  "expected, got %I", DGRAM_MAX, (lua_Integer)*len));
  return p;
}

/* ep:send(data): to the connected peer. */
static int l_send(lua_State *L) {
  Dgram *d = checkdatagram(L);
  size_t len;
  const char *p = check_data(L, 2, &len);
  if (!d->connected && d->fd >= 0)
    return luaL_error(L, "send: the endpoint is not connected (open it "
                      "with remote_host and remote_port, or use sendto)");
  return send_now(L, d, p, len, NULL, "send");
}

/* ep:sendto(data, host, port): host is a numeric address of the
** endpoint's family. */
static int l_sendto(lua_State *L) {
  Dgram *d = checkdatagram(L);
  size_t len;
  const char *p = check_data(L, 2, &len);
  Addr a;
  addr_from_host(L, 3, 4, &a);
  if (d->fd >= 0 && a.ss.ss_family != d->family)
    luaL_argerror(L, 3, d->family == AF_INET6
                  ? "IPv6 address expected (the endpoint is IPv6)"
                  : "IPv4 address expected (the endpoint is IPv4)");
  return send_now(L, d, p, len, &a, "sendto");
}

/* ---------- the rest of the methods ---------- */

/* Close the socket, once: the events go, the queue is dropped, waiters
** wake and raise that it is closed; the senders' datagrams are dropped. */
static void datagram_close(Dgram *d) {
  if (d->fd < 0) return;
  flush(d);  /* what the socket takes now: corked replies are not lost */
  if (d->reading && d->loop->base) {
    event_del(rev(d));
    event_del(wev(d));  /* added, or made active by send_corked */
  }
  d->writing = 0;
  close(d->fd);
  d->fd = -1;
  queue_free(d);
  while (d->out) out_finish(d, ERR_CLOSED);
  if (d->reader) task_unpark(NULL, d->reader, 0, 0);
}

static int l_close(lua_State *L) {
  datagram_close(checkdatagram(L));
  return 0;
}

/* ep:sockname() -> host, port. */
static int l_sockname(lua_State *L) {
  Dgram *d = checkdatagram(L);
  if (d->fd < 0) raise_errno(L, ERR_CLOSED, "sockname");
  return addr_push_of(L, d->fd, 0);
}

/* core._datagram_fd(ep) -> its descriptor (-1 once closed), for
** lasync.socket's options. */
static int l_fd(lua_State *L) {
  lua_pushinteger(L, checkdatagram(L)->fd);
  return 1;
}

/* core._datagram_poll(ep) -> data, host, port, or nothing if no datagram
** is there: recvfrom that never suspends (lasync.socket's timeout 0). */
static int l_poll(lua_State *L) {
  Dgram *d = checkdatagram(L);
  int n;
  lua_settop(L, 1);
  n = recv_now(L, d);
  return n < 0 ? 0 : n;
}

static int l_dropped(lua_State *L) {
  lua_pushinteger(L, checkdatagram(L)->dropped);
  return 1;
}

static int l_tostring(lua_State *L) {
  Dgram *d = checkdatagram(L);
  if (d->fd < 0 || addr_push_of(L, d->fd, 0) != 2)
    lua_pushliteral(L, "<DatagramEndpoint closed>");
  else lua_pushfstring(L, strchr(lua_tostring(L, -2), ':')
                       ? "<DatagramEndpoint [%s]:%d>"
                       : "<DatagramEndpoint %s:%d>", lua_tostring(L, -2),
                       (int)lua_tointeger(L, -1));
  return 1;
}

/* ---------- opening ---------- */

static const char scratch_key = 0;

/* The batches of this Lua state, made on first use and kept in the
** registry: a few MiB of address space, touched only as far as datagrams
** fill it. */
static Scratch *scratch(lua_State *L) {
  int made;
  Scratch *sc = lasync_state_buffer(L, &scratch_key, sizeof *sc, &made);
  if (made) sc->batch = BATCH_MAX;
  return sc;
}

/* Push a new endpoint on lp, without a socket yet. */
static Dgram *datagram_new(lua_State *L, Loop *lp, uint32_t qcap) {
  Scratch *sc = scratch(L);
  Dgram *d = lua_newuserdatauv(L, sizeof(Dgram) + 2 * lasync_evsize(), 1);
  memset(d, 0, sizeof *d);
  d->magic = LASYNC_MAGIC;
  d->kind = K_DATAGRAM;
  d->loop = lp;
  d->fd = -1;
  d->sc = sc;
  d->qcap = qcap;
  d->out_tail = &d->out;
  lasync_setmt(L, lp->mod, K_DATAGRAM);
  loop_push(L, lp);
  lua_setiuservalue(L, -2, 1);
  return d;
}

/* Raise the OSError of a failed open, "what HOST:PORT: reason"; the
** endpoint at the top is closed first. */
static int open_failed(lua_State *L, Dgram *d, int err, const char *what,
                       int hidx) {
  datagram_close(d);
  lua_pushfstring(L, strchr(lua_tostring(L, hidx), ':') ? "%s [%s]:%d"
                  : "%s %s:%d", what, lua_tostring(L, hidx),
                  (int)lua_tointeger(L, hidx + 1));
  return raise_errno(L, err, lua_tostring(L, -1));
}

static int setopt(int fd, int level, int name) {
  int one = 1;
  return setsockopt(fd, level, name, &one, sizeof one);
}

/* The socket of the family, bound (la) and connected (ra) if asked. */
static int datagram_socket(lua_State *L, Dgram *d, const Addr *la,
                        const Addr *ra, int reuse_port) {
  d->fd = socket(d->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (d->fd < 0) return open_failed(L, d, errno, "socket for", la ? 1 : 3);
  if (reuse_port && setopt(d->fd, SOL_SOCKET, SO_REUSEPORT) != 0)
    return open_failed(L, d, errno, "reuse_port on", la ? 1 : 3);
  if (d->family == AF_INET6) setopt(d->fd, IPPROTO_IPV6, IPV6_V6ONLY);
  if (la && bind(d->fd, (const struct sockaddr *)&la->ss, la->len) != 0)
    return open_failed(L, d, errno, "bind to", 1);
  if (ra && connect(d->fd, (const struct sockaddr *)&ra->ss, ra->len) != 0)
    return open_failed(L, d, errno, "connect to", 3);
  d->connected = ra != NULL;
  event_assign(rev(d), d->loop->base, d->fd, EV_READ | EV_PERSIST, on_read,
               d);
  event_assign(wev(d), d->loop->base, d->fd, EV_WRITE | EV_PERSIST,
               on_write, d);
  if (event_add(rev(d), NULL) != 0)
    return open_failed(L, d, errno ? errno : ENOMEM, "events for", 1);
  d->reading = 1;
  return 1;
}

/* core.datagram_open(local_host, local_port, remote_host, remote_port,
** reuse_port, queue) -> endpoint: hosts numeric or nil (not both), of one
** family. */
static int l_datagram_open(lua_State *L) {
  Addr la, ra;
  int local = !lua_isnoneornil(L, 1), remote = !lua_isnoneornil(L, 3);
  lua_Integer qcap = luaL_optinteger(L, 6, QUEUE_DEFAULT);
  Task *t = task_running(L, "open_datagram");
  Dgram *d;
  luaL_argcheck(L, local || remote, 1, "a local or a remote host expected");
  luaL_argcheck(L, qcap > 0 && qcap <= QUEUE_MAX, 6, "queue must be from 1 "
                "to 1048576");
  if (local) addr_from_host(L, 1, 2, &la);
  if (remote) addr_from_host(L, 3, 4, &ra);
  if (local && remote && la.ss.ss_family != ra.ss.ss_family)
    luaL_argerror(L, 3, "the local and remote hosts' families differ");
  lua_settop(L, 6);
  d = datagram_new(L, t->f.loop, (uint32_t)qcap);
  d->family = local ? la.ss.ss_family : ra.ss.ss_family;
  return datagram_socket(L, d, local ? &la : NULL, remote ? &ra : NULL,
                      lua_toboolean(L, 5));
}

/* core._datagram_batch(n): datagrams per recvmmsg/sendmmsg in this Lua
** state (1 to 32; the bench compares 1 with the default); the old one. */
static int l_batch(lua_State *L) {
  Scratch *sc = scratch(L);
  int old = sc->batch;
  if (!lua_isnoneornil(L, 1)) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= BATCH_MAX, 1, "1 to 32 expected");
    sc->batch = (int)n;
  }
  lua_pushinteger(L, old);
  return 1;
}

/* core._datagram_hold(ep, on): with on, every send waits in the output
** list as if the socket had no room (loopback never runs out of it), until
** called again without on, which sends the list at once: the specs' way
** to the slow path. */
static int l_hold(lua_State *L) {
  Dgram *d = checkdatagram(L);
  d->held = (unsigned char)lua_toboolean(L, 2);
  if (live(d)) flush(d);
  return 0;
}

static const luaL_Reg datagram_methods[] = {
  {"send", l_send},
  {"sendto", l_sendto},
  {"recvfrom", l_recvfrom},
  {"sockname", l_sockname},
  {"dropped", l_dropped},
  {"close", l_close},
  {NULL, NULL}
};

static const luaL_Reg datagram_meta[] = {
  {"__gc", l_close},
  {"__close", l_close},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

static const luaL_Reg datagram_funcs[] = {
  {"datagram_open", l_datagram_open},
  {"_datagram_batch", l_batch},
  {"_datagram_hold", l_hold},
  {"_datagram_poll", l_poll},
  {"_datagram_fd", l_fd},
  {NULL, NULL}
};

void datagram_register(lua_State *L) {
  lasync_newmeta(L, K_DATAGRAM, datagram_methods, datagram_meta);
  lasync_addfuncs(L, datagram_funcs);
}
