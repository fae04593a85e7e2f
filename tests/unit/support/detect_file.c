/* SPDX-License-Identifier: MIT */
#include "tests/unit/support/detect_file.h"

#include <string.h>

#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

int lua_detect_file(const char *path, struct lua_runtime *puc, struct luajit_runtime *jit,
		    enum lua_detect_result *result, const char **reason)
{
	struct elf_image img;
	if (elf_image_open(&img, path) != 0)
		return -1;
	struct cfi_table cfi;
	if (cfi_table_build(&img, &cfi) != 0)
		memset(&cfi, 0, sizeof(cfi)); /* detection must cope with no CFI */
	*result = puc ? lua_runtime_detect(&img, &cfi, puc, reason)
		      : luajit_detect(&img, &cfi, jit, reason);
	cfi_table_free(&cfi);
	elf_image_close(&img);
	return 0;
}
