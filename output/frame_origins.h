/* SPDX-License-Identifier: MIT */
/* frame_origins.h - what a frame's folded text does not say and the pprof output wants: the file
 * a symbolized native frame is in (for its Mapping), and the line a Lua function is defined at
 * when its frames name the line running (--lines). The namer notes them by frame text as it
 * names frames. A text met with two origins (one symbol in two files, or two functions with one
 * name and line) keeps what they agree on only. Memory is bounded: past FRAME_ORIGINS_MAX_BYTES
 * of distinct texts (or max_bytes), new texts are not noted (their frames get no Mapping and no defined line),
 * counted in `dropped`. A zeroed struct is empty. */
#ifndef LUA_PERF_FRAME_ORIGINS_H
#define LUA_PERF_FRAME_ORIGINS_H

#include <stddef.h>
#include <stdint.h>

#include "output/string_ids.h"

#define FRAME_ORIGINS_MAX_BYTES ((size_t)64 << 20)
#define FRAME_ORIGIN_NO_FILE UINT32_MAX

struct frame_origin {
	uint32_t file;       /* index into the pprof output's files, or FRAME_ORIGIN_NO_FILE */
	uint32_t start_line; /* a Lua function's line defined; 0: unknown or not Lua */
};

struct frame_origins {
	size_t max_bytes;           /* the bound; 0: FRAME_ORIGINS_MAX_BYTES */
	struct string_ids texts;
	struct frame_origin *items; /* by the text's number in texts */
	size_t capacity;
	size_t text_bytes;
	uint64_t dropped;           /* texts not noted: past the bound, or out of memory */
};

/* Note that the frame text[0..len) has origin. */
void frame_origins_note(struct frame_origins *o, const char *text, size_t len,
			struct frame_origin origin);
/* The origin noted for text[0..len), or NULL. */
const struct frame_origin *frame_origins_find(const struct frame_origins *o, const char *text,
					      size_t len);
void frame_origins_free(struct frame_origins *o);

#endif
