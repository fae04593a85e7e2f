/* SPDX-License-Identifier: MIT */
/* fuzz_cfi.c - the call frame information compiler (unwind/cfi_compile.c: .eh_frame,
 * .eh_frame_hdr and .debug_frame through libdwarf) on any ELF input: it fails cleanly or gives a
 * table with the shape the BPF unwinder relies on (tests/unit/support/cfi_table_shape.h). */
#include "tests/fuzz/fuzz_elf_input.h"
#include "tests/fuzz/fuzz_harness.h"
#include "tests/unit/support/cfi_table_shape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_image img;
	if (fuzz_elf_open(&img, data, size) != 0)
		return 0;
	struct cfi_table table;
	int err = cfi_table_build(&img, &table);
	char why[160];
	if (err == 0) {
		FUZZ_ASSERT(!cfi_table_shape_error(&table, why, sizeof(why)), "%s", why);
		for (size_t i = 1; i < table.function_count; i++)
			FUZZ_ASSERT(table.function_starts[i - 1] < table.function_starts[i],
				    "function starts %zu and %zu out of order", i - 1, i);
		cfi_table_free(&table);
	} else {
		FUZZ_ASSERT(err < 0 && table.count == 0 && table.rows == NULL,
			    "a failed build (%d) left %zu rows", err, table.count);
	}
	elf_image_close(&img);
	return 0;
}
