/* libFuzzer harness: the WebSocket frame parser, fed the input in pieces
** as receive feeds it from a stream, with its events handled as receive
** handles them (a message taken from the front, a control frame cut out
** from between fragments). The first byte sets the side (masked input or
** not), the piece size and max_message_size. Every text message and close
** reason is checked again against a byte-by-byte UTF-8 validator written
** from the table of well-formed sequences (Unicode 15, table 3-7). */
#include <stdlib.h>
#include <string.h>
#include "../src/lasync.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int utf8_reference(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i], lo = 0x80, hi = 0xBF, k, need;
    if (c <= 0x7F) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n - i <= need) return 0;
    if (p[i + 1] < lo || p[i + 1] > hi) return 0;
    for (k = 2; k <= need; k++)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return 0;
    i += need + 1;
  }
  return 1;
}

/* Handle one event as receive does; 0 when parsing stops. */
static int handle(WsParser *w, unsigned char *p, size_t *len, int r,
                  const WsEvent *e) {
  if (r == WS_MORE) {
    if (e->want <= *len) abort();
    return 0;
  }
  if (r == WS_ERROR) {
    if (e->code != 1002 && e->code != 1007 && e->code != 1009) abort();
    if (!e->go_on) return 0;
    if (e->used > *len || w->dec != 0) abort();
    memmove(p, p + e->used, *len - e->used);  /* a refused message: on */
    *len -= e->used;
    return 1;
  }
  if (e->off + e->n > *len) abort();
  if ((r == WS_TEXT || r == WS_CLOSE) &&
      utf8_reference(p + e->off, e->n) != 1) abort();
  if (r == WS_TEXT || r == WS_BINARY) {
    if (e->used > *len || w->dec != 0) abort();
    memmove(p, p + e->used, *len - e->used);
    *len -= e->used;
  } else {
    if (w->dec + e->used > *len) abort();
    memmove(p + w->dec, p + w->dec + e->used, *len - w->dec - e->used);
    *len -= e->used;
  }
  return r != WS_CLOSE;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  WsParser w;
  WsEvent e;
  size_t piece, fed = 1, len = 0;
  unsigned char *p;
  int go = 1;
  if (size < 1) return 0;
  memset(&w, 0, sizeof w);
  w.masked = data[0] & 1;
  piece = (data[0] >> 1) % 8 * 3 + 1;
  w.max = data[0] & 0x80 ? 64 : 1u << 20;
  p = malloc(size);
  while (go && fed < size) {
    size_t n = size - fed < piece ? size - fed : piece;
    memcpy(p + len, data + fed, n);
    len += n;
    fed += n;
    for (;;) {
      int r = len > w.dec ? ws_next(&w, p, &len, &e) : WS_MORE;
      if (r == WS_MORE && len <= w.dec) e.want = len + 1;
      if (w.dec > len) abort();
      if (!handle(&w, p, &len, r, &e)) {
        go = r == WS_MORE;
        break;
      }
    }
  }
  /* the validator itself, on the raw input */
  if (ws_utf8_valid(data, size) != utf8_reference(data, size)) abort();
  free(p);
  return 0;
}
