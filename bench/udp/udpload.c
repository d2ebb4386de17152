/*
** udpload: the UDP echo load client of bench/udp_peers.sh.
**   udpload PORT CLIENTS SIZE DUR WARM
** CLIENTS connected sockets to 127.0.0.1:PORT, each with one SIZE-byte
** datagram in flight: it sends the next when the echo of the last came
** back. Echoes are counted for DUR seconds after WARM seconds of warm-up;
** prints "rate=<echoes per second> lost=<resends>". UDP may lose a
** datagram: a client whose echo is 200 ms late sends again (counted).
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

int main(int argc, char **argv) {
  int port, n, size, i, ep;
  double dur, warm, start, t, sent_at[MAXC];
  long count = 0, lost = 0;
  int fds[MAXC];
  char buf[65536], msg[65536];
  if (argc != 6) {
    fprintf(stderr, "usage: udpload PORT CLIENTS SIZE DUR WARM\n");
    return 2;
  }
  port = atoi(argv[1]), n = atoi(argv[2]), size = atoi(argv[3]);
  dur = atof(argv[4]), warm = atof(argv[5]);
  if (n < 1 || n > MAXC || size < 1 || size > 65507) return 2;
  memset(msg, 'x', (size_t)size);
  ep = epoll_create1(0);
  for (i = 0; i < n; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
    if ((fds[i] = client(port)) < 0) {
      perror("udpload: socket");
      return 1;
    }
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    send(fds[i], msg, (size_t)size, 0);
    sent_at[i] = now();
  }
  start = now();
  while ((t = now()) < start + warm + dur) {
    struct epoll_event evs[64];
    int k, m = epoll_wait(ep, evs, 64, 10);
    for (k = 0; k < m; k++) {
      int c = (int)evs[k].data.u32;
      while (recv(fds[c], buf, sizeof buf, 0) > 0) {
        if (t >= start + warm) count++;
        send(fds[c], msg, (size_t)size, 0);
        sent_at[c] = t;
      }
    }
    for (i = 0; i < n; i++)
      if (t - sent_at[i] > 0.2) {
        lost++;
        send(fds[i], msg, (size_t)size, 0);
        sent_at[i] = t;
      }
  }
  printf("rate=%.0f lost=%ld\n", (double)count / dur, lost);
  return 0;
}
