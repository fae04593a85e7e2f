/* SPDX-License-Identifier: MIT */
/* fuzz_svg.c - the SVG flame graph writer (output/flamegraph_svg.c) on hostile frame names: the
 * input's lines are folded lines ("frames count", or just frames: 1 sample), frame names of any
 * bytes (huge, control characters, invalid UTF-8, XML metacharacters). The SVG must be
 * well-formed XML (expat parses all of it). */
#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/flamegraph_svg.h"
#include "tests/fuzz/fuzz_harness.h"

#define MAX_LINES 4096

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

/* The input's lines (NUL bytes end a name early, as they would a C string), in lines[]. */
static size_t split_lines(char *text, size_t size, struct folded_line *lines)
{
	size_t count = 0;
	char *line = text;
	while (line < text + size && count < MAX_LINES) {
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

static void check_well_formed(const char *svg, size_t len)
{
	FUZZ_ASSERT(len < INT_MAX, "an SVG of %zu bytes", len);
	XML_Parser parser = XML_ParserCreate(NULL);
	FUZZ_ASSERT(parser != NULL, "XML_ParserCreate");
	enum XML_Status status = XML_Parse(parser, svg, (int)len, 1);
	FUZZ_ASSERT(status == XML_STATUS_OK, "the SVG is not well-formed XML: %s at line %lu column %lu",
		    XML_ErrorString(XML_GetErrorCode(parser)),
		    (unsigned long)XML_GetCurrentLineNumber(parser),
		    (unsigned long)XML_GetCurrentColumnNumber(parser));
	XML_ParserFree(parser);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct folded_line *lines = calloc(MAX_LINES, sizeof(*lines));
	FUZZ_ASSERT(text && lines, "out of memory");
	memcpy(text, data, size);
	text[size] = '\0';
	size_t count = split_lines(text, size, lines);

	char *svg = NULL;
	size_t svg_len = 0;
	FILE *out = open_memstream(&svg, &svg_len);
	FUZZ_ASSERT(out != NULL, "open_memstream: errno %d", errno);
	const struct flamegraph_info info = {.targets = "fuzz <&\"'>", .duration = 1, .frequency = 99};
	int err = flamegraph_svg_write(out, lines, count, &info, NULL);
	FUZZ_ASSERT(fclose(out) == 0, "fclose of the memory stream");
	FUZZ_ASSERT(err == 0, "flamegraph_svg_write: %d", err); /* counts < 1e9: no overflow */
	check_well_formed(svg, svg_len);
	free(svg);
	free(lines);
	free(text);
	return 0;
}
