/*
** Socket addresses: numeric host and port (IPv4 or IPv6) or a Unix socket
** path to a sockaddr, and back to Lua values. Names are never looked up
** here: resolving is lasync.streams' resolve(), so nothing here blocks.
*/
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include "lasync.h"

/* The port at idx: an integer from 0 to 65535. */
int addr_checkport(lua_State *L, int idx) {
  lua_Integer port = luaL_checkinteger(L, idx);
  luaL_argcheck(L, port >= 0 && port <= 65535, idx,
                "port must be from 0 to 65535");
  return (int)port;
}

/* The common forms, dotted IPv4 and IPv6 without a scope, through
** inet_pton: a datagram's sendto parses one per call, and getaddrinfo
** costs some ten times more. 0, or -1 for any other form. */
static int parse_plain(const char *host, int port, Addr *a) {
  struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
  memset(&a->ss, 0, sizeof *in6);
  if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    a->len = sizeof *in;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) return -1;
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons((uint16_t)port);
  a->len = sizeof *in6;
  return 0;
}

/* Fill a from a numeric host and a port; 0, or -1 if host is not one. */
int addr_parse(const char *host, int port, Addr *a) {
  struct addrinfo hints, *res;
  char serv[8];
  if (parse_plain(host, port, a) == 0) return 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(serv, sizeof serv, "%d", port);
  if (getaddrinfo(host, serv, &hints, &res) != 0) return -1;  /* no lookup */
  memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
  a->len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* Fill a from the numeric host at hidx and the port at pidx; raises an
** argument error naming the host when it is not a numeric address. */
void addr_from_host(lua_State *L, int hidx, int pidx, Addr *a) {
  const char *host = luaL_checkstring(L, hidx);
  if (addr_parse(host, addr_checkport(L, pidx), a) != 0)
    luaL_argerror(L, hidx, lua_pushfstring(L, "numeric IPv4 or IPv6 "
                  "address expected, got '%s'", host));
}

void addr_set_port(Addr *a, int port) {
  if (a->ss.ss_family == AF_INET6)
    ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
  else if (a->ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
}

/* The port of a (0 for a Unix address). */
int addr_port(const Addr *a) {
  if (a->ss.ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
  return a->ss.ss_family == AF_INET
         ? ntohs(((const struct sockaddr_in *)&a->ss)->sin_port) : 0;
}

/* The local port of the IP socket fd (0 if it has none). */
int addr_port_of(int fd) {
  Addr a;
  a.len = sizeof a.ss;
  memset(&a.ss, 0, sizeof a.ss);
  if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) != 0) return 0;
  return addr_port(&a);
}

/* Fill a from the Unix socket path at idx. */
void addr_from_path(lua_State *L, int idx, Addr *a) {
  size_t n;
  const char *path = luaL_checklstring(L, idx, &n);
  struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
  luaL_argcheck(L, n > 0 && n < sizeof un->sun_path, idx,
                "path must have 1 to 107 bytes");
  luaL_argcheck(L, strlen(path) == n, idx, "path contains a zero byte");
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, n);
  a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* Push host and port of an IPv4 address or an IPv6 one without a scope
** (inet_ntop: a datagram's recvfrom pushes one per call); 0 (nothing
** pushed) for any other. */
static int push_plain(lua_State *L, const Addr *a) {
  char host[INET6_ADDRSTRLEN];
  const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
  if (a->ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
  else if (a->ss.ss_family == AF_INET6 && in6->sin6_scope_id == 0)
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  else return 0;
  lua_pushstring(L, host);
  lua_pushinteger(L, ntohs(a->ss.ss_family == AF_INET ? in->sin_port
                                                     : in6->sin6_port));
  return 1;
}

/* Push host and port (2 values), or the path of a Unix socket (1 value, ""
** for an unnamed one). Returns the number of values pushed. */
int addr_push(lua_State *L, const Addr *a) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (push_plain(L, a)) return 2;
  if (a->ss.ss_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;
    size_t n = a->len > offsetof(struct sockaddr_un, sun_path)
               ? a->len - offsetof(struct sockaddr_un, sun_path) : 0;
    lua_pushlstring(L, un->sun_path, strnlen(un->sun_path, n));
    return 1;
  }
  if (getnameinfo((const struct sockaddr *)&a->ss, a->len, host, sizeof host,
                  serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return 0;
  lua_pushstring(L, host);
  lua_pushinteger(L, (lua_Integer)strtol(serv, NULL, 10));
  return 2;
}

/* Push the local (peer = 0) or remote address of fd; nothing if it has
** none (not connected, closed). */
int addr_push_of(lua_State *L, int fd, int peer) {
  Addr a;
  int rc;
  a.len = sizeof a.ss;
  memset(&a.ss, 0, sizeof a.ss);
  rc = peer ? getpeername(fd, (struct sockaddr *)&a.ss, &a.len)
            : getsockname(fd, (struct sockaddr *)&a.ss, &a.len);
  return rc == 0 ? addr_push(L, &a) : 0;
}
