/* SPDX-License-Identifier: MIT */
/* pprof_files.h - the files the targets mapped, as the pprof output's Mappings describe them. */
#ifndef LUA_PERF_PPROF_FILES_H
#define LUA_PERF_PPROF_FILES_H

#include <stddef.h>

#include "output/pprof_profile.h"
#include "profiler/mapped_files.h"

/* One pprof_file per file of mf, at its file id (pointing into mf, which must outlive *out;
 * free(*out)). 0 or -ENOMEM. */
int pprof_files_of(const struct mapped_files *mf, struct pprof_file **out, size_t *count);

#endif
