/* SPDX-License-Identifier: MIT */
#include "unwind/frame_sections.h"

#include <errno.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>

#include <libdwarf/dwarf.h>

#include "lib/log.h"
#include "unwind/eh_frame_locate.h"

/* Frame sections larger than this are refused (libc's .eh_frame is 0.2 MiB). */
#define MAX_FRAME_SECTION_SIZE (256u << 20)

static int obj_get_section_info(void *obj, Dwarf_Half index, Dwarf_Obj_Access_Section *out,
				int *error)
{
	const struct frame_object *fo = obj;
	(void)error;
	if (index >= fo->count)
		return DW_DLV_NO_ENTRY;
	const struct frame_section *s = &fo->sections[index];
	memset(out, 0, sizeof(*out));
	out->addr = s->addr;
	out->type = index == 0 ? SHT_NULL : SHT_PROGBITS;
	out->size = s->size;
	out->name = s->name;
	return DW_DLV_OK;
}

static Dwarf_Endianness obj_get_byte_order(void *obj)
{
	(void)obj;
	return DW_OBJECT_LSB;
}

static Dwarf_Small obj_get_length_size(void *obj)
{
	(void)obj;
	return 4;
}

static Dwarf_Small obj_get_pointer_size(void *obj)
{
	(void)obj;
	return 8;
}

static Dwarf_Unsigned obj_get_section_count(void *obj)
{
	return ((const struct frame_object *)obj)->count;
}

static int obj_load_section(void *obj, Dwarf_Half index, Dwarf_Small **data, int *error)
{
	const struct frame_object *fo = obj;
	(void)error;
	if (index == 0 || index >= fo->count)
		return DW_DLV_NO_ENTRY;
	*data = fo->sections[index].data;
	return DW_DLV_OK;
}

const Dwarf_Obj_Access_Methods frame_object_methods = {
	.get_section_info = obj_get_section_info,
	.get_byte_order = obj_get_byte_order,
	.get_length_size = obj_get_length_size,
	.get_pointer_size = obj_get_pointer_size,
	.get_section_count = obj_get_section_count,
	.load_section = obj_load_section,
	.relocate_a_section = NULL,
};

/* Read one frame section through libelf and register it; absent or unusable sections are skipped
 * (problem says why when the file is at fault). */
static void add_frame_section(struct frame_object *fo, const struct elf_image *img,
			      struct cfi_problem *problem, const char *name, enum frame_source source)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = elf_image_section(img, name, &shdr);
	if (!scn || shdr.sh_type == SHT_NOBITS || shdr.sh_size == 0)
		return;
	if (shdr.sh_flags & SHF_COMPRESSED) {
		/* Check the claimed size before libelf allocates it (gABI "Compressed Sections"). */
		GElf_Chdr chdr;
		if (!gelf_getchdr(scn, &chdr)) {
			cfi_problem_note(problem, "%s has a bad compression header (%s)", name, elf_errmsg(-1));
			return;
		}
		if (chdr.ch_size > MAX_FRAME_SECTION_SIZE) {
			cfi_problem_note(problem, "%s is %llu bytes uncompressed, more than the %u accepted",
					 name, (unsigned long long)chdr.ch_size, MAX_FRAME_SECTION_SIZE);
			return;
		}
		if (elf_compress(scn, 0, 0) < 0) {
			cfi_problem_note(problem, "%s cannot be decompressed (%s)", name, elf_errmsg(-1));
			return;
		}
	}
	/* elf_getdata checks the section against the file size. */
	Elf_Data *data = elf_getdata(scn, NULL);
	if (!data || !data->d_buf || data->d_size == 0) {
		cfi_problem_note(problem, "%s cannot be read (%s)", name, elf_errmsg(-1));
		return;
	}
	if (data->d_size > MAX_FRAME_SECTION_SIZE) {
		cfi_problem_note(problem, "%s is %zu bytes, more than the %u accepted", name, data->d_size,
				 MAX_FRAME_SECTION_SIZE);
		return;
	}
	unsigned index = fo->count++;
	fo->sections[index] = (struct frame_section){
		.name = name, .addr = shdr.sh_addr, .size = data->d_size, .data = data->d_buf};
	fo->index_of[source] = (int)index;
}

/* No .eh_frame section (no section headers, or damaged ones): .eh_frame as the C runtime finds
 * it, through PT_GNU_EH_FRAME (unwind/eh_frame_locate.h). */
static void add_eh_frame_from_program_headers(struct frame_object *fo, const struct elf_image *img,
					      struct cfi_problem *problem)
{
	uint64_t addr;
	uint8_t *data;
	size_t size;
	int err = eh_frame_from_program_headers(img, MAX_FRAME_SECTION_SIZE, &addr, &data, &size);
	if (err == -ENOENT)
		return;
	if (err) {
		cfi_problem_note(problem, "no .eh_frame section, and its PT_GNU_EH_FRAME header is unusable (%s)",
				 strerror(-err));
		return;
	}
	lp_debug("%s: .eh_frame found through PT_GNU_EH_FRAME (%zu bytes)", img->name, size);
	unsigned index = fo->count++;
	fo->sections[index] = (struct frame_section){
		.name = ".eh_frame", .addr = addr, .size = size, .data = data, .owned = data};
	fo->index_of[SRC_EH_FRAME] = (int)index;
}

void frame_object_collect(struct frame_object *fo, const struct elf_image *img,
			  struct cfi_problem *problem)
{
	memset(fo, 0, sizeof(*fo));
	fo->sections[0].name = "";
	fo->count = 1;
	add_frame_section(fo, img, problem, ".eh_frame", SRC_EH_FRAME);
	if (fo->index_of[SRC_EH_FRAME] == 0)
		add_eh_frame_from_program_headers(fo, img, problem);
	add_frame_section(fo, img, problem, ".debug_frame", SRC_DEBUG_FRAME);
}

void frame_object_free(struct frame_object *fo)
{
	for (unsigned i = 0; i < fo->count; i++)
		free(fo->sections[i].owned);
	memset(fo, 0, sizeof(*fo));
}
