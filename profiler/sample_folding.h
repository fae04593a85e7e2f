/* SPDX-License-Identifier: MIT */
/* sample_folding.h - from the kernel's samples to the profile: name the frames of each stack
 * drained from the kernel and fold them (root first, flamegraph.pl's format) into the profile. */
#ifndef LUA_PERF_SAMPLE_FOLDING_H
#define LUA_PERF_SAMPLE_FOLDING_H

#include <stdint.h>
#include <sys/types.h>

#include "bpf/abi/unwind_abi.h"
#include "output/folded_profile.h"
#include "output/frame_origins.h"
#include "profiler/stack_lines.h"

struct sample_bpf;
struct frame_namer;

/* The profile being built while the kernel's maps are drained. */
struct aggregation {
	struct frame_namer *namer;
	struct folded_profile profile;
	struct stack_lines lines;     /* stacks named already, by process */
	struct frame_origins origins; /* noted by the namer when a pprof output is written */
};

/* A sample_fn (profiler/sample_drain.h): name the frames of count samples of key and add them to
 * the profile of the struct aggregation *aggregation. */
int aggregate_sample(void *aggregation, const struct sample_key *key, uint64_t count,
		     const struct stack_trace *trace);
/* The processes have gone (exited, or exec'd): forget what was learnt about them. */
void aggregation_forget(struct aggregation *a, const pid_t *pids, size_t count);
/* While sampling: resolve the Lua frames of a stack BPF announces as new (stacks_fd: the map of
 * its generation), while their Protos are alive (they can be freed later). */
void aggregate_prefetch_lua_stack(struct frame_namer *namer, int stacks_fd, pid_t tgid,
				  uint64_t stack_id);
/* Sum the per-CPU counters (enum counter). */
int read_counters(struct sample_bpf *skel, uint64_t totals[CNT_COUNT]);

#endif
