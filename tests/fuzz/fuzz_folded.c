/* SPDX-License-Identifier: MIT */
/* fuzz_folded.c - the folded writer (output/folded_text.c) on hostile frame names: the input's
 * NUL-separated strings are the frames of one stack, each made a frame by folded_frame_append as
 * frame naming does; the stack is added to a profile (and its reverse, a second stack) and
 * written. Every written line must hold exactly as many frames as there were names and end with
 * " count": nothing a name holds can split a frame or a line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/folded_text.h"
#include "tests/fuzz/fuzz_harness.h"

#define MAX_NAMES 256

/* The names in data (NUL-separated), in names[]; how many. */
static size_t split_names(const char *text, size_t size, const char **names)
{
	size_t count = 0;
	for (const char *p = text; p <= text + size && count < MAX_NAMES; p += strlen(p) + 1)
		names[count++] = p;
	return count;
}

static char *fold(const char **names, size_t count, int step)
{
	struct strbuf sb = {0};
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			strbuf_append(&sb, ";");
		folded_frame_append(&sb, names[step > 0 ? i : count - 1 - i]);
	}
	return strbuf_take(&sb);
}

/* Every line of the written text: count frames, " N" at its end. */
static void check_lines(const char *out, size_t len, size_t frames, size_t want_lines)
{
	size_t lines = 0;
	for (const char *line = out; line < out + len; lines++) {
		const char *end = memchr(line, '\n', (size_t)(out + len - line));
		FUZZ_ASSERT(end != NULL, "the last line has no newline");
		const char *space = end;
		while (space > line && space[-1] != ' ')
			space--;
		FUZZ_ASSERT(space > line && strspn(space, "0123456789") == (size_t)(end - space),
			    "line %zu does not end with \" count\"", lines);
		size_t separators = 0;
		for (const char *c = line; c < space; c++)
			separators += *c == ';';
		FUZZ_ASSERT(separators + 1 == frames, "line %zu: %zu frames, want %zu", lines,
			    separators + 1, frames);
		line = end + 1;
	}
	FUZZ_ASSERT(lines == want_lines, "%zu lines, want %zu", lines, want_lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	const char **names = calloc(MAX_NAMES, sizeof(*names));
	FUZZ_ASSERT(text && names, "out of memory");
	memcpy(text, data, size);
	text[size] = '\0';
	size_t count = split_names(text, size, names);

	struct folded_profile profile = {0};
	char *forward = fold(names, count, 1), *backward = fold(names, count, -1);
	FUZZ_ASSERT(forward && backward, "out of memory");
	size_t distinct = strcmp(forward, backward) == 0 ? 1 : 2;
	FUZZ_ASSERT(folded_profile_add(&profile, 1, 1, 0, forward, 3, NULL) == 0, "adding a stack");
	FUZZ_ASSERT(folded_profile_add(&profile, 2, 2, 0, backward, 5, NULL) == 0, "adding a stack");
	folded_profile_sort(&profile);

	char *out = NULL;
	size_t out_len = 0;
	FILE *f = open_memstream(&out, &out_len);
	FUZZ_ASSERT(f != NULL, "open_memstream: errno %d", errno);
	FUZZ_ASSERT(folded_text_write(f, &profile) == 0, "folded_text_write");
	FUZZ_ASSERT(fclose(f) == 0, "fclose of the memory stream");
	check_lines(out, out_len, count, distinct);
	free(out);
	folded_profile_free(&profile);
	free(names);
	free(text);
	return 0;
}
