/* libFuzzer harness: the chunked decoder, fed the input in pieces (the
** first byte says how long) as read_body feeds it from a stream. */
#include <stdlib.h>
#include <string.h>
#include "../src/lasync.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  HttpChunked c;
  size_t piece, fed = 1, len = 0, dec = 0;
  char *p;
  const char *why;
  int r = 0;
  if (size < 1) return 0;
  piece = data[0] % 16 + 1;
  p = malloc(size);
  memset(&c, 0, sizeof c);
  while (r == 0 && fed < size) {
    size_t n = size - fed < piece ? size - fed : piece;
    memcpy(p + len, data + fed, n);
    len += n;
    fed += n;
    r = http_chunked_decode(&c, p, &len, &dec, &why);
    if (dec > len) abort();
  }
  free(p);
  return 0;
}
