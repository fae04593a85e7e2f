/* SPDX-License-Identifier: MIT */
/* output_files.h - the files a run writes (docs/output-format.md): folded stacks, an SVG flame
 * graph or a gzipped pprof profile. Opened before sampling so that an unwritable path fails
 * before any BPF work; nothing is truncated until the end: a run that fails leaves existing
 * files as they were. */
#ifndef LUA_PERF_OUTPUT_FILES_H
#define LUA_PERF_OUTPUT_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "output/folded_profile.h"
#include "output/pprof_profile.h"

enum output_format { OUTPUT_FOLDED, OUTPUT_SVG, OUTPUT_PPROF };

/* One file to write at the end. */
struct output_spec {
	const char *path;
	enum output_format format;
};

struct output_file {
	const struct output_spec *spec;
	FILE *file;
	bool created;  /* did not exist: removed again if the run ends without writing */
};

struct outputs {
	struct output_file *files;
	size_t count;
	char *targets; /* for the flame graph's title: "comm (PID n), ...", read when opening */
};

/* What the flame graph's title names: the command lua-perf started (NULL-terminated argv, or
 * NULL) and the PIDs given. */
struct output_targets {
	char *const *command;
	const pid_t *pids;
	size_t pid_count;
};

/* The run the profile comes from, for the flame graph and the pprof profile. */
struct output_run {
	double elapsed;      /* seconds of sampling */
	unsigned frequency;  /* Hz */
	bool lua_lines;      /* --lines: Lua frames name their current line */
	bool off_cpu;        /* counts are microseconds off CPU (--off-cpu), not samples */
	const struct pprof_file *files; /* the files mapped, for the pprof output's mappings */
	size_t file_count;
	const struct frame_origins *origins; /* of the frames, for the pprof output */
};

/* Open the count outputs of specs (which must outlive outs). On failure: one error line naming
 * the path, nothing left behind (files it created are removed), -1. */
int outputs_open(struct outputs *outs, const struct output_spec *specs, size_t count,
		 const struct output_targets *targets);
/* The run ends without output: close the files, remove those outputs_open created. */
void outputs_discard(struct outputs *outs);
/* Write res to every output (each one even if another fails), say so on stderr, and close them:
 * 0 or the first error. */
int outputs_write(struct outputs *outs, const struct folded_profile *res,
		  const struct output_run *run);

#endif
