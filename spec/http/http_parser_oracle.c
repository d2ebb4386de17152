/* The decision of Debian's libhttp-parser alone on request heads, for
** core_http_spec.lua to compare core._http against. Reads cases from stdin,
** each "<length>\n<bytes>", and prints a line for each:
**   ok <method> <major> <minor> <target> <name>=<value> ...  (hex strings)
**   err <http_errno name>
**   more                       (the input ends before the head does)
** The parser stops (paused) at the end of the head, as src/http.c's does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>

/* state: 0 in the target, 1 in a field name, 2 in its value. */
typedef struct Out { char buf[1 << 16]; size_t n; int state; } Out;

static void put(Out *o, const char *s) {
  size_t n = strlen(s);
  if (o->n + n > sizeof o->buf) abort();  /* no head is that large */
  memcpy(o->buf + o->n, s, n);
  o->n += n;
}

static void hex(Out *o, const char *at, size_t n) {
  char two[3];
  for (size_t i = 0; i < n; i++) {
    snprintf(two, sizeof two, "%02x", (unsigned char)at[i]);
    put(o, two);
  }
}

static int on_url(http_parser *hp, const char *at, size_t n) {
  hex(hp->data, at, n);
  return 0;
}

/* Bytes of a field's name (state 1) or value (2): sep starts a new one. */
static int field_part(http_parser *hp, int state, const char *sep,
                      const char *at, size_t n) {
  Out *o = hp->data;
  if (o->state != state) put(o, sep);
  o->state = state;
  hex(o, at, n);
  return 0;
}

static int on_field(http_parser *hp, const char *at, size_t n) {
  return field_part(hp, 1, " ", at, n);
}

static int on_value(http_parser *hp, const char *at, size_t n) {
  return field_part(hp, 2, "=", at, n);
}

static int on_headers_complete(http_parser *hp) {
  http_parser_pause(hp, 1);
  return 0;
}

int main(void) {
  static const http_parser_settings settings = {
    .on_url = on_url, .on_header_field = on_field,
    .on_header_value = on_value, .on_headers_complete = on_headers_complete,
  };
  size_t len;
  while (scanf("%zu", &len) == 1 && getchar() == '\n') {
    char *p = malloc(len + 1);
    static Out o;
    http_parser hp;
    if (fread(p, 1, len, stdin) != len) return 1;
    memset(&o, 0, sizeof o);
    http_parser_init(&hp, HTTP_REQUEST);
    hp.data = &o;
    http_parser_execute(&hp, &settings, p, len);
    if (HTTP_PARSER_ERRNO(&hp) == HPE_PAUSED)
      printf("ok %s %d %d %.*s\n", http_method_str((enum http_method)hp.method),
           hp.http_major, hp.http_minor, (int)o.n, o.buf);
    else if (HTTP_PARSER_ERRNO(&hp) != HPE_OK)
      printf("err %s\n", http_errno_name(HTTP_PARSER_ERRNO(&hp)));
    else printf("more\n");
    free(p);
  }
  return 0;
}
