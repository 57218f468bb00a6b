#!/bin/sh
# A CGI program: the request is in the environment (QUERY_STRING, REQUEST_METHOD, …) and, for a
# POST, on stdin; the answer is a header block, an empty line and the body, on stdout.
name=$(printf '%s' "$QUERY_STRING" | sed -n 's/^\(.*&\)\{0,1\}name=\([^&]*\).*$/\2/p')
[ -n "$name" ] || name=world
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'hello %s from a CGI shell script, pid %s\n' "$name" "$$"
printf 'method %s\n' "$REQUEST_METHOD"
if [ "$REQUEST_METHOD" = POST ]; then
    printf 'read %s bytes\n' "$(wc -c | tr -d ' ')"
fi
