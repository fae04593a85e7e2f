/* SPDX-License-Identifier: MIT */
/* folded_input.h - a fuzzer's input as folded lines ("frames count", or just frames: 1 sample),
 * for the harnesses of the writers that take them (SVG, pprof). */
#ifndef LUA_PERF_FOLDED_INPUT_H
#define LUA_PERF_FOLDED_INPUT_H

#include <stddef.h>

#include "output/flamegraph_svg.h"

#include <stdint.h>

#define FOLDED_INPUT_MAX_LINES 4096

struct folded_input {
	char *text;                /* a copy of the input, cut into the lines' texts */
	struct folded_line *lines; /* at most FOLDED_INPUT_MAX_LINES */
	size_t count;
};

/* The lines of data[0..size) (FUZZ_ASSERT on out of memory). NUL bytes end a name early, as
 * they would a C string. */
void folded_input_read(struct folded_input *in, const uint8_t *data, size_t size);
void folded_input_free(struct folded_input *in);

#endif
