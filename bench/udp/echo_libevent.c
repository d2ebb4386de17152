/*
** A UDP echo server in C on libevent 2.1, the reference of
** bench/udp_peers.sh: one persistent read event; each callback answers
** every datagram the socket holds (recvfrom, sendto) until EAGAIN.
**   echo_libevent PORT
*/
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/event.h>

static void on_read(evutil_socket_t fd, short what, void *arg) {
  char buf[65536];
  struct sockaddr_storage from;
  (void)what; (void)arg;
  for (;;) {
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from,
                         &len);
    if (n < 0) return;
    sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
  }
}

int main(int argc, char **argv) {
  struct sockaddr_in a;
  struct event_base *base = event_base_new();
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (argc != 2 || fd < 0 || base == NULL) return 2;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[1]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("echo_libevent: bind");
    return 1;
  }
  event_add(event_new(base, fd, EV_READ | EV_PERSIST, on_read, NULL), NULL);
  return event_base_dispatch(base);
}
