/*
 * bulkhead_extension.h — Bulkhead's native extension ABI, version 1.0.
 *
 * An extension is a shared library (.so) that Bulkhead's built-in host worker (`bulkhead
 * worker`, a pool of `kind = "host"`) loads and calls for the requests of a route:
 *
 *     { path = "/ext", pool = "host", execute = "extension", library = "/srv/shop/libreport.so",
 *       filters = ["/srv/shop/libauth.so"] }
 *
 * It is IIS's ISAPI in spirit: a request handler (ISAPI's extension) and optional filter entry
 * points (ISAPI's filters) called at fixed points of every request the route takes. The library
 * runs inside the host's worker process, never inside the listener: a crash (a segfault, an
 * abort) kills only that worker, which the manager replaces like any crashed worker.
 *
 * Rust authors do not use this header: the `bulkhead-extension` crate wraps it, and its
 * `extension!` macro exports these symbols from a plain Rust function.
 *
 * ---------------------------------------------------------------------------------------------
 * ENTRY POINTS (exported with C linkage, looked up by name when the library is loaded)
 *
 *   uint32_t bulkhead_extension_abi(uint32_t host_abi);                            REQUIRED
 *   int  bulkhead_extension_handle(bh_request *req, bh_response *resp);             the handler
 *   int  bulkhead_filter_request_headers(bh_request *req, bh_response *resp);       optional
 *   int  bulkhead_filter_authenticate(bh_request *req, bh_response *resp);          optional
 *   int  bulkhead_filter_response_headers(bh_request *req, bh_response *resp);      optional
 *   void bulkhead_filter_log(bh_request *req, const bh_log *log);                   optional
 *   void bulkhead_filter_end_of_request(bh_request *req);                           optional
 *
 * The version handshake: right after loading (dlopen with RTLD_NOW | RTLD_LOCAL, so a missing
 * symbol fails the load, not a later request), the host calls bulkhead_extension_abi once, on
 * one thread, before any other entry point, passing its own BH_ABI_VERSION. The library returns
 * the BH_ABI_VERSION it was compiled against (return BH_ABI_VERSION), or 0 to refuse to load
 * (it may initialise itself there and return 0 when that fails). The host refuses the library
 * unless the major versions are equal and the library's minor is not newer than the host's;
 * the refusal names the library's path and both versions. A library is loaded once per worker
 * process, at the first request that needs it, and never unloaded: to change one, install the
 * new file under a new name or by rename(2) (never write over a loaded .so in place) and
 * recycle the pool.
 *
 * The handler, bulkhead_extension_handle, is required of a route's `library`; a library named
 * only in `filters` may omit it. It answers the request through `resp` and returns BH_OK, or
 * BH_ERROR when it failed: the client then gets 500 if no byte of the response was sent yet,
 * else its response is cut short (the head is already on the wire).
 *
 * Filters, in the order they run for one request. Each hook runs for every library of the
 * route that exports it, in the route's order: the `filters` libraries as listed, then the
 * route's `library`.
 *   1. request_headers: may change the request's headers (req->set_header, remove_header).
 *   2. authenticate: may set the authenticated user (req->set_user) from the headers.
 *      Both return BH_OK to go on, BH_FINISHED when they answered the request themselves
 *      through `resp` (a 401, a redirect: no later filter of that phase and no handler run),
 *      or BH_ERROR (500).
 *   3. the handler.
 *   4. response_headers: runs once, just before the response head is sent — whoever answered
 *      (the handler, a filter that finished, or the host's own 500) — and may change the status
 *      and the headers through `resp`; it must not write a body. Returns BH_OK or BH_ERROR.
 *   5. log: after the last byte of the response was handed to the host (the client may still be
 *      receiving it), with the status, the body bytes and the outcome. Read only.
 *   6. end_of_request: always last, even when an earlier step failed: release what the library
 *      kept for this request.
 *
 * ---------------------------------------------------------------------------------------------
 * OWNERSHIP AND LIFETIMES
 *
 *   - Strings are bh_str: a pointer and a length, NOT NUL-terminated (print with
 *     printf("%.*s", (int)s.len, s.ptr)). They are bytes: header values may hold any byte
 *     but NUL, CR and LF; method and path are ASCII (the path percent-encoded as received).
 *   - Everything the host passes (the structs, their strings, the header arrays) belongs to the
 *     host and is valid only until the entry point it was passed to returns. A header array
 *     (req->headers, resp->headers) and the strings in it are also invalidated by any callback
 *     that changes that list; the struct's fields are updated before the callback returns.
 *     Copy what you keep.
 *   - Everything the library passes to a callback is copied by the host before the callback
 *     returns; the library keeps ownership of its buffers.
 *   - The host never frees what the library allocates, and the library never frees what the
 *     host passed.
 *
 * THREADING
 *
 *   - Entry points are called on the host's extension threads, never on its event loop, so
 *     they may block (read a file, query a database). A worker process has 4 of them per CPU it
 *     may run on (IIS 6's MaxPoolThreads default), fed by one queue: that many calls run at
 *     once per process (the rest wait their turn), so the handler and every filter must be safe
 *     to call from several threads at the same time, for different requests. A call that
 *     blocks for long holds one of them — so does a write that waits for a slow client once a
 *     big response streams: send big files from a static route, not through an extension.
 *   - All the entry points of one request run on one thread, one after the other, in the order
 *     above. The one nesting: when the handler's write or flush sends the head (past
 *     BH_BUFFERED_BODY, or at flush), the response_headers filters run inside that call, on the
 *     same thread, before it returns. The callbacks of a struct may be called only from the
 *     entry point that was given it, on that thread, while it runs.
 *   - The library must not install signal handlers, fork, or exit the process: the process
 *     belongs to the host.
 *
 * BODIES AND LIMITS
 *
 *   - Request body: req->read_body blocks until bytes arrive and streams the body as the
 *     client sends it (the listener has already enforced `max_body`). Whatever an entry point
 *     reads is consumed: the handler cannot read what a filter read.
 *   - Response body: resp->write copies the bytes. The host keeps up to BH_BUFFERED_BODY
 *     (64 KiB) of a response before sending its head: a response that fits is sent whole with
 *     Content-Length; a bigger one (or one flushed with resp->flush) is sent with its head as
 *     soon as that much is written, and its body streams, chunked. While streaming, write blocks
 *     when the client is slower than the extension (at most BH_BUFFERED_BODY more is queued),
 *     so memory stays bounded. Content-Length and Transfer-Encoding headers set by the library
 *     are ignored (the host frames the body itself).
 *   - When the client goes away, read_body and write return BH_ERROR: stop and return.
 *
 * VERSIONING
 *
 *   Minor versions only add: a new callback or field is appended at the end of a struct, and
 *   the struct's `size` (sizeof as the host built it) tells a library compiled against a newer
 *   minor whether the field is there. New optional entry points may be added. Anything else is
 *   a new major version, which this host refuses.
 */
#ifndef BULKHEAD_EXTENSION_H
#define BULKHEAD_EXTENSION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BH_ABI_MAJOR 1
#define BH_ABI_MINOR 0
/* The version as one number: major in the high 16 bits, minor in the low 16. */
#define BH_ABI_VERSION ((uint32_t)((BH_ABI_MAJOR << 16) | BH_ABI_MINOR))

/* What entry points and callbacks return. */
#define BH_OK 0        /* done (a handler) or go on (a filter) */
#define BH_FINISHED 1  /* a request_headers or authenticate filter answered the request itself */
#define BH_ERROR (-1)  /* failed: 500 if nothing was sent yet, else the response is cut */

/* Body bytes the host buffers before it sends a response head (see BODIES AND LIMITS). */
#define BH_BUFFERED_BODY 65536

/* Exporting an entry point from a library built with -fvisibility=hidden. */
#define BH_EXPORT __attribute__((visibility("default")))

/* A byte string: not NUL-terminated. */
typedef struct bh_str {
    const char *ptr;
    size_t len;
} bh_str;

/* One header field. Names are lower-case as the host passes them; any case is accepted. */
typedef struct bh_header {
    bh_str name;
    bh_str value;
} bh_header;

typedef struct bh_request bh_request;
typedef struct bh_response bh_response;

/* The request. Fields are read-only for the library: change them through the callbacks. */
struct bh_request {
    uint32_t size;           /* sizeof(bh_request) as the host built it */
    uint32_t host_abi;       /* the host's BH_ABI_VERSION */
    bh_str method;           /* "GET" */
    bh_str path;             /* "/ext/report", percent-encoded, without the query */
    bh_str query;            /* what follows '?', empty when there is none */
    bh_str version;          /* "HTTP/1.1" */
    bh_str remote_addr;      /* the client's address as the listener saw it, "" if unknown */
    bh_str user;             /* set by an authenticate filter; "" until then */
    const bh_header *headers; /* the request's headers (those of one name in the order received) */
    size_t header_count;
    int64_t content_length;  /* the body's length, or -1 when unknown (chunked) */

    /* Reads up to `cap` bytes of the body into `buf`: returns how many (> 0), 0 at its end, or
     * BH_ERROR when the client went away. Blocks until bytes arrive. */
    intptr_t (*read_body)(bh_request *req, void *buf, size_t cap);
    /* request_headers and authenticate filters only (else BH_ERROR): replaces every header of
     * that name with one of this value (adds it when absent). */
    int (*set_header)(bh_request *req, bh_str name, bh_str value);
    /* request_headers and authenticate filters only: removes every header of that name. */
    int (*remove_header)(bh_request *req, bh_str name);
    /* authenticate filters only: the authenticated user, seen by the handler in `user`. */
    int (*set_user)(bh_request *req, bh_str user);
};

/* The response being built. `status` and the header array show it as it is now. */
struct bh_response {
    uint32_t size;           /* sizeof(bh_response) as the host built it */
    uint16_t status;         /* 200 until set_status */
    uint16_t head_sent;      /* 1 once the head is on its way: status and headers are fixed */
    const bh_header *headers;
    size_t header_count;

    /* 200..=999; BH_ERROR when out of range or once the head is sent. */
    int (*set_status)(bh_response *resp, uint16_t status);
    /* Replaces every header of that name with one of this value. */
    int (*set_header)(bh_response *resp, bh_str name, bh_str value);
    /* Adds a header (Set-Cookie may appear several times). */
    int (*add_header)(bh_response *resp, bh_str name, bh_str value);
    int (*remove_header)(bh_response *resp, bh_str name);
    /* Appends body bytes (copied). BH_ERROR when the client went away, or from a
     * response_headers filter. May block while streaming (see BODIES AND LIMITS). */
    int (*write)(bh_response *resp, const void *data, size_t len);
    /* Sends the head and what is buffered now, and streams from then on. */
    int (*flush)(bh_response *resp);
};

/* What the log hook sees about the finished request. */
typedef struct bh_log {
    uint32_t size;           /* sizeof(bh_log) as the host built it */
    uint16_t status;         /* the status sent */
    uint16_t reserved;
    uint64_t body_bytes;     /* response body bytes handed to the host */
    uint64_t duration_us;    /* from the first entry point to the end of the response */
    int32_t outcome;         /* BH_OK, or BH_ERROR when an entry point failed or the client left */
} bh_log;

/* The entry points' types, as the host looks them up. */
typedef uint32_t (*bh_abi_fn)(uint32_t host_abi);
typedef int (*bh_handler_fn)(bh_request *req, bh_response *resp);
typedef int (*bh_filter_fn)(bh_request *req, bh_response *resp);
typedef void (*bh_log_fn)(bh_request *req, const bh_log *log);
typedef void (*bh_end_fn)(bh_request *req);

BH_EXPORT uint32_t bulkhead_extension_abi(uint32_t host_abi);
BH_EXPORT int bulkhead_extension_handle(bh_request *req, bh_response *resp);
BH_EXPORT int bulkhead_filter_request_headers(bh_request *req, bh_response *resp);
BH_EXPORT int bulkhead_filter_authenticate(bh_request *req, bh_response *resp);
BH_EXPORT int bulkhead_filter_response_headers(bh_request *req, bh_response *resp);
BH_EXPORT void bulkhead_filter_log(bh_request *req, const bh_log *log);
BH_EXPORT void bulkhead_filter_end_of_request(bh_request *req);

/* A bh_str from a string literal: BH_STR("text/plain"). */
#define BH_STR(literal) ((bh_str){ (literal), sizeof(literal) - 1 })

#ifdef __cplusplus
}
#endif

#endif /* BULKHEAD_EXTENSION_H */
