/* SPDX-License-Identifier: MIT */
/* aggregate.h - after sampling: read the kernel's counts, symbolize the stacks once each, fold them
 * (root first, flamegraph.pl's format), write the output and the summary on stderr. */
#ifndef LUA_PERF_AGGREGATE_H
#define LUA_PERF_AGGREGATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct native_unwind_bpf;
struct frame_namer;
struct u64_set;
struct process_tree;

struct aggregate_input {
	struct native_unwind_bpf *skel;
	struct frame_namer *namer;
	bool stats;
	double elapsed;
	unsigned frequency;
	const char *output;     /* path, for messages */
	FILE *output_file;      /* opened before sampling started; closed here */
	uint32_t mappings_dropped;
	const struct process_tree *tree; /* names the processes in the per-process summary */
};

int aggregate_and_write(const struct aggregate_input *in);
#include <sys/types.h>

/* While sampling: resolve the Lua frames of one stack (BPF announces new ones) or of every stack
 * not seen before, while their Protos are alive (they can be freed later). */
void aggregate_prefetch_lua_stack(struct native_unwind_bpf *skel, struct frame_namer *namer,
				  struct u64_set *seen_stacks, pid_t tgid, uint64_t stack_id);
void aggregate_prefetch_lua(struct native_unwind_bpf *skel, struct frame_namer *namer,
			    struct u64_set *seen_stacks);

#endif
