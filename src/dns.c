/*
** getaddrinfo over libevent's evdns: one resolver per loop, made on first
** use, reading /etc/resolv.conf and /etc/hosts. Numeric hosts and names in
** /etc/hosts are answered at once, without suspending. Otherwise the task
** awaits a future that a handle completes: the evdns callback never calls
** Lua, it records the answer in the lookup and queues the handle.
**
** A lookup is a userdata held by its handle (anchored until it runs) and
** by the awaiting call's stack. evdns holds its address from the request
** until the callback, which always comes, even after a cancel (then later,
** from the loop): the handle runs only after it. If the loop closes first,
** dns_close cancels the lookup and lets evdns call back.
**
** The resolver and the lookups in flight are the loop's LX_DNS extension
** (a DnsLoop), made with the resolver; dns_close is its close hook.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <event2/dns.h>
#include <event2/util.h>
#include "lasync.h"

struct DnsQuery {
  struct DnsQuery *next, **prevp;  /* in lookups until the handle runs */
  Loop *loop;
  Handle *h;                       /* runs dns_done with future, query, host */
  struct evdns_getaddrinfo_request *req;  /* while evdns holds the query */
  struct evutil_addrinfo *res;     /* the answer, until it is read */
  int err;                         /* EVUTIL_EAI_* or 0 */
  unsigned char cancelled;         /* evdns_getaddrinfo_cancel was called */
  unsigned char closed;            /* the loop is closing: queue nothing */
};
typedef struct DnsQuery DnsQuery;

typedef struct DnsLoop {
  struct evdns_base *dns;          /* the resolver */
  DnsQuery *lookups;               /* lookups whose handle has not run */
} DnsLoop;

#define dns_loop(lp) ((DnsLoop *)(lp)->ext[LX_DNS])

/* Stack slots of l_getaddrinfo, which its continuation reads. */
enum { ARG_HOST = 1, ARG_PORT, ARG_OPTS, SLOT_QUERY, SLOT_FUTURE };

/* evdns fails with libevent's own EAI numbers, whose evutil_gai_strerror
** texts are BSD's ("nodename nor servname provided, or not known"): an
** error shows the system's text for the same code instead. */
static const struct { int err, sys; const char *name; } eai_names[] = {
  {EVUTIL_EAI_ADDRFAMILY, EAI_ADDRFAMILY, "EAI_ADDRFAMILY"},
  {EVUTIL_EAI_AGAIN, EAI_AGAIN, "EAI_AGAIN"},
  {EVUTIL_EAI_BADFLAGS, EAI_BADFLAGS, "EAI_BADFLAGS"},
  {EVUTIL_EAI_FAIL, EAI_FAIL, "EAI_FAIL"},
  {EVUTIL_EAI_FAMILY, EAI_FAMILY, "EAI_FAMILY"},
  {EVUTIL_EAI_MEMORY, EAI_MEMORY, "EAI_MEMORY"},
  {EVUTIL_EAI_NODATA, EAI_NODATA, "EAI_NODATA"},
  {EVUTIL_EAI_NONAME, EAI_NONAME, "EAI_NONAME"},
  {EVUTIL_EAI_SERVICE, EAI_SERVICE, "EAI_SERVICE"},
  {EVUTIL_EAI_SOCKTYPE, EAI_SOCKTYPE, "EAI_SOCKTYPE"},
  {EVUTIL_EAI_SYSTEM, EAI_SYSTEM, "EAI_SYSTEM"}, {0, 0, NULL}
};

static int eai_index(int err) {
  int i;
  for (i = 0; eai_names[i].name; i++)
    if (eai_names[i].err == err) break;
  return i;
}

static const char *eai_name(int err) {
  const char *name = eai_names[eai_index(err)].name;
  return name ? name : "EAI_UNKNOWN";
}

static const char *eai_text(int err) {
  int i = eai_index(err);
  return eai_names[i].name ? gai_strerror(eai_names[i].sys)
                           : evutil_gai_strerror(err);
}

/* ---------- the lookup list and the evdns side (no Lua) ---------- */

static void query_link(DnsLoop *d, DnsQuery *q) {
  q->next = d->lookups;
  q->prevp = &d->lookups;
  if (q->next) q->next->prevp = &q->next;
  d->lookups = q;
}

static void answer_free(DnsQuery *q) {
  if (q->res) evutil_freeaddrinfo(q->res);
  q->res = NULL;
}

static void query_unlink(DnsQuery *q) {
  *q->prevp = q->next;
  if (q->next) q->next->prevp = q->prevp;
  answer_free(q);
}

/* evdns calls this once per request, at once (q->req not set yet) for
** what it answers without asking, else from the loop. */
static void dns_cb(int err, struct evutil_addrinfo *res, void *arg) {
  DnsQuery *q = arg;
  q->err = err;
  q->res = res;
  if (q->req == NULL) return;
  q->req = NULL;
  if (!q->closed) loop_ready_push(q->loop, q->h);
}

/* Its callback still comes, with EVUTIL_EAI_CANCEL unless it had an
** answer already. */
static void query_cancel(DnsQuery *q) {
  if (q->req && !q->cancelled) {
    q->cancelled = 1;
    evdns_getaddrinfo_cancel(q->req);
  }
}

static int any_in_flight(DnsLoop *d) {
  DnsQuery *q;
  for (q = d->lookups; q; q = q->next)
    if (q->req) return 1;
  return 0;
}

/* The loop's close hook (LX_DNS): cancel what is in flight and let evdns
** call back (deferred callbacks run in a non-blocking pass), so that
** neither evdns nor an unread answer keeps memory; then free the
** resolver. */
static void dns_close(lua_State *L, Loop *lp, int loopidx) {
  DnsLoop *d = dns_loop(lp);
  DnsQuery *q;
  (void)L, (void)loopidx;
  if (d == NULL) return;
  for (q = d->lookups; q; q = q->next) {
    q->closed = 1;
    query_cancel(q);
  }
  while (any_in_flight(d))
    event_base_loop(lp->base, EVLOOP_NONBLOCK);
  while (d->lookups) query_unlink(d->lookups);
  evdns_base_free(d->dns, 0);
  free(d);
  lp->ext[LX_DNS] = NULL;
}

/* Without a nameserver line evdns, as glibc, asks 127.0.0.1; but a
** resolv.conf it cannot read leaves it none, and a lookup would then wait
** for one forever: ask 127.0.0.1 then too. /etc/hosts is read either way. */
static DnsLoop *resolver(lua_State *L, Loop *lp) {
  DnsLoop *d = dns_loop(lp);
  struct evdns_base *dns;
  if (d) return d;
  d = malloc(sizeof *d);
  dns = d ? evdns_base_new(lp->base, EVDNS_BASE_INITIALIZE_NAMESERVERS)
          : NULL;
  if (dns == NULL) {
    free(d);
    luaL_error(L, "cannot create the DNS resolver");
  }
  if (evdns_base_count_nameservers(dns) == 0)
    evdns_base_nameserver_ip_add(dns, "127.0.0.1");
  d->dns = dns;
  d->lookups = NULL;
  lp->ext[LX_DNS] = d;
  return d;
}

/* ---------- answers as Lua values ---------- */

/* {family=, host=, port=}; an IPv6 host keeps its scope ("fe80::1%eth0"),
** without which a link-local address cannot be connected to. */
static void push_address(lua_State *L, const struct evutil_addrinfo *ai) {
  Addr a;
  memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
  a.len = (socklen_t)ai->ai_addrlen;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, ai->ai_family == AF_INET6 ? "inet6" : "inet");
  lua_setfield(L, -2, "family");
  if (addr_push(L, &a) == 2) {  /* always, for an address evdns made */
    lua_setfield(L, -3, "port");
    lua_setfield(L, -2, "host");
  }
}

/* OSError "host: reason" with code "EAI_..." and errno the EAI number. */
static void push_error(lua_State *L, int err, int hostidx) {
  lua_pushfstring(L, "%s: %s", lua_tostring(L, hostidx), eai_text(err));
  errors_push_newv(L, "OSError", -1);
  lua_remove(L, -2);
  lua_pushstring(L, eai_name(err));
  lua_setfield(L, -2, "code");
  lua_pushinteger(L, err);
  lua_setfield(L, -2, "errno");
}

/* Push the answer of q: the list of addresses (returns 1) or the error
** (returns 0). No address at all is an error too, as for getaddrinfo(3). */
static int push_answer(lua_State *L, DnsQuery *q, int hostidx) {
  const struct evutil_addrinfo *ai;
  int n = 0;
  if (q->err || q->res == NULL) {
    push_error(L, q->err ? q->err : EVUTIL_EAI_NODATA, hostidx);
    return 0;
  }
  lua_newtable(L);
  for (ai = q->res; ai; ai = ai->ai_next) {
    push_address(L, ai);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* The handle's callback: future, query, host. A future no longer pending
** was cancelled; the answer is dropped. */
static int dns_done(lua_State *L) {
  Future *f = lua_touserdata(L, 1);
  DnsQuery *q = lua_touserdata(L, 2);
  int ok;
  if (f->state != F_PENDING) {
    query_unlink(q);
    return 0;
  }
  ok = push_answer(L, q, 3);
  query_unlink(q);
  if (ok) future_set_results(L, f, 1, lua_gettop(L), 1);
  else future_set_error(L, f, 1, lua_gettop(L), 0);
  return 0;
}

/* ---------- arguments ---------- */

/* A non-empty string without zero bytes (it goes to C as it is). */
static const char *checkname(lua_State *L, int arg) {
  size_t len;
  const char *s = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, len > 0 && strlen(s) == len, arg,
                "non-empty string without zero bytes expected");
  return s;
}

/* The service: nil, a port number 0..65535 (written into buf) or a
** string (a number or a name from /etc/services). */
static const char *checkport(lua_State *L, char *buf, size_t size) {
  lua_Integer port;
  switch (lua_type(L, ARG_PORT)) {
    case LUA_TNONE: case LUA_TNIL: return NULL;
    case LUA_TSTRING: return checkname(L, ARG_PORT);
    case LUA_TNUMBER: break;
    default: luaL_typeerror(L, ARG_PORT, "number, string or nil");
  }
  port = luaL_checkinteger(L, ARG_PORT);
  luaL_argcheck(L, port >= 0 && port <= 65535, ARG_PORT,
                "port must be from 0 to 65535");
  snprintf(buf, size, "%d", (int)port);
  return buf;
}

/* opts[field], one of two names: nil gives values[0], names[i] gives
** values[i + 1]. */
static int checkchoice(lua_State *L, const char *field,
                       const char *const names[], const int values[]) {
  int i, t = lua_getfield(L, ARG_OPTS, field);
  const char *got;
  for (i = 0; t == LUA_TSTRING && names[i]; i++)
    if (strcmp(lua_tostring(L, -1), names[i]) == 0) break;
  if (t == LUA_TNIL || (t == LUA_TSTRING && names[i])) {
    lua_pop(L, 1);
    return t == LUA_TNIL ? values[0] : values[i + 1];
  }
  got = t == LUA_TSTRING ? lua_pushfstring(L, "'%s'", lua_tostring(L, -1))
                         : luaL_typename(L, -1);
  return luaL_argerror(L, ARG_OPTS, lua_pushfstring(L,
      "%s must be \"%s\", \"%s\" or nil, got %s", field, names[0],
      names[1], got));
}

static void checkopts(lua_State *L, struct evutil_addrinfo *hints) {
  static const char *const families[] = {"inet", "inet6", NULL};
  static const int family_values[] = {AF_UNSPEC, AF_INET, AF_INET6};
  static const char *const types[] = {"stream", "dgram", NULL};
  static const int type_values[] = {SOCK_STREAM, SOCK_STREAM, SOCK_DGRAM};
  memset(hints, 0, sizeof *hints);
  hints->ai_family = AF_UNSPEC;
  hints->ai_socktype = SOCK_STREAM;
  if (lua_isnoneornil(L, ARG_OPTS)) return;
  luaL_checktype(L, ARG_OPTS, LUA_TTABLE);
  for (lua_pushnil(L); lua_next(L, ARG_OPTS); lua_pop(L, 1))
    if (lua_type(L, -2) != LUA_TSTRING ||
        (strcmp(lua_tostring(L, -2), "family") != 0 &&
         strcmp(lua_tostring(L, -2), "type") != 0))
      luaL_argerror(L, ARG_OPTS, lua_pushfstring(L, "unknown option '%s'",
                                                 luaL_tolstring(L, -2, NULL)));
  hints->ai_family = checkchoice(L, "family", families, family_values);
  hints->ai_socktype = checkchoice(L, "type", types, type_values);
}

/* ---------- lasync.getaddrinfo ---------- */

/* After the wait, however it ended: a lookup still in flight (the task
** was cancelled) is cancelled too. */
static int getaddrinfo_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  query_cancel(lua_touserdata(L, SLOT_QUERY));
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  return 1;
}

/* Push a new lookup (to SLOT_QUERY), its future and its handle
** (anchored), before evdns gets the lookup's address. */
static DnsQuery *query_new(lua_State *L, Loop *lp) {
  DnsQuery *q = lua_newuserdatauv(L, sizeof(DnsQuery), 0);
  int fn;
  memset(q, 0, sizeof *q);
  q->loop = lp;
  future_new(L, lp, K_FUTURE, sizeof(Future), FUV_NUV);
  fn = lua_gettop(L) + 1;
  lua_pushvalue(L, lua_upvalueindex(2));  /* dns_done */
  lua_pushvalue(L, SLOT_FUTURE);
  lua_pushvalue(L, SLOT_QUERY);
  lua_pushvalue(L, ARG_HOST);
  q->h = handle_new(L, lp, K_HANDLE, fn, 3);
  loop_anchor(L, lp, -1);
  return q;
}

/* getaddrinfo(host, port, {family=, type=}): a list of {family=, host=,
** port=}. Upvalues: Mod, dns_done, await. */
static int l_getaddrinfo(lua_State *L) {
  struct evutil_addrinfo hints;
  char buf[8];
  const char *host = checkname(L, ARG_HOST);
  const char *port = checkport(L, buf, sizeof buf);
  Loop *lp;
  DnsLoop *d;
  DnsQuery *q;
  checkopts(L, &hints);
  lp = lasync_running(L, lasync_mod(L));
  if (lp->current == NULL)
    return luaL_error(L, "getaddrinfo called outside a task");
  lua_settop(L, ARG_OPTS);
  d = resolver(L, lp);
  q = query_new(L, lp);
  q->req = evdns_getaddrinfo(d->dns, host, port, &hints, dns_cb, q);
  if (q->req == NULL) {  /* answered at once */
    int ok;
    loop_unanchor(L, lp, q->h);
    ok = push_answer(L, q, ARG_HOST);
    answer_free(q);
    return ok ? 1 : lua_error(L);
  }
  query_link(d, q);
  lua_settop(L, SLOT_FUTURE);
  lua_pushvalue(L, lua_upvalueindex(3));  /* await(future) */
  lua_pushvalue(L, SLOT_FUTURE);
  return getaddrinfo_k(L, lua_pcallk(L, 1, 1, 0, 0, getaddrinfo_k), 0);
}

/* Stack: Mod, core table (with core.await, from task_register). */
void dns_register(lua_State *L) {
  loop_register_ext(L, LX_DNS, dns_close);
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, dns_done, 1);
  lua_getfield(L, -3, "await");
  lua_pushcclosure(L, l_getaddrinfo, 3);
  lua_setfield(L, -2, "getaddrinfo");
}
