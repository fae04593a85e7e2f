/* SPDX-License-Identifier: MIT */
#include "tests/fuzz/fuzz_elf_input.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/log.h"
#include "tests/fuzz/fuzz_harness.h"
#include "tests/unit/support/test_files.h"

int fuzz_elf_open(struct elf_image *img, const uint8_t *data, size_t size)
{
	lp_set_log_level(LOG_QUIET); /* hostile files are warned about: millions of lines */
	int fd = memfd_create("fuzz-elf", MFD_CLOEXEC);
	FUZZ_ASSERT(fd >= 0, "memfd_create: errno %d", errno);
	FUZZ_ASSERT(blob_write_fd(fd, data, size) == 0, "writing %zu bytes to the memfd", size);
	return elf_image_open_fd(img, fd, "fuzz-elf");
}

int fuzz_elf_open_with_cfi(struct elf_image *img, struct cfi_table *cfi, const uint8_t *data,
			   size_t size)
{
	int err = fuzz_elf_open(img, data, size);
	if (err == 0 && cfi_table_build(img, cfi) != 0)
		memset(cfi, 0, sizeof(*cfi));
	return err;
}

void fuzz_elf_close_with_cfi(struct elf_image *img, struct cfi_table *cfi)
{
	cfi_table_free(cfi);
	elf_image_close(img);
}
