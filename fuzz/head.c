/* libFuzzer harness: the request head as read_request sees it, from the
** search for its end through http_parser to the smuggling checks. */
#include <stdlib.h>
#include <string.h>
#include "../src/lasync.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* Parse the head at the front of p as a request (response: as one). */
static int fuzz_head(const char *p, size_t size, int response) {
  size_t off = 0;
  const char *why = NULL;
  long n = http_head_end(p, size, &off, &why);
  HttpHead h;
  int st;
  if (n < 0 && why == NULL) abort();
  if (n <= 0) return 0;
  h.maxfields = (uint32_t)(n / 2);
  h.fields = malloc((h.maxfields + 1) * sizeof *h.fields);
  st = http_head_parse(&h, response, p, (size_t)n, &why);
  if (st == 0 && h.nfields > h.maxfields) abort();
  if (st != 0 && why == NULL) abort();
  for (uint32_t i = 0; st == 0 && i < h.nfields; i++)
    if (h.fields[i].name + h.fields[i].nlen > (uint32_t)n ||
        h.fields[i].value + h.fields[i].vlen > (uint32_t)n)
      abort();
  free(h.fields);
  return 0;
}

#ifndef FUZZ_RESPONSE  /* response.c includes this file for responses */
#define FUZZ_RESPONSE 0
#endif

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *p = malloc(size + 1);
  memcpy(p, data, size);
  fuzz_head(p, size, FUZZ_RESPONSE);
  free(p);
  return 0;
}
