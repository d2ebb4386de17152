/* wsload: a WebSocket echo load generator for bench/ws_peers.sh.
**
**   wsload PORT CONNS SIZE SECONDS [WARM]
**     CONNS connections to ws://127.0.0.1:PORT/, each with one text
**     message of SIZE bytes in flight (sent again as soon as its echo is
**     whole); counts the echoes of SECONDS after WARM seconds, and prints
**     "msgs=N rate=R conns=C errors=E".
**   wsload --idle PORT CONNS SECONDS
**     opens CONNS connections, completes their handshakes, prints
**     "ready=C" and holds them SECONDS, doing nothing.
**
** One thread, epoll, non-blocking sockets; frames are masked (with a fixed
** key, which the server cannot tell from a random one) and built once. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct Conn {
  int fd, open;
  char *in;
  size_t inlen, incap;
  const char *out;
  size_t outlen;               /* unsent bytes at out */
} Conn;

static const char REQUEST[] =
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
  "Sec-WebSocket-Version: 13\r\n\r\n";

static char *frame;
static size_t framelen, size;
static long long counted, errors;
static int counting, idle;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void build_frame(void) {
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t h = 2, i;
  frame = malloc(size + 14);
  frame[0] = (char)0x81;
  if (size < 126) frame[1] = (char)(0x80 | size);
  else if (size < 65536) {
    frame[1] = (char)(0x80 | 126);
    frame[2] = (char)(size >> 8);
    frame[3] = (char)size;
    h = 4;
  } else { fprintf(stderr, "wsload: SIZE under 64 KiB\n"); exit(2); }
  memcpy(frame + h, key, 4);
  for (i = 0; i < size; i++) frame[h + 4 + i] = (char)('a' ^ key[i & 3]);
  framelen = h + 4 + size;
}

static void fail(Conn *c) {
  if (c->fd < 0) return;
  close(c->fd);
  c->fd = -1;
  errors++;
}

static void flush_out(Conn *c) {
  while (c->outlen > 0) {
    ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN) fail(c);
      return;
    }
    c->out += n;
    c->outlen -= (size_t)n;
  }
}

static void put(Conn *c, const char *p, size_t n) {
  c->out = p;
  c->outlen = n;
  flush_out(c);
}

/* Whole frames at the front of c->in: each echo counted and answered. */
static void frames(Conn *c) {
  size_t off = 0;
  for (;;) {
    unsigned char *p = (unsigned char *)c->in + off;
    size_t avail = c->inlen - off, h = 2, n;
    if (avail < 2) break;
    n = p[1] & 0x7f;
    if (n == 126) {
      if (avail < 4) break;
      n = (size_t)p[2] << 8 | p[3];
      h = 4;
    } else if (n == 127) { fail(c); return; }
    if (avail < h + n) break;
    off += h + n;
    if ((p[0] & 0x0f) != 1 || n != size) { fail(c); return; }
    if (counting) counted++;
    put(c, frame, framelen);
    if (c->fd < 0) return;
  }
  memmove(c->in, c->in + off, c->inlen - off);
  c->inlen -= off;
}

static void readable(Conn *c) {
  for (;;) {
    ssize_t n;
    if (c->incap - c->inlen < 65536) {
      c->incap = c->incap * 2 + 65536;
      c->in = realloc(c->in, c->incap);
    }
    n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN)) { fail(c); return; }
    if (n < 0) break;
    c->inlen += (size_t)n;
  }
  if (!c->open) {
    char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end) return;
    if (strncmp(c->in, "HTTP/1.1 101", 12) != 0) { fail(c); return; }
    c->open = 1;
    c->inlen -= (size_t)(end + 4 - c->in);
    memmove(c->in, end + 4, c->inlen);
    if (idle) {
      free(c->in);
      c->in = NULL;
      c->incap = 0;
      return;
    }
    put(c, frame, framelen);
  }
  frames(c);
}

/* A blocking connect (the listen backlog takes them as fast as they come),
** then the handshake request; the socket then goes non-blocking. */
static int connect_one(int ep, Conn *c, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
  int one = 1;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (send(c->fd, REQUEST, sizeof REQUEST - 1, 0) != (ssize_t)(sizeof REQUEST - 1)) return -1;
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
  return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void poll_once(int ep, int ms) {
  struct epoll_event evs[256];
  int n = epoll_wait(ep, evs, 256, ms);
  for (int i = 0; i < n; i++) {
    Conn *c = evs[i].data.ptr;
    if (c->fd < 0) continue;
    if (evs[i].events & EPOLLOUT) flush_out(c);
    if (c->fd >= 0 && evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(c);
  }
}

int main(int argc, char **argv) {
  int port, nconns, ep = epoll_create1(0), ready = 0;
  double secs, warm = 1, t0;
  Conn *conns;
  idle = argc > 1 && strcmp(argv[1], "--idle") == 0;
  if (argc < (idle ? 5 : 5)) {
    fprintf(stderr, "usage: wsload PORT CONNS SIZE SECONDS [WARM] | wsload --idle PORT CONNS SECONDS\n");
    return 2;
  }
  argv += idle;
  port = atoi(argv[1]);
  nconns = atoi(argv[2]);
  size = idle ? 0 : (size_t)atol(argv[3]);
  secs = atof(argv[idle ? 3 : 4]);
  if (!idle && argc > 5) warm = atof(argv[5]);
  build_frame();
  conns = calloc((size_t)nconns, sizeof *conns);
  for (int i = 0; i < nconns; i++) {
    if (connect_one(ep, &conns[i], port) < 0) fail(&conns[i]);
    if (i % 64 == 63) poll_once(ep, 0);
  }
  t0 = now();
  while (now() - t0 < 90) {
    ready = 0;
    for (int i = 0; i < nconns; i++) ready += conns[i].fd >= 0 && conns[i].open;
    if (ready + errors >= nconns || (!idle && ready == nconns)) break;
    poll_once(ep, 10);
  }
  if (idle) {
    printf("ready=%d errors=%lld\n", ready, errors);
    fflush(stdout);
    sleep((unsigned)secs);
    return 0;
  }
  t0 = now();
  while (now() - t0 < warm) poll_once(ep, 10);
  counting = 1;
  t0 = now();
  while (now() - t0 < secs) poll_once(ep, 10);
  secs = now() - t0;
  printf("msgs=%lld rate=%.0f conns=%d errors=%lld\n", counted, counted / secs, ready, errors);
  return 0;
}
