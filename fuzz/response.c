/* libFuzzer harness: a response head as read_response parses it. */
#define FUZZ_RESPONSE 1
#include "head.c"
