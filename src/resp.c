/* RESP2 request framing for reader:readresp(): redis's multibulk
** commands ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and inline ones ("GET k\n"),
** parsed in the stream's input buffer; each argument is copied once, into
** its Lua string. Limits and error texts are redis-server's. */
#include <string.h>
#include "lasync.h"

#define INLINE_MAX (64 * 1024)           /* PROTO_INLINE_MAX_SIZE */
#define BULK_MAX (512L * 1024 * 1024)    /* proto-max-bulk-len */
#define ARGS_MAX (1024L * 1024)          /* the multibulk count's bound */

/* The decimal integer (redis's string2ll: optional '-', digits, no '+' or
** spaces) in p[0..n); 0 if it is none or out of [-BULK_MAX, BULK_MAX]. */
static int small_int(const char *p, size_t n, long *v) {
  size_t i = n > 0 && p[0] == '-';
  long x = 0;
  if (i == n) return 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    x = x * 10 + (p[i] - '0');
    if (x > BULK_MAX) return 0;
  }
  *v = p[0] == '-' ? -x : x;
  return 1;
}

/* The number on the line at p (after its type byte) through "\r\n": its
** end past the "\r\n" (*ok: a number within bounds), or NULL when the
** line is not all there. */
static const char *line_int(const char *p, const char *end, long *v, int *ok) {
  const char *cr = memchr(p, '\r', (size_t)(end - p));
  *ok = 0;
  if (cr == NULL || cr + 1 >= end) return NULL;
  *ok = small_int(p + 1, (size_t)(cr - p - 1), v);
  return cr + 2;
}

static long bad(RespScan *r, const char *why, const char *at) {
  r->why = why;
  r->at = at ? (unsigned char)*at : 0;
  return -1;
}

/* A line of `line` bytes so far without its end, in len bytes of input:
** more input is wanted, unless the line is already too long. */
static long more(RespScan *r, size_t len, size_t line, const char *why) {
  if (line > INLINE_MAX) return bad(r, why, NULL);
  r->want = len + 1;
  return 0;
}

/* A multibulk command at p: see resp_scan. */
static long scan_multibulk(const char *p, size_t len, RespScan *r) {
  const char *end = p + len, *q;
  long n, i, blen;
  int ok;
  if ((q = line_int(p, end, &n, &ok)) == NULL)
    return more(r, len, len, "too big mbulk count string");
  if (!ok || n > ARGS_MAX) return bad(r, "invalid multibulk length", NULL);
  r->argc = n > 0 ? (size_t)n : 0;
  for (i = 0; i < n; i++) {
    if (q >= end) return more(r, len, 0, NULL);
    if (*q != '$') return bad(r, "expected '$', got '%c'", q);
    const char *d = line_int(q, end, &blen, &ok);
    if (d == NULL) return more(r, len, (size_t)(end - q), "too big bulk count string");
    if (!ok || blen < 0) return bad(r, "invalid bulk length", NULL);
    if ((size_t)(end - d) < (size_t)blen + 2) {
      r->want = (size_t)(d - p) + (size_t)blen + 2;
      return 0;
    }
    if (r->each) r->each(r->ud, d, (size_t)blen);
    q = d + blen + 2;  /* redis skips the "\r\n" unchecked */
  }
  return (long)(q - p);
}

/* An inline command at p: words split on spaces and tabs, through "\n". */
static long scan_inline(const char *p, size_t len, RespScan *r) {
  const char *nl = memchr(p, '\n', len), *q, *w;
  if (nl == NULL) return more(r, len, len, "too big inline request");
  r->argc = 0;
  for (q = p; q < nl;) {
    while (q < nl && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
    for (w = q; q < nl && *q != ' ' && *q != '\t' && *q != '\r'; q++) {}
    if (q == w) continue;
    r->argc++;
    if (r->each) r->each(r->ud, w, (size_t)(q - w));
  }
  return (long)(nl + 1 - p);
}

long resp_scan(const char *p, size_t len, RespScan *r) {
  r->argc = 0;
  r->want = 1;
  if (len == 0) return 0;
  return p[0] == '*' ? scan_multibulk(p, len, r) : scan_inline(p, len, r);
}

/* ---------- reader:readresp(argv [, nowait]) ---------- */

typedef struct { lua_State *L; lua_Integer i; } Push;

static void push_arg(void *ud, const char *p, size_t n) {
  Push *u = ud;
  lua_pushlstring(u->L, p, n);
  lua_rawseti(u->L, 2, ++u->i);
}

/* The protocol error: nil and redis's message; the input is dropped, as
** nothing after it can be framed. */
static int protocol_error(lua_State *L, Stream *s, const RespScan *r) {
  size_t len;
  stream_input(s, &len);
  stream_consume(s, len);
  lua_pushnil(L);
  lua_pushliteral(L, "Protocol error: ");
  lua_pushfstring(L, r->why, r->at);
  lua_concat(L, 2);
  return 2;
}

/* stream, argv, nowait; the resume's values at 4. Commands with no
** arguments (an empty line, "*0") are skipped, as redis does. */
static int readresp_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  RespScan r = {0};
  size_t len;
  long n;
  (void)ctx;
  if (status == LUA_YIELD) stream_input_resumed(L, s, 4);
  stream_raise_failure(L, s);
  do {
    const char *p = stream_input(s, &len);
    Push u = {L, 0};
    r.each = NULL;
    if ((n = resp_scan(p, len, &r)) < 0) return protocol_error(L, s, &r);
    if (n > 0 && r.argc > 0) {
      r.each = push_arg;
      r.ud = &u;
      resp_scan(p, len, &r);
    }
    stream_consume(s, (size_t)n);
  } while (n > 0 && r.argc == 0);
  if (n > 0) lua_pushinteger(L, (lua_Integer)r.argc);
  else if (stream_ended(s)) {  /* a partial command is dropped */
    stream_consume(s, len);
    lua_pushnil(L);
  }
  else if (lua_toboolean(L, 3)) lua_pushboolean(L, 0);
  else return stream_wait_input(L, s, r.want, 0, 0, readresp_k, "readresp");
  return 1;
}

int resp_readresp(lua_State *L) {
  stream_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 3);
  return readresp_k(L, LUA_OK, 0);
}
