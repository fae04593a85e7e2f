/* SPDX-License-Identifier: MIT */
/* whole_file.h - reading a whole file (a /proc file reports size 0: read until end of file). */
#ifndef LUA_PERF_WHOLE_FILE_H
#define LUA_PERF_WHOLE_FILE_H

#include <stddef.h>

/* The whole file at path into *text, NUL-terminated (the content may hold NULs of its own: use
 * *len); the caller frees *text. 0, -EFBIG when it holds limit bytes or more, or a negative
 * errno (-ENOENT, -EACCES, -ENOMEM...); *text and *len are set only on success. */
int read_whole_file(const char *path, size_t limit, char **text, size_t *len);

#endif
