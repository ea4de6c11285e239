/* Solves one problem on a running flashtts server through the C API of the
 * client library (<flashtts/flashtts.h>, docs/client.md):
 *
 *   flashtts-example-solve [--endpoint E] [--params JSON] [--timeout MS] [--stream] [--json] "problem"
 *
 * e.g. --params '{"n": 8, "strategy": "beam_search", "seed": 1}'. Prints the
 * answer and its score; --json also prints the whole result map, --stream
 * each progress event (to stderr) as the search runs; --timeout is how long
 * to wait for the answer (default 600000 ms). Exit status: 0 solved,
 * 1 the server answered with an error, 2 no answer in time, 3 no server
 * answers at the endpoint, 4 anything else (bad arguments included).
 *
 * Build it against an installed flashtts:
 *   cc solve.c $(pkg-config --cflags --libs flashtts-client) -o solve */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flashtts/flashtts.h>

static const int kConnectTimeoutMs = 3000;
static const int kDefaultTimeoutMs = 600000;

static int exit_code(flashtts_status st) {
  switch (st) {
    case FLASHTTS_OK: return 0;
    case FLASHTTS_ERROR_SERVER: return 1;
    case FLASHTTS_ERROR_TIMEOUT: return 2;
    case FLASHTTS_ERROR_CONNECT: return 3;
    default: return 4;
  }
}

static int fail(flashtts_status st, char* error) {
  fprintf(stderr, "solve: %s error: %s\n", flashtts_status_name(st), error ? error : "(no message)");
  flashtts_free_string(error);
  return exit_code(st);
}

static void print_event(const char* event_json, void* user) {
  int* count = (int*)user;
  ++*count;
  fprintf(stderr, "progress: %s\n", event_json);
}

int main(int argc, char** argv) {
  const char* endpoint = "ipc:///tmp/flashtts.sock";
  const char* params = NULL;
  const char* problem = NULL;
  int want_json = 0, stream = 0, timeout_ms = kDefaultTimeoutMs;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc) endpoint = argv[++i];
    else if (strcmp(argv[i], "--params") == 0 && i + 1 < argc) params = argv[++i];
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) timeout_ms = atoi(argv[++i]);
    else if (strcmp(argv[i], "--json") == 0) want_json = 1;
    else if (strcmp(argv[i], "--stream") == 0) stream = 1;
    else if (argv[i][0] != '-' && !problem) problem = argv[i];
    else {
      fprintf(stderr, "usage: %s [--endpoint E] [--params JSON] [--timeout MS] [--stream] [--json] \"problem\"\n", argv[0]);
      return 4;
    }
  }
  if (!problem) {
    fprintf(stderr, "usage: %s [--endpoint E] [--params JSON] [--timeout MS] [--stream] [--json] \"problem\"\n", argv[0]);
    return 4;
  }

  flashtts_status st;
  char* error = NULL;
  fprintf(stderr, "flashtts client %s, solving on %s\n", flashtts_version(), endpoint);
  flashtts_client* c = flashtts_connect(endpoint, kConnectTimeoutMs, &st, &error);
  if (!c) return fail(st, error);

  char* answer = NULL;
  char* result = NULL;
  double score = 0;
  int events = 0;
  st = flashtts_solve(c, problem, params, timeout_ms, stream ? print_event : NULL, &events, &answer, &score,
                      want_json ? &result : NULL, &error);
  flashtts_close(c);
  if (st != FLASHTTS_OK) return fail(st, error);
  if (stream) fprintf(stderr, "progress events: %d\n", events);

  printf("answer: %s\nscore: %.4f\n", answer, score);
  if (result) printf("result: %s\n", result);
  flashtts_free_string(answer);
  flashtts_free_string(result);
  return 0;
}
