/* SPDX-License-Identifier: MIT */
/* fuzz_elf_image.c - the ELF image reader (unwind/elf_image.c): file header, program and section
 * headers, notes and build-id, .gnu_debuglink. Any input either is refused or gives an image whose
 * accessors stay within it. */
#include <string.h>

#include "tests/fuzz/fuzz_elf_input.h"
#include "tests/fuzz/fuzz_harness.h"

static void read_each_segment(const struct elf_image *img)
{
	for (size_t i = 0; i < img->load_count; i++) {
		const struct elf_segment *seg = &img->loads[i];
		uint64_t vaddr;
		uint8_t buf[64];

		if (elf_image_offset_to_vaddr(img, seg->offset, &vaddr) == 0)
			FUZZ_ASSERT(elf_image_read_vaddr(img, vaddr, buf, sizeof(buf)) <= sizeof(buf),
				    "segment %zu", i);
		FUZZ_ASSERT(elf_image_read_vaddr(img, seg->vaddr + seg->memsz - 1, buf, sizeof(buf)) <=
				    sizeof(buf), "end of segment %zu", i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_image img;
	if (fuzz_elf_open(&img, data, size) != 0)
		return 0;
	FUZZ_ASSERT(img.id_len > 0 && img.id_len <= ELF_ID_MAX, "id_len %zu", img.id_len);
	char id[2 * ELF_ID_MAX + 1];
	elf_image_id_hex(&img, id, sizeof(id));
	FUZZ_ASSERT(strlen(id) == 2 * img.id_len, "id \"%s\" for %zu bytes", id, img.id_len);
	read_each_segment(&img);
	const char *debuglink = elf_image_debuglink(&img);
	FUZZ_ASSERT(!debuglink || strchr(debuglink, '/') == NULL,
		    "a debug link naming a path: %s", debuglink);
	GElf_Shdr shdr;
	elf_image_section(&img, ".eh_frame", &shdr);
	elf_image_close(&img);
	return 0;
}
