/* SPDX-License-Identifier: MIT */
/* whole_file.h - reading a whole file (a /proc file reports size 0: read until end of file), and
 * writing a whole buffer. */
#ifndef LUA_PERF_WHOLE_FILE_H
#define LUA_PERF_WHOLE_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* The whole file at path into *text, NUL-terminated (the content may hold NULs of its own: use
 * *len); the caller frees *text. 0, -EFBIG when it holds more than limit bytes, or a negative
 * errno (-ENOENT, -EACCES, -ENOMEM...); *text and *len are set only on success. */
int read_whole_file(const char *path, size_t limit, char **text, size_t *len);
/* The same from an open file descriptor, from its current offset to end of file. */
int read_whole_fd(int fd, size_t limit, char **text, size_t *len);
/* read(2) and pread(2), retried when a signal interrupts them: the bytes read, 0 at end of file,
 * or a negative errno. */
ssize_t read_retrying(int fd, void *buf, size_t size);
ssize_t pread_retrying(int fd, void *buf, size_t size, off_t at);
/* All of data[0..size) to fd, retrying short writes and interrupted ones: 0 or a negative errno
 * (-EIO when a write makes no progress). */
int write_whole_fd(int fd, const void *data, size_t size);

#endif
