/* The C API of the flashtts client library (libflashtts_client): solve
 * problems on a flashtts server from C, or from any language that calls C
 * (a ROS 2 node, Rust, Go, Python's ctypes). It speaks the client protocol
 * (docs/protocol.md) over ZeroMQ through the C++ client (runtime/client.h);
 * docs/client.md has a worked example.
 *
 * Conventions:
 *  - Every call returns an flashtts_status: FLASHTTS_OK (0) or what went
 *    wrong; flashtts_connect returns the handle, NULL on failure.
 *  - `error` (may be NULL) receives, on failure only, a sentence saying what
 *    went wrong; for FLASHTTS_ERROR_SERVER it starts with the protocol's
 *    stable error code ("bad_request: ...", docs/protocol.md "Errors").
 *    On success *error is set to NULL.
 *  - Every string this library returns (results, errors) is the caller's,
 *    NUL-terminated UTF-8, to release with flashtts_free_string.
 *  - Results are the protocol's result maps as JSON text.
 *  - No C++ exception ever leaves this library.
 *
 * Thread contract: a flashtts_client (one ZeroMQ socket) is used by one
 * thread at a time; open one per thread to call from several at once.
 * flashtts_version and flashtts_status_name may be called from any thread. */
#ifndef FLASHTTS_FLASHTTS_H
#define FLASHTTS_FLASHTTS_H

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; these are its C exports. */
#if defined(__GNUC__)
#define FLASHTTS_API __attribute__((visibility("default")))
#else
#define FLASHTTS_API
#endif

typedef enum flashtts_status {
  FLASHTTS_OK = 0,
  FLASHTTS_ERROR_ARGUMENT = 1,  /* a NULL handle or string, bad JSON, a timeout <= 0 */
  FLASHTTS_ERROR_CONNECT = 2,   /* a malformed endpoint, or no server answered a ping */
  FLASHTTS_ERROR_SERVER = 3,    /* the server answered with an error */
  FLASHTTS_ERROR_TIMEOUT = 4,   /* no answer in time; the request was cancelled on the server */
  FLASHTTS_ERROR_PROTOCOL = 5,  /* the server sent something that is no valid reply */
  FLASHTTS_ERROR_INTERNAL = 6   /* out of memory, or a ZeroMQ failure */
} flashtts_status;

/* A connection to one server; opaque. */
typedef struct flashtts_client flashtts_client;

/* Called with each progress event of a streaming request, as JSON text
 * (e.g. {"kind":"completed","beam":0,...}); the text lives until it returns. */
typedef void (*flashtts_progress_fn)(const char* event_json, void* user);

/* The library's version, "MAJOR.MINOR.PATCH"; a static string. */
FLASHTTS_API const char* flashtts_version(void);

/* "ok", "argument", "connect", "server", "timeout", "protocol", "internal". */
FLASHTTS_API const char* flashtts_status_name(flashtts_status status);

/* Connects to the server at `endpoint` ("ipc:///tmp/flashtts.sock",
 * "tcp://127.0.0.1:7797"). ZeroMQ connects in the background whether or not
 * a server listens, so with `timeout_ms` > 0 this also pings and fails with
 * FLASHTTS_ERROR_CONNECT ("no flashtts server answers at ...") when no pong
 * comes within that time; 0 skips the ping. Returns NULL on failure, with
 * the status in *status (may be NULL) and the reason in *error. */
FLASHTTS_API flashtts_client* flashtts_connect(const char* endpoint, int timeout_ms, flashtts_status* status, char** error);

/* Closes the connection (a request still in flight is abandoned). NULL is fine. */
FLASHTTS_API void flashtts_close(flashtts_client* client);

/* Pings the server and waits up to `timeout_ms` for its pong:
 * FLASHTTS_ERROR_CONNECT when none comes. */
FLASHTTS_API flashtts_status flashtts_ping(flashtts_client* client, int timeout_ms, char** error);

/* Solves `problem` with a test-time-scaling search. `params_json` (NULL or
 * "" for none) is a JSON object of the solve request's other fields:
 * {"n": 8, "strategy": "beam_search", "seed": 1, ...} (docs/protocol.md,
 * "solve"); fields left out take the server's defaults. With `on_progress`
 * (may be NULL) the search streams ("stream": true) and each progress event
 * is passed to it, with `user`, before this returns. Waits up to
 * `timeout_ms` (> 0) for the result, then cancels the request on the server
 * and returns FLASHTTS_ERROR_TIMEOUT. On success, each non-NULL output gets:
 * *answer the chosen answer ("" when none was found), *score its score,
 * *result_json the whole result map. */
FLASHTTS_API flashtts_status flashtts_solve(flashtts_client* client, const char* problem, const char* params_json,
                               int timeout_ms, flashtts_progress_fn on_progress, void* user,
                               char** answer, double* score, char** result_json, char** error);

/* Any request of the protocol: `type` is "solve", "generate", "score",
 * "stats", ... and `fields_json` (NULL or "" for none) a JSON object of its
 * fields, without "v", "type" and "id", which this library sets. With
 * `on_progress` (may be NULL), a request sent with "stream": true passes each
 * progress event to it before this returns. Timeout as flashtts_solve; on
 * success *result_json (may be NULL) gets the result map. */
FLASHTTS_API flashtts_status flashtts_request(flashtts_client* client, const char* type, const char* fields_json,
                                 int timeout_ms, flashtts_progress_fn on_progress, void* user,
                                 char** result_json, char** error);

/* Releases a string this library returned. NULL is fine. */
FLASHTTS_API void flashtts_free_string(char* s);

#ifdef __cplusplus
}
#endif

#endif /* FLASHTTS_FLASHTTS_H */
