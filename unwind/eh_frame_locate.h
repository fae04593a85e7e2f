/* SPDX-License-Identifier: MIT */
/* eh_frame_locate.h - .eh_frame found without section headers, as the C runtime's unwinder finds
 * it (glibc/libgcc dl_iterate_phdr + unwind-dw2-fde-dip.c): the PT_GNU_EH_FRAME program header
 * names .eh_frame_hdr, whose eh_frame_ptr names .eh_frame (LSB "Exception Frame Header"). For
 * files whose section header table is missing (sstrip) or damaged. */
#ifndef LUA_PERF_EH_FRAME_LOCATE_H
#define LUA_PERF_EH_FRAME_LOCATE_H

#include <stddef.h>
#include <stdint.h>

#include "unwind/elf_image.h"

/* .eh_frame's address and a copy of its bytes (*data malloc()ed, *size bytes: its records up to
 * the zero terminator or the end of the file-backed segment, at most max_size). 0, -ENOENT (no
 * PT_GNU_EH_FRAME, or a header that names no .eh_frame), -EINVAL (a header lua-perf cannot
 * read) or -ENOMEM. */
int eh_frame_from_program_headers(const struct elf_image *img, size_t max_size, uint64_t *addr,
				  uint8_t **data, size_t *size);

#endif
