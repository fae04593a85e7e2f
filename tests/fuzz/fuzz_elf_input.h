/* SPDX-License-Identifier: MIT */
/* fuzz_elf_input.h - the fuzzer's bytes as an ELF file lua-perf opens: a memfd holding them, as
 * lua-perf holds the vdso, opened through elf_image_open_fd like any file of a target. */
#ifndef LUA_PERF_FUZZ_ELF_INPUT_H
#define LUA_PERF_FUZZ_ELF_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

/* 0 and img open, or a negative errno (the input is not an ELF file lua-perf accepts). */
int fuzz_elf_open(struct elf_image *img, const uint8_t *data, size_t size);

/* The same, with the file's call frame table as lua-perf compiles it (zeroed when that fails:
 * what follows must cope with no CFI). 0, or a negative errno with nothing to close. */
int fuzz_elf_open_with_cfi(struct elf_image *img, struct cfi_table *cfi, const uint8_t *data,
			   size_t size);
void fuzz_elf_close_with_cfi(struct elf_image *img, struct cfi_table *cfi);

#endif
