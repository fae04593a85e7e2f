/* SPDX-License-Identifier: MIT */
/* strbuf.h - a growable string: no fixed buffers, no silent truncation. */
#ifndef LUA_PERF_STRBUF_H
#define LUA_PERF_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *data;
	size_t len;
	size_t cap;
	int failed; /* an allocation failed: the content is incomplete */
};

void strbuf_append(struct strbuf *sb, const char *s);
void strbuf_appendf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand over the string (NULL if an allocation failed) and reset the buffer. */
char *strbuf_take(struct strbuf *sb);

#endif
