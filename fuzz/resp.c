/* libFuzzer harness: RESP2 request framing as reader:readresp sees it,
** every command of the input in turn, scanned as readresp does: once
** noting its arguments (also while it is incomplete), and again for a
** command with more arguments than readresp keeps from the first scan. */
#include <stdlib.h>
#include <string.h>
#include "../src/lasync.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

typedef struct { const char *lo, *hi; size_t n; } Seen;

/* Every argument lies within the command framed. */
static void each(void *ud, const char *p, size_t n) {
  Seen *s = ud;
  if (p < s->lo || p + n > s->hi) abort();
  s->n++;
}

static void scan_all(const char *p, size_t size) {
  while (size > 0) {
    RespScan r = {0};
    Seen all = {p, p + size, 0};
    r.each = each;
    r.ud = &all;
    long n = resp_scan(p, size, &r);
    if (n < 0 && r.why == NULL) abort();
    if (n == 0 && r.want <= size) abort();  /* more must mean more */
    if (n <= 0) return;
    if ((size_t)n > size || all.n != r.argc) abort();
    Seen s = {p, p + n, 0};
    size_t argc = r.argc;
    r.ud = &s;
    if (resp_scan(p, size, &r) != n || s.n != argc || r.argc != argc) abort();
    p += n;
    size -= (size_t)n;
  }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *p = malloc(size ? size : 1);
  memcpy(p, data, size);
  scan_all(p, size);
  free(p);
  return 0;
}
