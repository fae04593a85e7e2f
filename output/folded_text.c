/* SPDX-License-Identifier: MIT */
#include "output/folded_text.h"

#include <errno.h>

void folded_frame_append(struct strbuf *sb, const char *name)
{
	size_t start = sb->len;

	strbuf_append(sb, name);
	for (size_t i = start; !sb->failed && i < sb->len; i++)
		if (sb->data[i] == ';' || sb->data[i] == '\n' || sb->data[i] == '\r')
			sb->data[i] = ':';
}

int folded_text_write(FILE *f, const struct folded_profile *profile)
{
	for (size_t i = 0; i < profile->count; i++)
		fprintf(f, "%s %llu\n", profile->lines[i].text,
			(unsigned long long)profile->lines[i].count);
	return ferror(f) ? -EIO : 0;
}
