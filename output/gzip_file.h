/* SPDX-License-Identifier: MIT */
/* gzip_file.h - bytes written gzip-compressed (RFC 1952, zlib's deflate) to a stream. */
#ifndef LUA_PERF_GZIP_FILE_H
#define LUA_PERF_GZIP_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Write data[0..len) as one gzip member to out (not closed). 0, -ENOMEM or -EIO. */
int gzip_write(FILE *out, const uint8_t *data, size_t len);

#endif
