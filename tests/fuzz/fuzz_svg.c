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
#include "tests/fuzz/folded_input.h"
#include "tests/fuzz/fuzz_harness.h"

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
	struct folded_input in;

	folded_input_read(&in, data, size);

	char *svg = NULL;
	size_t svg_len = 0;
	FILE *out = open_memstream(&svg, &svg_len);
	FUZZ_ASSERT(out != NULL, "open_memstream: errno %d", errno);
	const struct flamegraph_info info = {.targets = "fuzz <&\"'>", .duration = 1, .frequency = 99};
	int err = flamegraph_svg_write(out, in.lines, in.count, &info, NULL);
	FUZZ_ASSERT(fclose(out) == 0, "fclose of the memory stream");
	FUZZ_ASSERT(err == 0, "flamegraph_svg_write: %d", err); /* counts < 1e9: no overflow */
	check_well_formed(svg, svg_len);
	free(svg);
	folded_input_free(&in);
	return 0;
}
