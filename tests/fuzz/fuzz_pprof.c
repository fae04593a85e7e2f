/* SPDX-License-Identifier: MIT */
/* fuzz_pprof.c - the pprof writer (output/pprof_profile.c, output/pprof_frame.c,
 * output/frame_origins.c) on hostile frame names: the input's lines are folded lines
 * (tests/fuzz/folded_input.h), frame names of any bytes, shaped like any kind of frame or none,
 * with origins noted for them (files known, missing or out of range). The encoding must succeed and be
 * well-formed protobuf: every field of the Profile a known wire type whose length stays inside
 * the message, every string_table entry printable UTF-8, string_table[0] empty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "output/pprof_profile.h"
#include "output/utf8_text.h"
#include "tests/fuzz/folded_input.h"
#include "tests/fuzz/fuzz_harness.h"

#define STRING_TABLE_FIELD 6

static uint64_t read_varint(const uint8_t *p, size_t len, size_t *at)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		FUZZ_ASSERT(*at < len, "a varint runs past the end");
		uint8_t byte = p[(*at)++];

		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80))
			return v;
	}
	FUZZ_ASSERT(0, "a varint longer than 10 bytes");
	return 0;
}

static void check_string(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = utf8_printable_length(s + i, len - i);

		FUZZ_ASSERT(n > 0, "a string_table entry with a non-printable byte at %zu", i);
		i += n;
	}
}

static void check_profile(const uint8_t *p, size_t len)
{
	size_t at = 0, strings = 0;

	while (at < len) {
		uint64_t tag = read_varint(p, len, &at);

		if ((tag & 7) == 0) {
			read_varint(p, len, &at);
			continue;
		}
		FUZZ_ASSERT((tag & 7) == 2, "wire type %u", (unsigned)(tag & 7));
		uint64_t n = read_varint(p, len, &at);
		FUZZ_ASSERT(n <= len - at, "a field of %llu bytes past the end", (unsigned long long)n);
		if (tag >> 3 == STRING_TABLE_FIELD) {
			FUZZ_ASSERT(strings > 0 || n == 0, "string_table[0] is not empty");
			check_string(p + at, (size_t)n);
			strings++;
		}
		at += (size_t)n;
	}
	FUZZ_ASSERT(strings > 0, "no string_table");
}

/* Origins for the frames of the lines as the namer would note them, taken from the frame's
 * bytes: a file among files (or beyond them, or none), a line defined; some frames twice. */
static void note_origins(struct frame_origins *o, const struct folded_input *in)
{
	for (size_t i = 0; i < in->count; i++) {
		for (const char *frame = in->lines[i].text;;) {
			size_t len = strcspn(frame, ";");
			uint32_t byte = len ? (uint8_t)frame[0] : 0;

			frame_origins_note(o, frame, len, (struct frame_origin){
				.file = byte % 5 == 4 ? FRAME_ORIGIN_NO_FILE : byte % 5, .start_line = byte});
			if (frame[len] == '\0')
				break;
			frame += len + 1;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pprof_file files[] = {
		{.basename = "lua5.4", .path = "/usr/bin/lua5.4", .start = 0x1000, .limit = 0x9000},
		{0}, /* an index with no file */
		{.basename = "libc.so.6", .path = "/lib/libc.so.6"},
	};
	struct folded_input in;
	struct frame_origins origins = {.max_bytes = 4096};

	folded_input_read(&in, data, size);
	note_origins(&origins, &in);
	const struct pprof_info info = {.time_nanos = 1, .duration_nanos = 1, .period_nanos = 1000,
					.lua_lines = size & 1, .files = files, .file_count = 3,
					.origins = &origins};
	uint8_t *out = NULL;
	size_t out_len = 0;

	FUZZ_ASSERT(pprof_encode(in.lines, in.count, &info, &out, &out_len) == 0, "pprof_encode");
	check_profile(out, out_len);
	free(out);
	frame_origins_free(&origins);
	folded_input_free(&in);
	return 0;
}
