/* SPDX-License-Identifier: MIT */
/* pprof_profile.h - the profile as a gzipped pprof Profile (github.com/google/pprof,
 * proto/profile.proto), for go tool pprof and profile stores (Pyroscope, Parca, ...). Built
 * from the same folded lines as the other outputs; how frames become Functions, Locations and
 * Mappings: docs/output-format.md. */
#ifndef LUA_PERF_PPROF_PROFILE_H
#define LUA_PERF_PPROF_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "output/flamegraph_svg.h"
#include "output/frame_origins.h"

/* A file the targets mapped, for the Mapping of its frames: those named `<basename>+0x<address>`,
 * and symbolized ones through their frame_origin. */
struct pprof_file {
	const char *basename;     /* NULL: no file (an unused index) */
	const char *path;         /* as the process sees it */
	const uint8_t *build_id;
	size_t build_id_len;      /* 0: none */
	uint64_t start, limit;    /* its loaded ELF addresses (the frames' addresses are ELF ones) */
	uint64_t file_offset;     /* of start */
};

struct pprof_info {
	int64_t time_nanos;     /* when sampling started, ns since the Unix epoch */
	int64_t duration_nanos; /* of sampling */
	int64_t period_nanos;   /* CPU time one sample stands for: 1e9 / frequency */
	bool off_cpu;           /* counts are microseconds off CPU (lua-perf --off-cpu): one sample
				 * type, off_cpu/microseconds, period 1; period_nanos unused */
	bool lua_lines;         /* the Lua frames' numbers are current lines (--lines), not the
				 * lines where the functions are defined (then in origins) */
	const struct pprof_file *files; /* indexed by frame_origin.file */
	size_t file_count;
	const struct frame_origins *origins; /* NULL: none noted */
};

/* The Profile encoded (not compressed) into *out (malloc'd, *len bytes). 0 or -ENOMEM. */
int pprof_encode(const struct folded_line *lines, size_t count, const struct pprof_info *info,
		 uint8_t **out, size_t *len);
/* The Profile gzipped to f (not closed). 0, -ENOMEM or -EIO. */
int pprof_write(FILE *f, const struct folded_line *lines, size_t count,
		const struct pprof_info *info);

#endif
