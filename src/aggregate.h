/* SPDX-License-Identifier: MIT */
/* aggregate.h - after sampling: read the kernel's counts, symbolize the stacks once each, fold them
 * (root first, flamegraph.pl's format), write the outputs (folded and/or SVG flame graph) and the
 * summary on stderr. */
#ifndef LUA_PERF_AGGREGATE_H
#define LUA_PERF_AGGREGATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "src/session.h"

struct sample_bpf;
struct frame_namer;
struct u64_set;
struct process_tree;

/* The output files, opened before sampling so that an unwritable path fails before any BPF work.
 * Nothing is truncated until the end: a run that fails leaves existing files as they were. */
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

/* Open every output of opts. On failure: one error line naming the path, nothing left behind
 * (files it created are removed), -1. */
int outputs_open(struct outputs *outs, const struct session_options *opts);
/* The run ends without output: close the files, remove those outputs_open created. */
void outputs_discard(struct outputs *outs);

struct aggregate_input {
	struct sample_bpf *skel;
	struct frame_namer *namer;
	bool stats;
	double elapsed;
	unsigned frequency;
	struct outputs *outputs; /* opened before sampling started; written and closed here */
	uint32_t mappings_dropped;
	const struct process_tree *tree; /* names the processes in the per-process summary */
};

int aggregate_and_write(const struct aggregate_input *in);
/* How a stack ended, in words (enum unwind_end). */
const char *unwind_end_reason_name(uint32_t reason);
#include <sys/types.h>

/* While sampling: resolve the Lua frames of one stack (BPF announces new ones) or of every stack
 * not seen before, while their Protos are alive (they can be freed later). */
void aggregate_prefetch_lua_stack(struct sample_bpf *skel, struct frame_namer *namer,
				  struct u64_set *seen_stacks, pid_t tgid, uint64_t stack_id);
void aggregate_prefetch_lua(struct sample_bpf *skel, struct frame_namer *namer,
			    struct u64_set *seen_stacks);

#endif
