/* SPDX-License-Identifier: MIT */
/* session.h - one profiling run: load the BPF program, publish the targets' mappings and unwind
 * tables, sample with cpu-clock perf events on every CPU (or, --off-cpu, follow the targets'
 * context switches), keep mappings current (dlopen) and the
 * targets too (each -p PID with all its descendants: proc/process_tree.h), stop on signal /
 * duration / exit of every target, then aggregate and write the output. Or, for `lua-perf dump`,
 * the same start, then one stack of every thread (profiler/thread_dump.h). */
#ifndef LUA_PERF_SESSION_H
#define LUA_PERF_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "output/output_files.h"

struct session_options {
	pid_t *pids;            /* roots: each is profiled with all its descendants */
	size_t pid_count;
	char **command;         /* or lua-perf -- CMD: its argv (NULL-terminated), started and
				 * profiled with its descendants until it exits */
	unsigned frequency;     /* Hz, per CPU */
	double duration;        /* seconds; 0 = until SIGINT/SIGTERM */
	struct output_spec *outputs; /* at least one; malloc'ed */
	size_t output_count;
	bool kernel_stacks;
	bool stats;             /* per-reason unwind failure counts in the summary */
	bool lua_lines;         /* Lua frames show the current line, not the line defined */
	bool off_cpu;           /* --off-cpu: time off CPU by stack instead of samples */
	unsigned min_block_us;  /* --off-cpu: shorter times off CPU are only counted */
	bool dump;              /* lua-perf dump: print every thread's current stack once (no
				 * outputs); duration = the longest wait for them */
	const char *table_cache; /* directory of compiled unwind tables, NULL: none */
	bool table_cache_chosen; /* by the user (LUA_PERF_TABLE_CACHE): say why it is unusable */
};

/* Returns the process exit code: 0 on success. Errors are reported on stderr. */
int session_run(const struct session_options *opts);

#endif
