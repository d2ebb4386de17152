/*
** HTTP/1.1 (RFC 9112) over streams: core._http, the layer lasync.http is
** built on. Heads are parsed by http_parser (Node's, strict) over the
** stream's input buffer once the whole head is there; the rules it does
** not enforce against request smuggling (bare LF, NUL, obsolete folding,
** Host, Transfer-Encoding) are checked here on the raw head. The body is
** framed here, never by http_parser: it is paused at the end of the head.
**
** A Message is one userdata holding a copy of its head and the offsets of
** its fields into it: no Lua string is made until a field is read. Its
** user values: the Headers object (made on first use) and a table of
** fields set from Lua (req.body, ...). Body reading keeps its state in the
** Message; a chunked body is decoded in place, at the front of the
** stream's input buffer, so that a body waiting for its end takes no more
** memory than its decoded bytes.
**
** Serialisation writes straight into the stream's output buffer, with a
** Date cached per second; no Lua string is made for a head.
*/
#include <string.h>
#include <time.h>
#include <http_parser.h>
#include "lasync.h"

#define MSG_MT "lasync.HttpMessage"
#define HEADERS_MT "lasync.HttpHeaders"
#define CHUNK_LINE_MAX 4096            /* longest chunk-size line */
#define TRAILER_MAX 16384        /* largest trailer section */
#define FIELDS_SMALL 64          /* fields parsed on the C stack */

/* ---------- finding a head ---------- */

long http_head_end(const char *p, size_t len, size_t *off, const char **why) {
  size_t i;
  for (i = *off; i < len; i++) {
    if (p[i] == '\0') {
      *why = "NUL in head";
      return -1;
    }
    if (p[i] != '\n') continue;
    if (i == 0 || p[i - 1] != '\r') {
      *why = "bare LF in head";
      return -1;
    }
    if (i >= 3 && p[i - 2] == '\n') return (long)(i + 1);
    if (i + 1 < len && (p[i + 1] == ' ' || p[i + 1] == '\t')) {
      *why = "obsolete line folding in head";
      return -1;
    }
  }
  *off = len > 0 ? len - 1 : 0;  /* a last LF is looked at again */
  return 0;
}

/* ---------- parsing a head ---------- */

static HttpHead *head_of(http_parser *hp) { return hp->data; }

/* Offset of at in the head; a span that goes on extends the last one. */
static void span(HttpHead *h, const char *at, size_t n, uint32_t *off,
                 uint32_t *len, int fresh) {
  if (fresh) *off = (uint32_t)(at - h->p);
  *len = (uint32_t)(at + n - h->p) - *off;
}

static int on_url(http_parser *hp, const char *at, size_t n) {
  HttpHead *h = head_of(hp);
  span(h, at, n, &h->target, &h->tlen, h->tlen == 0);
  return 0;
}

static int on_field(http_parser *hp, const char *at, size_t n) {
  HttpHead *h = head_of(hp);
  HttpField *f;
  int fresh = h->nfields == 0 || h->last_value;
  if (fresh) {
    if (h->nfields == h->maxfields) return 1;
    f = &h->fields[h->nfields++];
    memset(f, 0, sizeof *f);
  } else f = &h->fields[h->nfields - 1];
  h->last_value = 0;
  span(h, at, n, &f->name, &f->nlen, fresh);
  return 0;
}

static int on_value(http_parser *hp, const char *at, size_t n) {
  HttpHead *h = head_of(hp);
  HttpField *f = &h->fields[h->nfields - 1];
  span(h, at, n, &f->value, &f->vlen, !h->last_value);
  h->last_value = 1;
  return 0;
}

/* The body is ours: the parser stops here. */
static int on_headers_complete(http_parser *hp) {
  http_parser_pause(hp, 1);
  return 0;
}

static const http_parser_settings settings = {
  .on_url = on_url, .on_status = on_url, .on_header_field = on_field,
  .on_header_value = on_value, .on_headers_complete = on_headers_complete,
};

static int fail(const char **why, const char *msg, int status) {
  *why = msg;
  return status;
}

static int ieq(const char *a, size_t n, const char *b) {
  return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* How many fields are named name; *last: the index of the last one. */
static int count_fields(const HttpHead *h, const char *name, uint32_t *last) {
  uint32_t i;
  int n = 0;
  for (i = 0; i < h->nfields; i++)
    if (ieq(h->p + h->fields[i].name, h->fields[i].nlen, name)) {
      n++;
      *last = i;
    }
  return n;
}

/* RFC 9110 §5.6.2: the characters of a field name. */
static int is_token(const char *p, size_t n) {
  static const char tchars[] = "!#$%&'*+-.^_`|~0123456789"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] == '\0' || strchr(tchars, p[i]) == NULL) return 0;
  return n > 0;
}

/* Field names are tokens (Debian's http_parser lets a space pass); values
** lose the trailing whitespace http_parser keeps. */
static int check_fields(HttpHead *h, const char **why) {
  uint32_t i;
  for (i = 0; i < h->nfields; i++) {
    HttpField *f = &h->fields[i];
    if (!is_token(h->p + f->name, f->nlen))
      return fail(why, "field name is not a token", 400);
    while (f->vlen > 0 && (h->p[f->value + f->vlen - 1] == ' ' ||
                           h->p[f->value + f->vlen - 1] == '\t'))
      f->vlen--;
  }
  return 0;
}

/* Transfer-Encoding: one way only to read the body. http_parser itself
** refuses Content-Length with Transfer-Encoding, repeated and non-numeric
** Content-Lengths (spec/http/core_http_spec.lua's cross-check with it
** fails should it ever let one pass). A coding other than chunked alone
** cannot be decoded here: a request gets 501, a response is malformed. */
static int check_framing(HttpHead *h, const char **why) {
  uint32_t te;
  int nte = count_fields(h, "transfer-encoding", &te);
  if (nte == 0) return 0;
  if (!h->response && h->minor == 0)
    return fail(why, "Transfer-Encoding in an HTTP/1.0 request", 400);
  h->chunked = nte == 1 &&
               ieq(h->p + h->fields[te].value, h->fields[te].vlen, "chunked");
  if (!h->chunked)
    return fail(why, "unsupported transfer coding", h->response ? 400 : 501);
  return 0;
}

/* Exactly one Host in HTTP/1.1, at most one in 1.0 (RFC 9112 §3.2). */
static int check_request(HttpHead *h, const char **why) {
  uint32_t i;
  int nhost = count_fields(h, "host", &i);
  if (nhost > 1 || (h->minor == 1 && nhost == 0))
    return fail(why, "a request needs exactly one Host (HTTP/1.0: at most one)", 400);
  h->expect_continue = count_fields(h, "expect", &i) == 1 &&
    ieq(h->p + h->fields[i].value, h->fields[i].vlen, "100-continue");
  return 0;
}

static void parse_init(HttpHead *h, http_parser *hp, int response,
                       const char *p) {
  uint32_t max = h->maxfields;
  HttpField *fields = h->fields;
  memset(h, 0, sizeof *h);
  h->p = p;
  h->fields = fields;
  h->maxfields = max;
  h->response = response != 0;
  http_parser_init(hp, response ? HTTP_RESPONSE : HTTP_REQUEST);
  hp->data = h;
}

int http_head_parse(HttpHead *h, int response, const char *p, size_t n,
                    const char **why) {
  http_parser hp;
  parse_init(h, &hp, response, p);
  http_parser_execute(&hp, &settings, p, n);
  if (HTTP_PARSER_ERRNO(&hp) != HPE_PAUSED)
    return fail(why, http_errno_description(HTTP_PARSER_ERRNO(&hp)), 400);
  h->method = hp.method;
  h->major = hp.http_major;
  h->minor = hp.http_minor;
  h->status = hp.status_code;
  h->length = (hp.flags & F_CONTENTLENGTH) ? (int64_t)hp.content_length : -1;
  /* not http_should_keep_alive: it knows no HEAD response */
  h->keep_alive = hp.http_minor == 1 ? !(hp.flags & F_CONNECTION_CLOSE)
                                     : (hp.flags & F_CONNECTION_KEEP_ALIVE) != 0;
  if (h->major != 1 || h->minor > 1)
    return fail(why, "unsupported HTTP version", response ? 400 : 505);
  if (check_fields(h, why)) return 400;
  if (!response && check_request(h, why)) return 400;
  return check_framing(h, why);
}

/* ---------- decoding a chunked body ---------- */

enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The line at p[0..n) (its LF at n - 1): a chunk-size with extensions. */
static int chunk_size(HttpChunked *c, const char *p, size_t n,
                      const char **why) {
  size_t i = 0;
  uint64_t v = 0;
  for (; i < n && hexval((unsigned char)p[i]) >= 0; i++) {
    if (v >> 60) return fail(why, "chunk size too large", -1);
    v = v * 16 + (uint64_t)hexval((unsigned char)p[i]);
  }
  if (i == 0) return fail(why, "bad chunk size", -1);
  while (p[i] == ' ' || p[i] == '\t') i++;
  if (p[i] != ';' && i != n - 2) return fail(why, "bad chunk size", -1);
  for (; i < n - 2; i++)
    if (p[i] == '\r' || p[i] == '\0') return fail(why, "bad chunk extension", -1);
  c->left = v;
  c->state = v ? CH_DATA : CH_TRAILER;
  return 0;
}

/* A trailer line (dropped); the empty one ends the body. */
static int trailer_line(HttpChunked *c, const char *p, size_t n,
                        const char **why) {
  c->trailer += (uint32_t)n;
  if (c->trailer > TRAILER_MAX) return fail(why, "trailer section too large", -1);
  if (memchr(p, '\0', n) || memchr(p, '\r', n - 2))
    return fail(why, "bad trailer field", -1);
  if (n == 2) c->state = CH_DONE;
  return 0;
}

/* One line of p[0..avail) for state, as its length; 0: not all there. */
static long chunk_line(HttpChunked *c, const char *p, size_t avail,
                       const char **why) {
  const char *lf = memchr(p, '\n', avail < CHUNK_LINE_MAX ? avail : CHUNK_LINE_MAX);
  size_t n;
  if (lf == NULL)
    return avail >= CHUNK_LINE_MAX ? fail(why, "chunk line too long", -1) : 0;
  n = (size_t)(lf - p) + 1;
  if (n < 2 || p[n - 2] != '\r') return fail(why, "bare LF in chunked body", -1);
  if ((c->state == CH_SIZE ? chunk_size(c, p, n, why)
                           : trailer_line(c, p, n, why)) < 0)
    return -1;
  return (long)n;
}

/* One step from p[raw..len): raw bytes used, 0 when more are needed. */
static long chunk_step(HttpChunked *c, char *p, size_t len, size_t *dec,
                       size_t raw, const char **why) {
  size_t avail = len - raw, n;
  switch (c->state) {
    case CH_DATA:
      n = avail < c->left ? avail : (size_t)c->left;
      memmove(p + *dec, p + raw, n);
      *dec += n;
      if ((c->left -= n) == 0) c->state = CH_DATA_END;
      return (long)n;
    case CH_DATA_END:
      if (avail < 2) return 0;
      if (p[raw] != '\r' || p[raw + 1] != '\n')
        return fail(why, "chunk data not followed by CRLF", -1);
      c->state = CH_SIZE;
      return 2;
    default:
      return chunk_line(c, p + raw, avail, why);
  }
}

int http_chunked_decode(HttpChunked *c, char *p, size_t *len, size_t *dec,
                        const char **why) {
  size_t raw = *dec;
  long n = 1;
  while (c->state != CH_DONE && raw < *len &&
         (n = chunk_step(c, p, *len, dec, raw, why)) > 0)
    raw += (size_t)n;
  if (n < 0) return -1;
  if (raw > *dec) {
    memmove(p + *dec, p + raw, *len - raw);
    *len -= raw - *dec;
  }
  return c->state == CH_DONE;
}

/* ---------- messages ---------- */

/* Body framings. */
enum { B_NONE, B_LENGTH, B_CHUNKED, B_CLOSE };

typedef struct Msg {
  HttpHead h;
  uint64_t left;                 /* B_LENGTH: body bytes still to read */
  lua_Integer got;               /* body bytes read so far */
  size_t dec;                    /* B_CHUNKED: decoded bytes at the front
                                    of the stream's input */
  HttpChunked ch;
  unsigned char framing, done;
  HttpField fields[];            /* then the head's bytes */
} Msg;

/* Message user values: the headers object (made on first use), the
** server's connection (next_request), the body (set by Lua) and the
** other fields Lua set. */
enum { MUV_HEADERS = 1, MUV_CONN, MUV_BODY, MUV_FIELDS, MSG_NUV = MUV_FIELDS };

/* The module's state, upvalue 2 of every function: the Date cache. Its
** user value: the method table of messages (set_methods). */
typedef struct HttpState {
  time_t date_at;
  char date[32];
} HttpState;

#define http_state(L) ((HttpState *)lua_touserdata(L, lua_upvalueindex(2)))

static Msg *checkmsg(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, MSG_MT);
}

static int raise_http(lua_State *L, int status, const char *why,
                      int incomplete) {
  errors_push_new(L, "HTTPError", why);
  if (status) {
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
  }
  if (incomplete) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "incomplete");
  }
  return lua_error(L);
}

/* The body's framing (RFC 9112 §6.3); method: the request's, for a
** response. */
static void set_framing(Msg *m, int method) {
  HttpHead *h = &m->h;
  int nobody = h->response && (method == HTTP_HEAD || h->status < 200 ||
                               h->status == 204 || h->status == 304);
  if (nobody) m->framing = B_NONE;
  else if (h->chunked) m->framing = B_CHUNKED;
  else if (h->length >= 0) m->framing = h->length ? B_LENGTH : B_NONE;
  else if (h->response) m->framing = B_CLOSE;
  else m->framing = B_NONE;
  m->left = h->length > 0 ? (uint64_t)h->length : 0;
  m->done = m->framing == B_NONE;
  if (m->framing == B_CLOSE) h->keep_alive = 0;
}

/* Why a head is refused: the status of the error response (400, 431,
** 501, 505), the reason, and whether the input ended in it (cut: a
** server ends such a connection without a response). */
typedef struct Bad {
  int status, cut;
  const char *why;
} Bad;

enum { HEAD_MORE = -1, HEAD_BAD = -2 };

static long bad(Bad *b, int status, const char *why, int cut) {
  b->status = status;
  b->why = why;
  b->cut = cut;
  return HEAD_BAD;
}

/* Raise what b says: an HTTPError, with its status for a request. */
static int raise_bad(lua_State *L, const Bad *b, int response) {
  return raise_http(L, response ? 0 : b->status, b->why, b->cut);
}

/* Push a Message for the first n bytes of input (a head), which are
** dropped; NULL, with nothing pushed, when it is malformed. method: the
** request's, for a response. */
static Msg *push_message(lua_State *L, Stream *s, size_t n, int response,
                         int method, Bad *b) {
  uint32_t max = (uint32_t)(n / 2);
  HttpField small[FIELDS_SMALL], *fields = small;
  HttpHead h;
  Msg *m;
  size_t len;
  const char *p = stream_input(s, &len);
  int st;
  if (max > FIELDS_SMALL)  /* a big head: room on the Lua heap, collected */
    fields = lua_newuserdatauv(L, max * sizeof(HttpField), 0);
  h.fields = fields;
  h.maxfields = max;
  st = http_head_parse(&h, response, p, n, &b->why);
  if (st != 0) {
    if (max > FIELDS_SMALL) lua_pop(L, 1);
    stream_consume(s, n);
    bad(b, st, b->why, 0);
    return NULL;
  }
  /* kept with exactly its fields: a handler may hold req for long */
  m = lua_newuserdatauv(L, sizeof(Msg) + h.nfields * sizeof(HttpField) + n, MSG_NUV);
  memset(m, 0, sizeof *m);
  m->h = h;
  memcpy(m->fields, fields, h.nfields * sizeof(HttpField));
  m->h.fields = m->fields;
  m->h.maxfields = h.nfields;
  m->h.p = (char *)(m->fields + h.nfields);
  memcpy((char *)m->h.p, p, n);
  if (max > FIELDS_SMALL) lua_remove(L, -2);
  stream_consume(s, n);
  luaL_setmetatable(L, MSG_MT);
  set_framing(m, method);
  return m;
}

/* Leading empty lines before a head are skipped (RFC 9112 §2.2). */
static char *skip_empty_lines(Stream *s, size_t *len) {
  char *p = stream_input(s, len);
  while (*len >= 2 && p[0] == '\r' && p[1] == '\n') {
    stream_consume(s, 2);
    p = stream_input(s, len);
  }
  return p;
}

/* Look for a whole head of at most max bytes in s's input (*ctx: where
** the search goes on): its length; 0 when the input ends before a byte of
** it; HEAD_MORE when more input is needed; HEAD_BAD, with *b. */
static long head_find(Stream *s, size_t max, lua_KContext *ctx, Bad *b) {
  size_t len, off = (size_t)*ctx;
  const char *why, *p = off ? stream_input(s, &len) : skip_empty_lines(s, &len);
  long n = http_head_end(p, len, &off, &why);
  if (n < 0) return bad(b, 400, why, 0);
  if ((size_t)n > max || (n == 0 && len > max))
    return bad(b, 431, "head too large", 0);
  *ctx = (lua_KContext)off;
  if (n > 0) return n;
  if (!stream_ended(s)) return HEAD_MORE;
  return len > 0 ? bad(b, 400, "input ends in a head", 1) : 0;
}

/* A request's head (the stream at 1, max at 2): 1 with the Message
** pushed, 0 at the end of input, HEAD_MORE or HEAD_BAD (*b). */
static long request_step(lua_State *L, Stream *s, lua_KContext *ctx, Bad *b) {
  long n = head_find(s, (size_t)lua_tointeger(L, 2), ctx, b);
  if (n <= 0) return n;
  return push_message(L, s, (size_t)n, 0, 0, b) ? 1 : HEAD_BAD;
}

/* Park until more input than now is buffered, or the deadline. */
static int wait_more(lua_State *L, double deadline, lua_KContext ctx,
                     lua_KFunction k, const char *what) {
  Stream *s = lua_touserdata(L, 1);
  size_t len;
  stream_input(s, &len);
  return stream_wait_input(L, s, len + 1, deadline, ctx, k, what);
}

/* read_request: stream, max; the resume's values at 3. */
static int read_request_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  Bad b;
  long r;
  if (status == LUA_YIELD) stream_input_resumed(L, s, 3);
  stream_raise_failure(L, s);
  if ((r = request_step(L, s, &ctx, &b)) == HEAD_MORE)
    return wait_more(L, 0, ctx, read_request_k, "read_request");
  if (r == HEAD_BAD) raise_bad(L, &b, 0);
  if (r == 0) lua_pushnil(L);
  return 1;
}

static size_t checkmax(lua_State *L, int idx) {
  lua_Integer n = luaL_checkinteger(L, idx);
  luaL_argcheck(L, n > 0, idx, "max_headers_size must be positive");
  return (size_t)n;
}

/* read_request(stream, max_headers_size) → Message, or nil at EOF. */
static int l_read_request(lua_State *L) {
  stream_check(L, 1);
  checkmax(L, 2);
  lua_settop(L, 2);
  return read_request_k(L, LUA_OK, 0);
}

static int refusal(lua_State *L, int status) {
  lua_pushboolean(L, 0);
  lua_pushinteger(L, status);
  return 2;
}

/* Whether the deadline (0: none) of a read resumed with status passed:
** its wait timed out, or (a persistent event's timeout restarts with each
** input it fires for) the time has come meanwhile. */
static int passed(int timedout, int status, double deadline, double now) {
  return timedout || (status == LUA_YIELD && deadline > 0 && now >= deadline);
}

/* The connection is to park (server.c) until the deadline. */
static int park(lua_State *L, double deadline) {
  lua_pushboolean(L, 1);
  lua_pushnumber(L, deadline);
  return 2;
}

/* next_request: stream, max, deadline, conn, linger; the resume's values
** at 6. */
static int next_request_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  double deadline = lua_tonumber(L, 3), linger = lua_tonumber(L, 5), now;
  int timedout = 0;
  size_t len;
  Bad b;
  long r;
  if (status == LUA_YIELD) timedout = stream_input_resumed(L, s, 6);
  if (stream_failed(s)) return 0;
  if ((r = request_step(L, s, &ctx, &b)) == HEAD_BAD)
    return b.cut ? 0 : refusal(L, b.status);
  if (r == 1) {
    lua_pushvalue(L, 4);
    lua_setiuservalue(L, -2, MUV_CONN);
  }
  if (r >= 0) return (int)r;
  stream_input(s, &len);
  now = lasync_now();
  if (passed(timedout, status, deadline, now)) {
    if (len > 0) return refusal(L, 408);
    return now < deadline ? park(L, deadline) : 0;  /* lingered: park */
  }
  if (len == 0 && linger > 0 && now + linger < deadline)
    return wait_more(L, now + linger, ctx, next_request_k, "next_request");
  return wait_more(L, deadline, ctx, next_request_k, "next_request");
}

/* next_request(stream, max_headers_size, timeout, conn, linger) → the
** server's next request, a Message whose req.conn is conn; nil once the
** connection is to end quietly (EOF, a failure, idle past the timeout, a
** head cut short); false and the status of the error response due (408
** for a head not whole within the timeout, 400, 431, 501, 505); or, when
** nothing came for linger seconds (nil: no linger), true and the
** deadline: the connection is to park until then. */
static int l_next_request(lua_State *L) {
  double timeout, linger;
  stream_check(L, 1);
  checkmax(L, 2);
  timeout = luaL_checknumber(L, 3);
  luaL_argcheck(L, timeout > 0, 3, "timeout must be positive");
  luaL_checktype(L, 4, LUA_TTABLE);
  linger = luaL_optnumber(L, 5, 0);
  lua_settop(L, 4);
  lua_pushnumber(L, linger);
  lua_pushnumber(L, lasync_now() + timeout);
  lua_replace(L, 3);
  return next_request_k(L, LUA_OK, 0);
}

/* read_response: stream, max, method; the resume's values at 4. 1xx
** interim responses but 101 are skipped. */
static int read_response_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  long n;
  Msg *m;
  Bad b;
  if (status == LUA_YIELD) stream_input_resumed(L, s, 4);
  stream_raise_failure(L, s);
  for (;;) {
    n = head_find(s, (size_t)lua_tointeger(L, 2), &ctx, &b);
    if (n == HEAD_MORE)
      return wait_more(L, 0, ctx, read_response_k, "read_response");
    if (n == HEAD_BAD) return raise_bad(L, &b, 1);
    if (n == 0) {
      lua_pushnil(L);
      return 1;
    }
    m = push_message(L, s, (size_t)n, 1, (int)lua_tointeger(L, 3), &b);
    if (m == NULL) return raise_bad(L, &b, 1);
    if (m->h.status >= 200 || m->h.status == 101) return 1;
    lua_pop(L, 1);
    ctx = 0;
  }
}

static int method_code(const char *name) {
  int i;
  for (i = 0; i < 64 && strcmp(http_method_str((enum http_method)i), "<unknown>"); i++)
    if (strcmp(http_method_str((enum http_method)i), name) == 0) return i;
  return -1;
}

/* read_response(stream, max_headers_size, method) → Message, or nil. */
static int l_read_response(lua_State *L) {
  stream_check(L, 1);
  checkmax(L, 2);
  lua_pushinteger(L, method_code(luaL_checkstring(L, 3)));
  lua_replace(L, 3);
  lua_settop(L, 3);
  return read_response_k(L, LUA_OK, 0);
}

/* ---------- reading a body ---------- */

/* read_body's stack: stream, msg, max, n (0: the whole body), deadline
** (0: none); the resume's values at 6. */
#define BODY_THROWN 6

/* Push the first n bytes of input as body and drop them. */
static int body_take(lua_State *L, Stream *s, Msg *m, size_t n) {
  size_t len;
  lua_pushlstring(L, stream_input(s, &len), n);
  stream_consume(s, n);
  m->got += (lua_Integer)n;
  return 1;
}

static int body_end(lua_State *L, Msg *m) {
  m->done = 1;
  lua_pushliteral(L, "");
  return 1;
}

static void check_size(lua_State *L, Msg *m, uint64_t more) {
  if (more > (uint64_t)(lua_tointeger(L, 3) - m->got))
    raise_http(L, 413, "body too large", 0);
}

static int incomplete(lua_State *L) {
  return raise_http(L, 400, "input ends in a body", 1);
}

/* A Content-Length body: 1 when pushed, 0 to wait. */
static int length_step(lua_State *L, Stream *s, Msg *m, size_t n) {
  size_t len, take;
  stream_input(s, &len);
  if (m->left == 0) return body_end(L, m);
  if (n == 0 && len < m->left) return stream_ended(s) ? incomplete(L) : 0;
  if (len == 0) return stream_ended(s) ? incomplete(L) : 0;
  take = n == 0 || n > m->left ? (size_t)m->left : n;
  if (take > len) take = len;
  m->left -= take;
  if (m->left == 0) m->done = 1;
  return body_take(L, s, m, take);
}

static int chunked_step(lua_State *L, Stream *s, Msg *m, size_t n) {
  size_t len, dec = m->dec;
  const char *why;
  char *p = stream_input(s, &len);
  int r = len > dec ? http_chunked_decode(&m->ch, p, &len, &dec, &why)
                    : m->ch.state == CH_DONE;
  if (r < 0) return raise_http(L, 400, why, 0);
  stream_cut(s, len);
  check_size(L, m, dec);
  m->dec = dec;
  if (n == 0 ? r == 0 : dec == 0 && r == 0)
    return stream_ended(s) ? incomplete(L) : 0;
  if (n == 0 || n > dec) n = dec;
  m->dec -= n;
  if (r && m->dec == 0) m->done = 1;
  return body_take(L, s, m, n);
}

/* A body delimited by the end of input (a response's). */
static int close_step(lua_State *L, Stream *s, Msg *m, size_t n) {
  size_t len;
  stream_input(s, &len);
  check_size(L, m, len);
  if (stream_ended(s) && len == 0) return body_end(L, m);
  if (n == 0 ? !stream_ended(s) : len == 0) return 0;
  if (n == 0 || n > len) n = len;
  return body_take(L, s, m, n);
}

static int read_body_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  Msg *m = lua_touserdata(L, 2);
  size_t n = (size_t)lua_tointeger(L, 4);
  double deadline = lua_tonumber(L, 5);
  int done, timedout = 0;
  (void)ctx;
  if (status == LUA_YIELD) timedout = stream_input_resumed(L, s, BODY_THROWN);
  stream_raise_failure(L, s);
  if (m->done) return body_end(L, m);
  switch (m->framing) {
    case B_LENGTH: done = length_step(L, s, m, n); break;
    case B_CHUNKED: done = chunked_step(L, s, m, n); break;
    default: done = close_step(L, s, m, n); break;
  }
  if (done) return 1;
  if (passed(timedout, status, deadline, lasync_now())) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return wait_more(L, deadline, 0, read_body_k, "read_body");
}

/* read_body(stream, msg, max, n, timeout) → the body, or up to n bytes
** of it; false when timeout (nil: none) passes first. */
static int l_read_body(lua_State *L) {
  Msg *m;
  lua_Integer n;
  double timeout;
  stream_check(L, 1);
  m = checkmsg(L, 2);
  if (lua_isnoneornil(L, 3)) lua_pushinteger(L, LUA_MAXINTEGER);
  else lua_pushinteger(L, luaL_checkinteger(L, 3));
  lua_replace(L, 3);
  n = luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, lua_isnoneornil(L, 4) || n > 0, 4, "size must be positive");
  timeout = luaL_optnumber(L, 5, 0);
  luaL_argcheck(L, lua_isnoneornil(L, 5) || timeout > 0, 5, "timeout must be positive");
  lua_settop(L, 3);
  lua_pushinteger(L, n);
  lua_pushnumber(L, timeout > 0 ? lasync_now() + timeout : 0);
  if (!m->done && m->framing == B_LENGTH && n == 0) check_size(L, m, m->left);
  return read_body_k(L, LUA_OK, 0);
}

/* ---------- headers ---------- */

typedef struct Headers { Msg *m; } Headers;

static Msg *checkheaders(lua_State *L, int idx) {
  return ((Headers *)luaL_checkudata(L, idx, HEADERS_MT))->m;
}

static int same_name(const Msg *m, uint32_t i, const char *name, size_t n) {
  return m->fields[i].nlen == n &&
         strncasecmp(m->h.p + m->fields[i].name, name, n) == 0;
}

static void push_value(lua_State *L, const Msg *m, uint32_t i) {
  lua_pushlstring(L, m->h.p + m->fields[i].value, m->fields[i].vlen);
}

/* The value of the fields named name, joined with ", ", from field i on
** (the first of them); one alone is pushed as it is. */
static void push_joined(lua_State *L, const Msg *m, uint32_t i,
                        const char *name, size_t n) {
  luaL_Buffer b;
  uint32_t j, more = 0;
  for (j = i + 1; j < m->h.nfields && !more; j++) more = same_name(m, j, name, n);
  if (!more) {
    push_value(L, m, i);
    return;
  }
  luaL_buffinit(L, &b);
  for (j = i; j < m->h.nfields; j++) {
    if (!same_name(m, j, name, n)) continue;
    if (j > i) luaL_addlstring(&b, ", ", 2);
    luaL_addlstring(&b, m->h.p + m->fields[j].value, m->fields[j].vlen);
  }
  luaL_pushresult(&b);
}

/* Push the header named by the string at idx, or nil. */
static int push_header(lua_State *L, const Msg *m, int idx) {
  size_t n;
  const char *name = luaL_checklstring(L, idx, &n);
  uint32_t i;
  for (i = 0; i < m->h.nfields; i++)
    if (same_name(m, i, name, n)) {
      push_joined(L, m, i, name, n);
      return 1;
    }
  lua_pushnil(L);
  return 1;
}

static int headers_get(lua_State *L) {
  return push_header(L, checkheaders(L, 1), 2);
}

static int headers_get_all(lua_State *L) {
  Msg *m = checkheaders(L, 1);
  size_t n;
  const char *name = luaL_checklstring(L, 2, &n);
  uint32_t i;
  lua_Integer k = 0;
  lua_newtable(L);
  for (i = 0; i < m->h.nfields; i++)
    if (same_name(m, i, name, n)) {
      push_value(L, m, i);
      lua_rawseti(L, -2, ++k);
    }
  return 1;
}

static const luaL_Reg headers_methods[] = {
  {"get", headers_get}, {"get_all", headers_get_all}, {NULL, NULL}
};

/* h[name]: a method, or a header. */
static int headers_index(lua_State *L) {
  Msg *m = checkheaders(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL) return 1;
  return push_header(L, m, 2);
}

/* The iterator of pairs(h): upvalue 3 is the next field to look at. */
static int headers_next(lua_State *L) {
  Msg *m = checkheaders(L, 1);
  uint32_t i = (uint32_t)lua_tointeger(L, lua_upvalueindex(3)), j;
  for (; i < m->h.nfields; i++) {
    const char *name = m->h.p + m->fields[i].name;
    size_t n = m->fields[i].nlen, k;
    luaL_Buffer b;
    for (j = 0; j < i && !same_name(m, j, name, n); j++) {}
    if (j < i) continue;  /* named before */
    lua_pushinteger(L, i + 1);
    lua_replace(L, lua_upvalueindex(3));
    for (k = 0, luaL_buffinit(L, &b); k < n; k++)
      luaL_addchar(&b, (char)(name[k] | (name[k] >= 'A' && name[k] <= 'Z' ? 0x20 : 0)));
    luaL_pushresult(&b);
    push_joined(L, m, i, name, n);
    return 2;
  }
  return 0;
}

static int headers_pairs(lua_State *L) {
  checkheaders(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, headers_next, 3);
  lua_pushvalue(L, 1);
  return 2;
}

/* The message's Headers object, made on first use. */
static void push_headers(lua_State *L, Msg *m, int midx) {
  Headers *h;
  if (lua_getiuservalue(L, midx, MUV_HEADERS) != LUA_TNIL) return;
  lua_pop(L, 1);
  h = lua_newuserdatauv(L, sizeof *h, 1);
  h->m = m;
  luaL_setmetatable(L, HEADERS_MT);
  lua_pushvalue(L, midx);
  lua_setiuservalue(L, -2, 1);  /* keeps the message and its head */
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, midx, MUV_HEADERS);
}

/* ---------- message fields ---------- */

static const char *versions[] = {"1.0", "1.1"};

static int field_value(lua_State *L, Msg *m, uint32_t i) {
  push_value(L, m, i);
  return 1;
}

/* The upgrade field: the Upgrade header, or nil. */
static int push_upgrade(lua_State *L, Msg *m) {
  uint32_t i;
  return count_fields(&m->h, "upgrade", &i) > 0 ? field_value(L, m, i)
                                                 : (lua_pushnil(L), 1);
}

/* The request target's path (before "?") or query (after it). */
static int push_target(lua_State *L, Msg *m, int query) {
  const char *t = m->h.p + m->h.target, *q = memchr(t, '?', m->h.tlen);
  size_t plen = q ? (size_t)(q - t) : m->h.tlen;
  if (query) lua_pushlstring(L, q ? q + 1 : "", q ? m->h.tlen - plen - 1 : 0);
  else lua_pushlstring(L, t, plen);
  return 1;
}

/* req.peer: the connection's, made on first use and kept there. */
static int push_peer(lua_State *L) {
  if (lua_getiuservalue(L, 1, MUV_CONN) != LUA_TTABLE) return 0;
  if (lua_getfield(L, -1, "peer") != LUA_TNIL) return 1;
  lua_pop(L, 1);
  lua_getfield(L, -1, "stream");
  stream_push_peer(L, stream_check(L, -1));
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "peer");
  return 1;
}

/* req.body: as Lua set it; "" for a request without one. */
static int push_body(lua_State *L, Msg *m) {
  if (lua_getiuservalue(L, 1, MUV_BODY) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  if (m->h.response || m->framing != B_NONE) return 0;
  lua_pushliteral(L, "");
  return 1;
}

static int push_length(lua_State *L, const HttpHead *h) {
  if (h->length >= 0) lua_pushinteger(L, (lua_Integer)h->length);
  else lua_pushnil(L);
  return 1;
}

#define is(k, name) (strcmp(k, name) == 0)

/* The fields of a response's head; 0 when key is none of them. */
static int push_response_field(lua_State *L, Msg *m, const char *k) {
  HttpHead *h = &m->h;
  if (is(k, "status")) lua_pushinteger(L, h->status);
  else if (is(k, "reason")) lua_pushlstring(L, h->p + h->target, h->tlen);
  else if (is(k, "until_close")) lua_pushboolean(L, m->framing == B_CLOSE);
  else return 0;
  return 1;
}

/* The fields of a request: its head's and the server's; 0 when key is
** none of them. */
static int push_request_field(lua_State *L, Msg *m, const char *k) {
  HttpHead *h = &m->h;
  switch (k[0]) {  /* the handler asks for some on every request */
    case 'm': if (!is(k, "method")) return 0;
      lua_pushstring(L, http_method_str((enum http_method)h->method));
      return 1;
    case 'p': return is(k, "path") ? push_target(L, m, 0)
                                   : is(k, "peer") ? push_peer(L) : 0;
    case 'q': return is(k, "query") ? push_target(L, m, 1) : 0;
    case 'e': if (!is(k, "expect_continue")) return 0;
      lua_pushboolean(L, h->expect_continue);
      return 1;
    case 'c': if (!is(k, "conn")) return 0;
      lua_getiuservalue(L, 1, MUV_CONN);
      return 1;
    default: return 0;
  }
}

/* The fields of a message; 0 when key is none of them. */
static int push_known(lua_State *L, Msg *m, const char *k) {
  HttpHead *h = &m->h;
  switch (k[0]) {
    case 'h': return is(k, "headers") ? (push_headers(L, m, 1), 1) : 0;
    case 'v': return is(k, "version") ? (lua_pushstring(L, versions[h->minor]), 1) : 0;
    case 'k': return is(k, "keep_alive") ? (lua_pushboolean(L, h->keep_alive), 1) : 0;
    case 'b': return is(k, "body") ? push_body(L, m)
                                   : is(k, "body_length") ? push_length(L, h) : 0;
    case 'c': if (is(k, "chunked")) return lua_pushboolean(L, h->chunked), 1;
      break;
    case 'u': if (is(k, "upgrade")) return push_upgrade(L, m);
      break;
    default: break;
  }
  return h->response ? push_response_field(L, m, k) : push_request_field(L, m, k);
}

/* msg[k]: a field of the head, else one set from Lua, else a method. */
static int msg_index(lua_State *L) {
  Msg *m = checkmsg(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING && push_known(L, m, lua_tostring(L, 2)))
    return 1;
  if (lua_getiuservalue(L, 1, MUV_FIELDS) == LUA_TTABLE) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
  }
  lua_settop(L, 2);
  if (lua_getiuservalue(L, lua_upvalueindex(2), 1) != LUA_TTABLE) return 0;
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int msg_newindex(lua_State *L) {
  checkmsg(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING && is(lua_tostring(L, 2), "body")) {
    lua_settop(L, 3);
    lua_setiuservalue(L, 1, MUV_BODY);  /* a request's every time: no table */
    return 0;
  }
  if (lua_getiuservalue(L, 1, MUV_FIELDS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, MUV_FIELDS);
  }
  lua_insert(L, 2);
  lua_rawset(L, 2);
  return 0;
}

/* set_methods(tbl): where messages look up what they do not hold. */
static int l_set_methods(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_setiuservalue(L, lua_upvalueindex(2), 1);
  return 0;
}

/* ---------- serialisation ---------- */

/* http_parser's table of reason phrases; an unknown status gets none, as
** Python's http.server gives it. */
static const char *reason_of(int status) {
  const char *r = http_status_str((enum http_status)status);
  return strcmp(r, "<unknown>") == 0 ? "" : r;
}

/* The Date header's value (IMF-fixdate), made once a second. */
static const char *date_now(HttpState *st) {
  static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  struct tm tm;
  if (now == st->date_at) return st->date;
  gmtime_r(&now, &tm);
  snprintf(st->date, sizeof st->date, "%s, %02d %s %d %02d:%02d:%02d GMT",
           days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
           tm.tm_hour, tm.tm_min, tm.tm_sec);
  st->date_at = now;
  return st->date;
}

static void put(Stream *s, const char *p) { stream_buffer(s, p, strlen(p)); }

/* What a headers table says of the framing and the connection. */
typedef struct Given { int length, date, close; } Given;

/* A header name (a token) or value (no CR, LF or NUL): what a peer
** would refuse, or read as another header, is never written. */
static void check_text(lua_State *L, int idx, const char *name, int isname) {
  size_t n;
  const char *p = lua_tolstring(L, idx, &n);
  if (isname && !is_token(p, n))
    luaL_error(L, "header name '%s' is not a token (RFC 9110 §5.6.2)", name);
  if (strcspn(p, "\r\n") < n || strlen(p) < n)
    luaL_error(L, "header '%s': CR, LF or NUL in its value", name);
}

static void check_value(lua_State *L, int idx, const char *name, Given *g) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "header '%s': string or list of strings expected, got %s",
               name, luaL_typename(L, idx));
  check_text(L, idx, name, 0);
  if (ieq(name, strlen(name), "connection") &&
      strcasestr(lua_tostring(L, idx), "close"))
    g->close = 1;
}

/* Check the headers table at idx before a byte is written. */
static void headers_check(lua_State *L, int idx, Given *g) {
  memset(g, 0, sizeof *g);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    const char *name;
    lua_Integer i;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "header names must be strings, got %s", luaL_typename(L, -2));
    check_text(L, -2, name = lua_tostring(L, -2), 1);
    g->length |= ieq(name, strlen(name), "content-length");
    g->date |= ieq(name, strlen(name), "date");
    if (lua_type(L, -1) != LUA_TTABLE) check_value(L, -1, name, g);
    else for (i = 1; lua_geti(L, -1, i) != LUA_TNIL; i++, lua_pop(L, 1))
      check_value(L, -1, name, g);
    if (lua_type(L, -1) == LUA_TNIL) lua_pop(L, 1);
  }
}

static void put_field(Stream *s, const char *name, const char *value) {
  put(s, name);
  stream_buffer(s, ": ", 2);
  put(s, value);
  stream_buffer(s, "\r\n", 2);
}

/* The headers table at idx, checked before; and Date unless given. */
static void headers_put(lua_State *L, Stream *s, int idx, const Given *g) {
  if (!g->date)
    put_field(s, "Date", date_now(http_state(L)));
  if (lua_isnoneornil(L, idx)) return;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    const char *name = lua_tostring(L, -2);
    lua_Integer i;
    if (lua_type(L, -1) == LUA_TSTRING) put_field(s, name, lua_tostring(L, -1));
    else for (i = 1; lua_geti(L, -1, i) != LUA_TNIL; i++, lua_pop(L, 1))
      put_field(s, name, lua_tostring(L, -1));
    if (lua_type(L, -1) == LUA_TNIL) lua_pop(L, 1);
  }
}

static void put_length(Stream *s, size_t n) {
  char num[24];
  snprintf(num, sizeof num, "%zu", n);
  put_field(s, "Content-Length", num);
}

static int checkstatus(lua_State *L, int idx) {
  lua_Integer st = luaL_checkinteger(L, idx);
  luaL_argcheck(L, st >= 100 && st <= 999, idx, "status must be 100..999");
  return (int)st;
}

/* A response's head up to its empty line; the request is at 2 (nil: a
** response to no request, which closes the connection); length: the body's
** length to announce, or -1 for a streamed body; *chunked: whether it is.
** Returns whether the connection stays open. */
static int response_head(lua_State *L, Stream *s, int status, long long length,
                         int *chunked) {
  Msg *req = lua_isnoneornil(L, 2) ? NULL : checkmsg(L, 2);
  int head = req && req->h.method == HTTP_HEAD, keep;
  int bodyless = status < 200 || status == 204 || status == 304;
  char line[64];
  Given g;
  headers_check(L, 4, &g);
  stream_check_writable(L, s);
  keep = req && req->h.keep_alive && !g.close;
  *chunked = length < 0 && !g.length && !bodyless && !head && req &&
             req->h.minor == 1;
  if (length < 0 && !g.length && !bodyless && !head && !*chunked) keep = 0;
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason_of(status));
  put(s, line);
  headers_put(L, s, 4, &g);
  if (length >= 0 && !g.length && !bodyless) put_length(s, (size_t)length);
  if (*chunked) put_field(s, "Transfer-Encoding", "chunked");
  if (!keep && !g.close) put_field(s, "Connection", "close");
  else if (keep && req->h.minor == 0) put_field(s, "Connection", "keep-alive");
  stream_buffer(s, "\r\n", 2);
  return keep;
}

/* Send what is buffered now, unless a pipelined request waits in the
** input: then its response goes with this one, at the loop's next poll
** (one send for a batch, as nginx does). */
static void send_response(Stream *s) {
  size_t len;
  stream_input(s, &len);
  if (len > 0) stream_flush_soon(s);
  else stream_flush(s);
}

/* write_response(stream, req, status, headers, body) → keep_alive, the
** bytes of body sent (none for HEAD, 1xx, 204, 304). */
static int l_write_response(lua_State *L) {
  Stream *s = stream_check(L, 1);
  int status = checkstatus(L, 3), chunked, keep;
  size_t n = 0;
  const char *body = luaL_optlstring(L, 5, "", &n);
  Msg *req;
  keep = response_head(L, s, status, (long long)n, &chunked);
  req = lua_isnil(L, 2) ? NULL : lua_touserdata(L, 2);
  if ((req && req->h.method == HTTP_HEAD) || status < 200 || status == 204 ||
      status == 304)
    n = 0;
  stream_buffer(s, body, n);
  send_response(s);
  lua_pushboolean(L, keep);
  lua_pushinteger(L, (lua_Integer)n);
  return 2;
}

/* write_head(stream, req, status, headers) → chunked, keep_alive. */
static int l_write_head(lua_State *L) {
  Stream *s = stream_check(L, 1);
  int status = checkstatus(L, 3), chunked, keep;
  lua_settop(L, 4);
  keep = response_head(L, s, status, -1, &chunked);
  stream_flush(s);
  lua_pushboolean(L, chunked);
  lua_pushboolean(L, keep);
  return 2;
}

/* write_chunk(stream, data): one chunk; nil: the last one. */
static int l_write_chunk(lua_State *L) {
  Stream *s = stream_check(L, 1);
  size_t n;
  const char *p = luaL_optlstring(L, 2, NULL, &n);
  char size[24];
  stream_check_writable(L, s);
  if (p == NULL) put(s, "0\r\n\r\n");
  else if (n == 0) return 0;
  else {
    snprintf(size, sizeof size, "%zx\r\n", n);
    put(s, size);
    stream_buffer(s, p, n);
    stream_buffer(s, "\r\n", 2);
  }
  stream_flush(s);
  return 0;
}

/* write_request(stream, method, target, headers, body). */
static int l_write_request(lua_State *L) {
  Stream *s = stream_check(L, 1);
  size_t mn, tn, n = 0;
  const char *method = luaL_checklstring(L, 2, &mn);
  const char *target = luaL_checklstring(L, 3, &tn);
  const char *body = luaL_optlstring(L, 5, NULL, &n);
  Given g;
  luaL_argcheck(L, mn > 0 && strcspn(method, " \r\n") == mn && strlen(method) == mn,
                2, "bad method");
  luaL_argcheck(L, tn > 0 && strcspn(target, " \r\n") == tn && strlen(target) == tn,
                3, "bad target");
  headers_check(L, 4, &g);
  stream_check_writable(L, s);
  put(s, method);
  stream_buffer(s, " ", 1);
  put(s, target);
  stream_buffer(s, " HTTP/1.1\r\n", 11);
  g.date = 1;  /* a request has none of its own */
  headers_put(L, s, 4, &g);
  if (body && !g.length) put_length(s, n);
  stream_buffer(s, "\r\n", 2);
  if (body) stream_buffer(s, body, n);
  stream_flush(s);
  return 0;
}

/* continue(stream): the interim answer to Expect: 100-continue. */
static int l_continue(lua_State *L) {
  Stream *s = stream_check(L, 1);
  stream_check_writable(L, s);
  put(s, "HTTP/1.1 100 Continue\r\n\r\n");
  stream_flush(s);
  return 0;
}

/* ---------- registration ---------- */

static const luaL_Reg http_funcs[] = {
  {"read_request", l_read_request}, {"next_request", l_next_request},
  {"read_response", l_read_response},
  {"read_body", l_read_body}, {"write_response", l_write_response},
  {"write_head", l_write_head}, {"write_chunk", l_write_chunk},
  {"write_request", l_write_request}, {"continue", l_continue},
  {"set_methods", l_set_methods}, {NULL, NULL}
};

static const luaL_Reg msg_meta[] = {
  {"__index", msg_index}, {"__newindex", msg_newindex}, {NULL, NULL}
};

static const luaL_Reg headers_meta[] = {
  {"__index", headers_index}, {"__pairs", headers_pairs}, {NULL, NULL}
};

/* Make metatable mt with functions l, their upvalues the Mod, HttpState
** and headers' methods at -3, -2, -1. */
static void meta(lua_State *L, const char *mt, const luaL_Reg *l) {
  luaL_newmetatable(L, mt);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, l, 3);
  lua_pushliteral(L, "");  /* hidden from getmetatable */
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

/* core._http; stack: Mod, core table. Every function has the upvalues
** Mod, HttpState and the headers' methods. */
void http_register(lua_State *L) {
  HttpState *st;
  lua_pushvalue(L, -2);
  st = lua_newuserdatauv(L, sizeof *st, 1);
  memset(st, 0, sizeof *st);
  lua_newtable(L);                       /* the headers' methods */
  lua_pushvalue(L, -1);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, headers_methods, 2);
  lua_pop(L, 1);
  meta(L, MSG_MT, msg_meta);
  meta(L, HEADERS_MT, headers_meta);
  lua_newtable(L);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, http_funcs, 3);
  lua_setfield(L, -5, "_http");
  lua_pop(L, 3);
}
