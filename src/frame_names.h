/* SPDX-License-Identifier: MIT */
/* frame_names.h - the text of one frame in the folded output (docs/output-format.md):
 * native `symbol`, unresolved `libname+0xVADDR`, kernel `symbol_[k]`. */
#ifndef LUA_PERF_FRAME_NAMES_H
#define LUA_PERF_FRAME_NAMES_H

#include <stdint.h>

#include "src/mapped_files.h"
#include "src/strbuf.h"
#include "src/symbolize.h"

struct frame_namer {
	const struct mapped_files *files;
	struct symbol_table kernel;
	int kernel_state; /* 0 not loaded, 1 loaded, -1 unavailable */
};

void frame_namer_init(struct frame_namer *namer, const struct mapped_files *files);
void frame_namer_free(struct frame_namer *namer);
/* Append the name of a recorded user frame (bpf/unwind_abi.h encoding) to sb. */
void frame_name_user(struct frame_namer *namer, uint64_t frame, struct strbuf *sb);
/* Append the name of a kernel address, with the _[k] suffix. */
void frame_name_kernel(struct frame_namer *namer, uint64_t addr, struct strbuf *sb);

#endif
