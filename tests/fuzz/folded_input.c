/* SPDX-License-Identifier: MIT */
#include "tests/fuzz/folded_input.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_harness.h"

/* The count at the end of "frames 123" (the text then ends before the space), else 1. */
static uint64_t split_count(char *text)
{
	char *space = strrchr(text, ' ');
	if (!space || space[1] == '\0' || strspn(space + 1, "0123456789") != strlen(space + 1) ||
	    strlen(space + 1) > 9)
		return 1;
	uint64_t count = strtoull(space + 1, NULL, 10);
	*space = '\0';
	return count;
}

static size_t split_lines(char *text, size_t size, struct folded_line *lines)
{
	size_t count = 0;
	char *line = text;
	while (line < text + size && count < FOLDED_INPUT_MAX_LINES) {
		char *end = memchr(line, '\n', (size_t)(text + size - line));
		if (end)
			*end = '\0';
		lines[count].count = split_count(line);
		lines[count++].text = line;
		if (!end)
			break;
		line = end + 1;
	}
	return count;
}

void folded_input_read(struct folded_input *in, const uint8_t *data, size_t size)
{
	in->text = malloc(size + 1);
	in->lines = calloc(FOLDED_INPUT_MAX_LINES, sizeof(*in->lines));
	FUZZ_ASSERT(in->text && in->lines, "out of memory");
	memcpy(in->text, data, size);
	in->text[size] = '\0';
	in->count = split_lines(in->text, size, in->lines);
}

void folded_input_free(struct folded_input *in)
{
	free(in->lines);
	free(in->text);
}
