/* SPDX-License-Identifier: MIT */
/* aggregate.h - from the kernel's samples to the outputs: name the frames of each stack drained
 * from the kernel and fold them (root first, flamegraph.pl's format) into the profile; at the
 * end, write the outputs (folded and/or SVG flame graph) and the summary on stderr. */
#ifndef LUA_PERF_AGGREGATE_H
#define LUA_PERF_AGGREGATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bpf/unwind_abi.h"
#include "src/folded_profile.h"
#include "src/session.h"

struct sample_bpf;
struct frame_namer;
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

/* The profile being built while the kernel's maps are drained. */
struct aggregation {
	struct frame_namer *namer;
	struct folded_profile profile;
};

/* A sample_fn (src/sample_drain.h): name the frames of count samples of key and add them to the
 * profile of the struct aggregation *aggregation. */
int aggregate_sample(void *aggregation, const struct sample_key *key, uint64_t count,
		     const struct stack_trace *trace);
/* While sampling: resolve the Lua frames of a stack BPF announces as new (stacks_fd: the map of
 * its generation), while their Protos are alive (they can be freed later). */
void aggregate_prefetch_lua_stack(struct frame_namer *namer, int stacks_fd, pid_t tgid,
				  uint64_t stack_id);
/* Sum the per-CPU counters (enum counter). */
int read_counters(struct sample_bpf *skel, uint64_t totals[CNT_COUNT]);

struct aggregate_input {
	struct folded_profile *profile; /* sorted here */
	const uint64_t *counters;        /* CNT_COUNT, read after the last drain */
	uint64_t drains;
	bool stats;
	double elapsed;      /* seconds of sampling */
	double cpu_at_start; /* lua-perf's CPU seconds when sampling started */
	unsigned frequency;
	struct outputs *outputs; /* opened before sampling started; written and closed here */
	uint32_t mappings_dropped;
	const struct process_tree *tree; /* names the processes in the per-process summary */
};

/* The summary on stderr, then every output. */
int aggregate_and_write(const struct aggregate_input *in);
/* How a stack ended, in words (enum unwind_end). */
const char *unwind_end_reason_name(uint32_t reason);

#endif
