/* SPDX-License-Identifier: MIT */
#include "profiler/pprof_files.h"

#include <errno.h>
#include <stdlib.h>

/* The range of the file's load segments, in ELF addresses: frames name ELF addresses, the same in
 * every process, so the Mapping is the file's own address space. */
static void describe(const struct mapped_file *f, struct pprof_file *out)
{
	*out = (struct pprof_file){
		.basename = f->basename,
		.path = f->name,
		.build_id = f->build_id,
		.build_id_len = f->build_id_len,
	};
	for (size_t i = 0; i < f->load_count; i++) {
		const struct elf_segment *seg = &f->loads[i];

		if (i == 0 || seg->vaddr < out->start) {
			out->start = seg->vaddr;
			out->file_offset = seg->offset;
		}
		if (seg->vaddr + seg->memsz > out->limit)
			out->limit = seg->vaddr + seg->memsz;
	}
}

int pprof_files_of(const struct mapped_files *mf, struct pprof_file **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	if (mf->count == 0)
		return 0;
	*out = calloc(mf->count, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (uint32_t id = 0; id < mf->count; id++) /* unnamed ones stay zeroed: no file */
		if (mf->files[id].name)
			describe(&mf->files[id], &(*out)[id]);
	*count = mf->count;
	return 0;
}
