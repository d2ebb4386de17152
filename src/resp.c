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

/* The arguments' places, noted while the command is framed, so that most
** commands are scanned once (a second scan pushes those of longer ones). */
#define ARGS_KEPT 32
typedef struct { const char *p[ARGS_KEPT]; size_t n[ARGS_KEPT], k; } Kept;

static void keep_arg(void *ud, const char *p, size_t n) {
  Kept *u = ud;
  if (u->k < ARGS_KEPT) {
    u->p[u->k] = p;
    u->n[u->k] = n;
  }
  u->k++;
}

/* The framed command's arguments into argv (at 2). */
static void push_args(lua_State *L, const char *p, size_t len, RespScan *r, const Kept *kept) {
  size_t i;
  if (r->argc > ARGS_KEPT) {
    Push u = {L, 0};
    r->each = push_arg;
    r->ud = &u;
    resp_scan(p, len, r);
    return;
  }
  for (i = 0; i < r->argc; i++) {
    lua_pushlstring(L, kept->p[i], kept->n[i]);
    lua_rawseti(L, 2, (lua_Integer)i + 1);
  }
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
    Kept kept;
    kept.k = 0;
    r.each = keep_arg;
    r.ud = &kept;
    if ((n = resp_scan(p, len, &r)) < 0) return protocol_error(L, s, &r);
    if (n > 0) push_args(L, p, len, &r, &kept);
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

/* ---------- core.resp_encode(value) ---------- */

#define NEST_MAX 32  /* deeper arrays are taken for a cycle */

/* type, then n in decimal, then "\r\n", at b (room for 24 bytes): the
** length written. Not snprintf, which was most of an INCR reply's cost. */
static size_t number_line(char *b, char type, lua_Integer n) {
  char d[20];
  size_t k = 0, i = 0;
  lua_Unsigned u = n < 0 ? 0u - (lua_Unsigned)n : (lua_Unsigned)n;
  do d[k++] = (char)('0' + u % 10); while ((u /= 10) > 0);
  b[i++] = type;
  if (n < 0) b[i++] = '-';
  while (k > 0) b[i++] = d[--k];
  b[i++] = '\r';
  b[i++] = '\n';
  return i;
}

/* A bulk string: "$<len>\r\n<bytes>\r\n", made in one piece (a short
** one on the C stack: a luaL_Buffer was a third of a GET reply's cost). */
#define BULK_SHORT 256
static void push_bulk(lua_State *L, const char *s, size_t n) {
  char line[BULK_SHORT + 26], *p = line;
  luaL_Buffer b;
  size_t k;
  if (n > BULK_SHORT) p = luaL_buffinitsize(L, &b, n + 26);
  k = number_line(p, '$', (lua_Integer)n);
  memcpy(p + k, s, n);
  memcpy(p + k + n, "\r\n", 2);
  if (p == line) lua_pushlstring(L, line, k + n + 2);
  else luaL_pushresultsize(&b, k + n + 2);
}

static void push_encoded(lua_State *L, int idx, int depth);

/* An array: "*<n>\r\n" and its elements t[1..#t], each encoded. */
static void push_array(lua_State *L, int idx, int depth) {
  luaL_Buffer b;
  char head[24];
  lua_Integer i, n = luaL_len(L, idx);
  if (depth >= NEST_MAX)
    luaL_error(L, "resp_encode: arrays nested deeper than %d (a cycle?)", NEST_MAX);
  luaL_checkstack(L, 4, "resp_encode");
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, head, number_line(head, '*', n));
  for (i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    push_encoded(L, lua_gettop(L), depth + 1);
    lua_remove(L, -2);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/* The RESP2 reply of the value at idx, pushed. */
static void push_encoded(lua_State *L, int idx, int depth) {
  char line[24];
  size_t n;
  const char *s;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      s = lua_tolstring(L, idx, &n);
      push_bulk(L, s, n);
      return;
    case LUA_TNUMBER:
      if (!lua_isinteger(L, idx)) break;
      lua_pushlstring(L, line, number_line(line, ':', lua_tointeger(L, idx)));
      return;
    case LUA_TBOOLEAN:  /* false is a null, as nil is */
      if (lua_toboolean(L, idx)) break;
      /* fall through */
    case LUA_TNIL:
      lua_pushliteral(L, "$-1\r\n");
      return;
    case LUA_TTABLE:
      push_array(L, idx, depth);
      return;
  }
  luaL_error(L, "bad argument #1 to 'resp_encode' (a string, an integer, nil, "
             "false or an array of them expected, got %s)",
             lua_isnumber(L, idx) ? "a float" : luaL_typename(L, idx));
}

static int l_resp_encode(lua_State *L) {
  luaL_checkany(L, 1);
  push_encoded(L, 1, 0);
  return 1;
}

static const luaL_Reg resp_funcs[] = {
  {"resp_encode", l_resp_encode},
  {NULL, NULL}
};

/* Stack: Mod, core table. */
void resp_register(lua_State *L) {
  lasync_addfuncs(L, resp_funcs);
}
