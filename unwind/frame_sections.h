/* SPDX-License-Identifier: MIT */
/* frame_sections.h - the call frame sections of an ELF file (.eh_frame, .debug_frame), read
 * through libelf (bounds-checked) and exposed to libdwarf through its object access interface
 * (dwarf_object_init_b), so that libdwarf only ever sees section contents. Without an .eh_frame
 * section (no or damaged section headers), .eh_frame is found through PT_GNU_EH_FRAME
 * (unwind/eh_frame_locate.h). */
#ifndef LUA_PERF_FRAME_SECTIONS_H
#define LUA_PERF_FRAME_SECTIONS_H

#include <stdint.h>

#include <libdwarf/libdwarf.h>

#include "unwind/cfi_problem.h"
#include "unwind/elf_image.h"

enum frame_source { SRC_EH_FRAME = 0, SRC_DEBUG_FRAME = 1, SRC_COUNT = 2 };

struct frame_section {
	const char *name;
	uint64_t addr;
	uint64_t size;
	uint8_t *data; /* owned by libelf, valid while the elf_image is open, */
	uint8_t *owned; /* or a copy of ours (found through the program headers) */
};

/* Index 0 is the reserved empty ELF section: libdwarf skips it by convention
 * (libdwarf.h, dwarf_object_init: "we will index beginning at 1"). */
struct frame_object {
	struct frame_section sections[1 + SRC_COUNT];
	unsigned count;
	int index_of[SRC_COUNT]; /* section index per source, 0 when absent */
};

/* Dwarf_Obj_Access_Interface methods over a struct frame_object. */
extern const Dwarf_Obj_Access_Methods frame_object_methods;

/* The frame sections of img into *fo (count 1: none). Sections that are absent or unusable are
 * skipped (noted in problem when the file is at fault). */
void frame_object_collect(struct frame_object *fo, const struct elf_image *img,
			  struct cfi_problem *problem);
void frame_object_free(struct frame_object *fo);

#endif
