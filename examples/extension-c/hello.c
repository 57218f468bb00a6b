/*
 * hello.c — a Bulkhead extension in C: answers every request of its route with a line naming
 * the path and the worker's pid, and stamps every response with `X-Extension: c` from its
 * response_headers filter.
 *
 *     cc -shared -fPIC -O2 -I include -o libhello.so examples/extension-c/hello.c
 *
 * and in bulkhead.toml (see README.md's "Extensions and filters"):
 *
 *     routes = [{ path = "/hello", pool = "host", execute = "extension", library = "/srv/libhello.so" }]
 *     [pools.host]
 *     kind = "host"
 */
#include <stdio.h>
#include <unistd.h>

#include "bulkhead_extension.h"

BH_EXPORT uint32_t bulkhead_extension_abi(uint32_t host_abi) {
    (void)host_abi; /* the host checks the versions; nothing to initialise */
    return BH_ABI_VERSION;
}

BH_EXPORT int bulkhead_extension_handle(bh_request *req, bh_response *resp) {
    char line[512];
    int n = snprintf(line, sizeof line, "hello from a C extension pid=%ld path=%.*s\n", (long)getpid(),
                     (int)req->path.len, req->path.ptr);
    if (n < 0) return BH_ERROR;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    if (resp->set_header(resp, BH_STR("content-type"), BH_STR("text/plain; charset=utf-8")) != BH_OK) return BH_ERROR;
    return resp->write(resp, line, (size_t)n);
}

BH_EXPORT int bulkhead_filter_response_headers(bh_request *req, bh_response *resp) {
    (void)req;
    return resp->set_header(resp, BH_STR("x-extension"), BH_STR("c"));
}
