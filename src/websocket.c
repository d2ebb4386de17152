/*
** WebSocket (RFC 6455) over streams: core._ws, the layer lasync.websocket
** is built on. Frames are parsed in place, in the stream's input buffer:
** a message made of fragments is unmasked and moved down to the front of
** the buffer as each fragment completes, so a message waiting for its end
** takes no more memory than its bytes, and one in a single frame (the
** usual case) is pushed to Lua straight from where it arrived. A control
** frame between fragments is cut out of the buffer once handled.
**
** ws_next is the parser on a plain byte buffer (fuzz/websocket.c calls it
** so); receive drives it over a stream, answers pings itself and waits
** for input. Frames are written straight into the stream's output buffer.
*/
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "lasync.h"

#define PARSER_MT "lasync.WebSocketParser"
#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CONTROL_MAX 125

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9,
       OP_PONG = 10 };

/* ---------- UTF-8 ---------- */

/* Whether p[0..n) is UTF-8 as RFC 3629 has it: no overlong forms, no
** surrogates, nothing past U+10FFFF. ASCII goes 8 bytes at a time. */
int ws_utf8_valid(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i], need, min, cp;
    if (c < 0x80) {
      uint64_t w;
      if (i + 8 <= n && (memcpy(&w, p + i, 8), (w & 0x8080808080808080ULL) == 0))
        i += 8;
      else i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) { need = 1; min = 0x80; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; min = 0x800; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; min = 0x10000; cp = c & 0x07; }
    else return 0;
    if (n - i <= need) return 0;
    for (size_t k = 1; k <= need; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += need + 1;
  }
  return 1;
}

/* ---------- parsing frames ---------- */

static int violation(WsEvent *e, int code, const char *why) {
  e->kind = WS_ERROR;
  e->code = code;
  e->why = why;
  return WS_ERROR;
}

/* Unmask n bytes from src into dst (dst <= src: moving down is safe one
** byte after another; the 8-byte steps only run when they do not
** overlap). */
static void unmask(unsigned char *dst, const unsigned char *src, size_t n,
                   const unsigned char key[4]) {
  size_t i = 0;
  if (dst == src || dst + 8 <= src) {
    uint64_t k8;
    unsigned char k[8];
    for (int j = 0; j < 8; j++) k[j] = key[j & 3];
    memcpy(&k8, k, 8);
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      memcpy(&w, src + i, 8);
      w ^= k8;
      memcpy(dst + i, &w, 8);
    }
  }
  for (; i < n; i++) dst[i] = src[i] ^ key[i & 3];
}

/* A frame's head at p[0..avail): its length (0: more bytes needed), with
** the opcode, fin, payload length and mask key; -1 on a violation. */
typedef struct Frame {
  int opcode, fin, masked;
  uint64_t len;
  unsigned char key[4];
} Frame;

static int frame_head(const unsigned char *p, size_t avail, Frame *f,
                      WsEvent *e) {
  size_t hl = 2;
  if (avail < 2) return 0;
  if (p[0] & 0x70) return violation(e, 1002, "reserved bits set"), -1;
  f->fin = p[0] >> 7;
  f->opcode = p[0] & 0x0F;
  f->masked = p[1] >> 7;
  f->len = p[1] & 0x7F;
  if (f->len == 126) hl = 4;
  else if (f->len == 127) hl = 10;
  if (f->masked) hl += 4;
  if (avail < hl) return 0;
  if (f->len == 126) f->len = (uint64_t)p[2] << 8 | p[3];
  else if (f->len == 127) {
    f->len = 0;
    for (int i = 2; i < 10; i++) f->len = f->len << 8 | p[i];
    if (f->len >> 63) return violation(e, 1002, "frame length over 2^63"), -1;
  }
  if (f->masked) memcpy(f->key, p + hl - 4, 4);
  return (int)hl;
}

/* The checks of RFC 6455 §5 on a frame, given the message in progress. */
static int frame_check(const WsParser *w, const Frame *f, WsEvent *e) {
  if (f->masked != w->masked)
    return violation(e, 1002, w->masked ? "unmasked frame from a client"
                                        : "masked frame from a server");
  switch (f->opcode) {
    case OP_CONT:
      if (!w->opcode && !w->dropping)
        return violation(e, 1002, "continuation with no message");
      if (w->dropping) return 0;
      break;
    case OP_TEXT: case OP_BINARY:
      if (w->opcode || w->dropping)
        return violation(e, 1002, "new message inside a fragmented one");
      break;
    case OP_CLOSE: case OP_PING: case OP_PONG:
      if (!f->fin) return violation(e, 1002, "fragmented control frame");
      if (f->len > CONTROL_MAX) return violation(e, 1002, "control frame over 125 bytes");
      return 0;
    default:
      return violation(e, 1002, "reserved opcode");
  }
  if (f->len > w->max - w->dec)
    return violation(e, 1009, "message over max_message_size");
  return 0;
}

static int valid_close_code(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* A close frame's payload at p[0..n): its code (1005: none) and reason. */
static int close_event(unsigned char *p, size_t n, WsEvent *e) {
  e->kind = WS_CLOSE;
  e->code = 1005;
  if (n == 0) return WS_CLOSE;
  if (n == 1) return violation(e, 1002, "close frame of 1 byte");
  e->code = p[0] << 8 | p[1];
  if (!valid_close_code((unsigned)e->code))
    return violation(e, 1002, "invalid close code");
  if (!ws_utf8_valid(p + 2, n - 2))
    return violation(e, 1007, "close reason is not UTF-8");
  e->off += 2;
  e->n -= 2;
  return WS_CLOSE;
}

/* A whole message; text that is not UTF-8 is refused, its bytes (e->used)
** dropped by the caller, and parsing may go on. */
static int message_event(WsParser *w, const unsigned char *p, WsEvent *e) {
  e->kind = w->opcode == OP_TEXT ? WS_TEXT : WS_BINARY;
  w->opcode = 0;
  w->dec = 0;
  if (e->kind == WS_TEXT && !ws_utf8_valid(p + e->off, e->n)) {
    e->go_on = 1;
    return violation(e, 1007, "text message is not UTF-8");
  }
  return e->kind;
}

/* Drop the first k of p[0..*len) bytes, and as many of the next skip as
** have come; the rest of them are dropped as they come (w->skip). */
static void drop_front(WsParser *w, unsigned char *p, size_t *len, uint64_t k) {
  size_t now = k < *len ? (size_t)k : *len;
  memmove(p, p + now, *len - now);
  *len -= now;
  w->skip = k - now;
}

/* A message over max_message_size (1009): it is dropped, what came of it
** and what is still to come (its further fragments too: w->dropping), so
** that the peer's close frame can still be read after ours. */
static int too_big(WsParser *w, unsigned char *p, size_t *len,
                   const Frame *f, size_t hl, WsEvent *e) {
  drop_front(w, p, len, w->dec + hl + f->len);
  w->dec = 0;
  w->opcode = 0;
  w->dropping = !f->fin;
  e->go_on = 1;
  e->used = 0;  /* dropped already */
  return WS_ERROR;
}

/* A whole frame of head hl at q = p + w->dec: a data frame is unmasked
** and moved down after the message's bytes (its head cut out), a control
** frame is left where it is for the caller. Returns the event, or -1 to
** go on with the next frame. */
static int frame_done(WsParser *w, unsigned char *p, size_t *len,
                      const Frame *f, size_t hl, WsEvent *e) {
  unsigned char *q = p + w->dec;
  size_t n = (size_t)f->len, after = *len - w->dec - hl - n;
  e->off = w->dec + hl;
  e->n = n;
  e->used = hl + n;
  if (f->masked) unmask(q + hl, q + hl, n, f->key);
  switch (f->opcode) {
    case OP_PING: e->kind = WS_PING; return WS_PING;
    case OP_PONG: e->kind = WS_PONG; return WS_PONG;
    case OP_CLOSE: return close_event(q + hl, n, e);
  }
  if (f->opcode != OP_CONT) w->opcode = (unsigned char)f->opcode;
  if (f->fin && w->dec == 0) return message_event(w, p, e);  /* in place */
  memmove(q, q + hl, n + after);
  *len -= hl;
  w->dec += n;
  if (!f->fin) return -1;
  e->off = 0;
  e->n = e->used = (size_t)w->dec;
  return message_event(w, p, e);
}

int ws_next(WsParser *w, unsigned char *p, size_t *len, WsEvent *e) {
  e->used = 0;
  e->go_on = 0;
  for (;;) {
    size_t avail;
    Frame f;
    int hl, r;
    if (w->skip > 0) drop_front(w, p, len, w->skip);
    avail = *len - (size_t)w->dec;
    hl = w->skip > 0 ? 0 : frame_head(p + w->dec, avail, &f, e);
    if (hl < 0) return WS_ERROR;
    if (hl > 0 && frame_check(w, &f, e))
      return e->code == 1009 ? too_big(w, p, len, &f, (size_t)hl, e) : WS_ERROR;
    if (hl > 0 && w->dropping && f.opcode == OP_CONT) {  /* a dropped message's */
      w->dropping = !f.fin;
      drop_front(w, p, len, (uint64_t)hl + f.len);
      continue;
    }
    if (hl == 0 || avail - (size_t)hl < f.len) {
      e->kind = WS_MORE;
      e->want = hl == 0 ? *len + 1 : (size_t)w->dec + (size_t)hl + (size_t)f.len;
      return WS_MORE;
    }
    if ((r = frame_done(w, p, len, &f, (size_t)hl, e)) >= 0) return r;
  }
}

/* ---------- writing frames ---------- */

/* The head of a final frame of n bytes, masked with key unless NULL. */
static size_t put_head(unsigned char *h, int opcode, size_t n,
                       const unsigned char *key) {
  size_t k = 2;
  h[0] = (unsigned char)(0x80 | opcode);
  if (n < 126) h[1] = (unsigned char)n;
  else if (n <= 0xFFFF) {
    h[1] = 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    k = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    k = 10;
  }
  if (key) {
    h[1] |= 0x80;
    memcpy(h + k, key, 4);
    k += 4;
  }
  return k;
}

/* One frame into the stream's output (a client's masked, RFC 6455 §5.3),
** sent at once as far as the socket takes it. */
static void put_frame(Stream *s, int opcode, const char *p, size_t n, int mask) {
  unsigned char h[14], key[4];
  size_t hl;
  char *dst;
  if (mask) RAND_bytes(key, 4);
  hl = put_head(h, opcode, n, mask ? key : NULL);
  stream_buffer(s, (const char *)h, hl);
  if (!mask) stream_buffer(s, p, n);
  else if ((dst = stream_reserve(s, n)) != NULL)
    unmask((unsigned char *)dst, (const unsigned char *)p, n, key);
  stream_flush(s);
}

/* ---------- core._ws ---------- */

static WsParser *checkparser(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, PARSER_MT);
}

/* parser(server, max_message_size) → the state of one connection's input. */
static int l_parser(lua_State *L) {
  int server = lua_toboolean(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  WsParser *w;
  luaL_argcheck(L, max > 0, 2, "max_message_size must be positive");
  w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->max = (uint64_t)max;
  w->masked = server != 0;
  luaL_setmetatable(L, PARSER_MT);
  return 1;
}

/* Cut the control frame just handled out of the input. */
static void drop_frame(Stream *s, const WsParser *w, const WsEvent *e) {
  size_t len;
  char *p = stream_input(s, &len);
  if (w->dec == 0) {
    stream_consume(s, e->used);
    return;
  }
  memmove(p + w->dec, p + w->dec + e->used, len - (size_t)w->dec - e->used);
  stream_cut(s, len - e->used);
}

static const char *const kinds[] = {NULL, "text", "binary", "ping", "pong"};

/* The connection ended with no close frame: nil, 1006 and why. */
static int abnormal(lua_State *L, Stream *s) {
  lua_pushnil(L);
  lua_pushinteger(L, 1006);
  lua_pushstring(L, stream_failed(s) ? "connection lost"
                                     : "connection closed without a close frame");
  lua_pushliteral(L, "lost");
  return 4;
}

/* The result of a close frame or a violation: nil, code, reason, how
** ("close", "violation", or "refused": a message refused, the input
** still readable). */
static int closed(lua_State *L, const char *p, const WsEvent *e) {
  lua_pushnil(L);
  lua_pushinteger(L, e->code);
  if (e->kind == WS_CLOSE) lua_pushlstring(L, p + e->off, e->n);
  else lua_pushstring(L, e->why);
  lua_pushstring(L, e->kind == WS_CLOSE ? "close" : e->go_on ? "refused" : "violation");
  return 4;
}

/* receive's stack: stream, parser; the resume's values at 3. A client's
** output is masked: its parser takes unmasked input. */
static int receive_k(lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, 1);
  WsParser *w = lua_touserdata(L, 2);
  WsEvent e;
  (void)ctx;
  if (status == LUA_YIELD) stream_input_resumed(L, s, 3);
  for (;;) {
    size_t len, before;
    unsigned char *p = (unsigned char *)stream_input(s, &len);
    int r;
    before = len;
    r = len > w->dec ? ws_next(w, p, &len, &e) : (e.want = len + 1, WS_MORE);
    if (len != before) stream_cut(s, len);
    switch (r) {
      case WS_MORE:
        if (stream_ended(s)) return abnormal(L, s);
        return stream_wait_input(L, s, e.want, 0, 0, receive_k, "receive");
      case WS_ERROR:
        closed(L, NULL, &e);
        stream_consume(s, e.used);
        return 4;
      case WS_CLOSE:
        closed(L, (const char *)p, &e);
        drop_frame(s, w, &e);
        return 4;
      case WS_PING:
        put_frame(s, OP_PONG, (const char *)p + e.off, e.n, !w->masked);
        drop_frame(s, w, &e);
        continue;
      case WS_PONG:
        lua_pushlstring(L, (const char *)p + e.off, e.n);
        drop_frame(s, w, &e);
        break;
      default:  /* a message: at the front */
        lua_pushlstring(L, (const char *)p + e.off, e.n);
        stream_consume(s, e.used);
    }
    lua_pushstring(L, kinds[r]);
    return 2;
  }
}

/* receive(stream, parser) → data, kind ("text", "binary", "pong");
** or nil, code, reason, how: the peer's close frame ("close"), a
** violation, the code to close with ("violation", or "refused" when the
** input can still be read), or the connection's end (1006, "lost").
** Pings are answered. */
static int l_receive(lua_State *L) {
  stream_check(L, 1);
  checkparser(L, 2);
  lua_settop(L, 2);
  return receive_k(L, LUA_OK, 0);
}

static const char *const opnames[] = {"text", "binary", "close", "ping",
                                      "pong", NULL};
static const int opcodes[] = {OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG};

/* send(stream, data, kind, parser): one frame of that kind, masked when
** the parser is a client's. */
static int l_send(lua_State *L) {
  Stream *s = stream_check(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  int op = opcodes[luaL_checkoption(L, 3, NULL, opnames)];
  WsParser *w = checkparser(L, 4);
  stream_check_writable(L, s);
  put_frame(s, op, p, n, !w->masked);
  return 0;
}

/* SHA-1, fetched once: with EVP_sha1() OpenSSL 3 looks the algorithm up
** in its providers again for every digest (its manual's "implicit fetch"
** and its cost). */
static const EVP_MD *sha1(void) {
  static EVP_MD *md;
  if (md == NULL) md = EVP_MD_fetch(NULL, "SHA1", NULL);
  return md;
}

/* accept_key(key) → Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
static int l_accept_key(lua_State *L) {
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  unsigned char md[EVP_MAX_MD_SIZE], out[32];
  unsigned int mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c && sha1() && EVP_DigestInit_ex(c, sha1(), NULL) &&
           EVP_DigestUpdate(c, key, n) &&
           EVP_DigestUpdate(c, GUID, sizeof GUID - 1) &&
           EVP_DigestFinal_ex(c, md, &mdlen);
  EVP_MD_CTX_free(c);
  if (!ok) return luaL_error(L, "SHA-1 failed");
  lua_pushlstring(L, (const char *)out, (size_t)EVP_EncodeBlock(out, md, (int)mdlen));
  return 1;
}

/* new_key() → a random Sec-WebSocket-Key (16 bytes, base64). */
static int l_new_key(lua_State *L) {
  unsigned char raw[16], out[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return luaL_error(L, "RAND_bytes failed");
  lua_pushlstring(L, (const char *)out, (size_t)EVP_EncodeBlock(out, raw, sizeof raw));
  return 1;
}

/* valid_close_code(code) → whether a close frame may carry it (for ours). */
static int l_valid_close_code(lua_State *L) {
  lua_Integer code = luaL_checkinteger(L, 1);
  lua_pushboolean(L, code > 0 && code < 65536 && valid_close_code((unsigned)code));
  return 1;
}

/* utf8_valid(s) → whether s is UTF-8 (for close reasons sent). */
static int l_utf8_valid(lua_State *L) {
  size_t n;
  const char *p = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, ws_utf8_valid((const unsigned char *)p, n));
  return 1;
}

/* receiving(stream) → whether a task waits in a read of it. */
static int l_receiving(lua_State *L) {
  lua_pushboolean(L, stream_has_reader(stream_check(L, 1)));
  return 1;
}

static const luaL_Reg ws_funcs[] = {
  {"parser", l_parser}, {"receive", l_receive}, {"send", l_send},
  {"receiving", l_receiving},
  {"accept_key", l_accept_key}, {"new_key", l_new_key},
  {"utf8_valid", l_utf8_valid}, {"valid_close_code", l_valid_close_code},
  {NULL, NULL}
};

/* core._ws; stack: Mod, core table. */
void websocket_register(lua_State *L) {
  luaL_newmetatable(L, PARSER_MT);
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, ws_funcs, 1);
  lua_setfield(L, -2, "_ws");
}
