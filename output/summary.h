/* SPDX-License-Identifier: MIT */
/* summary.h - the summary of a run on stderr: samples and losses, lua-perf's own cost, samples
 * per process, and with --stats how stacks ended and the BPF counters. In --off-cpu runs: the
 * time off CPU, the blocks followed and dropped, the time per process and by reason. */
#ifndef LUA_PERF_SUMMARY_H
#define LUA_PERF_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>

#include "bpf/abi/unwind_abi.h"
#include "output/folded_profile.h"

struct process_tree;

struct run_summary {
	const uint64_t *counters; /* CNT_COUNT, read after the last drain */
	uint64_t drains;
	bool stats;
	double elapsed;      /* seconds of sampling */
	double cpu_at_start; /* lua-perf's CPU seconds when sampling started */
	unsigned frequency;
	uint32_t mappings_dropped;
	uint64_t skipped_runs; /* the kernel did not run the program: it ran on that CPU already */
	uint64_t drained;      /* the counts the drains took: samples, or ns off CPU */
	const struct process_tree *tree; /* names the processes in the per-process summary */
	bool off_cpu;          /* --off-cpu: the profile counts microseconds off CPU, not samples */
	unsigned min_block_us; /* --off-cpu: shorter blocks were not counted (CNT_OFF_CPU_SHORT) */
};

/* res sorted (folded_profile_sort_processes: the per-process lines come in its order). */
void summary_print(const struct run_summary *in, const struct folded_profile *res);
/* How a stack ended, in words (enum unwind_end). */
const char *unwind_end_reason_name(uint32_t reason);

#endif
