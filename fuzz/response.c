/* libFuzzer harness: a response head as read_response parses it. */
#include <stdlib.h>
#include <string.h>
#define FUZZ_RESPONSE
#include "head.c"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *p = malloc(size + 1);
  memcpy(p, data, size);
  fuzz_head(p, size, 1);
  free(p);
  return 0;
}
