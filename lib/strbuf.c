/* SPDX-License-Identifier: MIT */
#include "lib/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct strbuf *sb, size_t extra)
{
	if (sb->failed)
		return -1;
	if (sb->len + extra + 1 <= sb->cap)
		return 0;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	char *grown = realloc(sb->data, cap);
	if (!grown) {
		sb->failed = 1;
		return -1;
	}
	sb->data = grown;
	sb->cap = cap;
	return 0;
}

void strbuf_append(struct strbuf *sb, const char *s)
{
	size_t n = strlen(s);

	if (reserve(sb, n) < 0)
		return;
	memcpy(sb->data + sb->len, s, n + 1);
	sb->len += n;
}

void strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap, copy;
	int n;

	va_start(ap, fmt);
	va_copy(copy, ap);
	n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n >= 0 && reserve(sb, (size_t)n) == 0) {
		vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
		sb->len += (size_t)n;
	} else {
		sb->failed = 1;
	}
	va_end(ap);
}

char *strbuf_take(struct strbuf *sb)
{
	char *s = sb->failed ? NULL : sb->data;

	if (sb->failed)
		free(sb->data);
	else if (!s)
		s = strdup("");
	sb->data = NULL;
	sb->len = sb->cap = 0;
	sb->failed = 0;
	return s;
}
