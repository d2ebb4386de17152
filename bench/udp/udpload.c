/*
** udpload: the UDP echo load client of bench/udp_peers.sh.
**   udpload PORT CLIENTS SIZE DUR WARM [WINDOW]
** CLIENTS connected sockets to 127.0.0.1:PORT, each with WINDOW (default
** 1) SIZE-byte datagrams in flight: it sends one more for each echo that
** comes back. Echoes are counted for DUR seconds after WARM seconds of
** warm-up; prints "rate=<echoes per second> lost=<resends>". The client
** takes echoes with recvmmsg and answers them with one sendmmsg, so that
** with a window it costs less per datagram than any server it measures.
** UDP may lose a datagram: a client that got no echo for 200 ms counts
** what it had in flight as lost and sends a whole window again.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 1024

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int client(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
  return fd;
}

#define BATCH 64

/* Send k datagrams on fd in one sendmmsg: hdr's iovecs all point at msg. */
static void send_n(int fd, struct mmsghdr *hdr, int k) {
  int off = 0, r;
  while (off < k && (r = sendmmsg(fd, hdr + off, (unsigned)(k - off), 0)) > 0) off += r;
}

int main(int argc, char **argv) {
  int port, n, size, window = 1, i, ep;
  double dur, warm, start, t, heard[MAXC];
  long count = 0, lost = 0, inflight[MAXC];
  int fds[MAXC];
  static char bufs[BATCH][2048], msg[65536];
  struct mmsghdr rh[BATCH], sh[BATCH];
  struct iovec riov[BATCH], siov;
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: udpload PORT CLIENTS SIZE DUR WARM [WINDOW]\n");
    return 2;
  }
  port = atoi(argv[1]), n = atoi(argv[2]), size = atoi(argv[3]);
  dur = atof(argv[4]), warm = atof(argv[5]);
  if (argc == 7) window = atoi(argv[6]);
  if (n < 1 || n > MAXC || size < 1 || size > 2048 || window < 1 || window > BATCH) return 2;
  memset(msg, 'x', (size_t)size);
  siov.iov_base = msg, siov.iov_len = (size_t)size;
  memset(rh, 0, sizeof rh), memset(sh, 0, sizeof sh);
  for (i = 0; i < BATCH; i++) {
    riov[i].iov_base = bufs[i], riov[i].iov_len = sizeof bufs[i];
    rh[i].msg_hdr.msg_iov = &riov[i], rh[i].msg_hdr.msg_iovlen = 1;
    sh[i].msg_hdr.msg_iov = &siov, sh[i].msg_hdr.msg_iovlen = 1;
  }
  ep = epoll_create1(0);
  for (i = 0; i < n; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
    if ((fds[i] = client(port)) < 0) {
      perror("udpload: socket");
      return 1;
    }
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    send_n(fds[i], sh, window);
    inflight[i] = window, heard[i] = now();
  }
  start = now();
  while ((t = now()) < start + warm + dur) {
    struct epoll_event evs[64];
    int k, m = epoll_wait(ep, evs, 64, 10);
    for (k = 0; k < m; k++) {
      int c = (int)evs[k].data.u32, r;
      while ((r = recvmmsg(fds[c], rh, BATCH, MSG_DONTWAIT, NULL)) > 0) {
        if (t >= start + warm) count += r;
        heard[c] = t;
        inflight[c] -= r;
        /* late echoes of datagrams counted lost need no replacement */
        r = inflight[c] < 0 ? r + (int)inflight[c] : r;
        if (inflight[c] < 0) inflight[c] = 0;
        send_n(fds[c], sh, r);
        inflight[c] += r;
      }
    }
    for (i = 0; i < n; i++)
      if (t - heard[i] > 0.2) {
        lost += inflight[i];
        send_n(fds[i], sh, window);
        inflight[i] = window, heard[i] = t;
      }
  }
  printf("rate=%.0f lost=%ld\n", (double)count / dur, lost);
  return 0;
}
