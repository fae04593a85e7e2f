/* SPDX-License-Identifier: MIT */
/* off_cpu.h - lua-perf --off-cpu in userspace (the kernel side: bpf/lib/off_cpu.bpf.h): the
 * program chosen before load, the kernel's nanoseconds folded as microseconds, and the threads
 * still off CPU when the run ends counted up to its end. */
#ifndef LUA_PERF_OFF_CPU_H
#define LUA_PERF_OFF_CPU_H

#include <stdint.h>

#include "bpf/abi/unwind_abi.h"
#include "profiler/sample_folding.h"
#include "profiler/session.h"

struct sample_bpf;

/* Before load: the sched_switch program or the sampling one, and what each needs. */
int off_cpu_configure(struct sample_bpf *skel, const struct session_options *opts);

/* A sample_fn (profiler/sample_drain.h): nanoseconds off CPU of key added to the profile of the
 * struct aggregation *aggregation, in microseconds. */
int aggregate_off_cpu(void *aggregation, const struct sample_key *key, uint64_t nanoseconds,
		      const struct stack_trace *trace);

/* CLOCK_MONOTONIC in nanoseconds, the clock of bpf_ktime_get_ns. */
uint64_t monotonic_ns(void);

/* What the threads still off CPU at the end added. */
struct off_cpu_waiting {
	uint64_t threads;      /* counted up to the end */
	uint64_t short_blocks; /* off CPU for less than the minimum so far: like the kernel's */
	uint64_t short_ns;
};

/* Once the program is detached: the threads off CPU since before end_ns, their time up to it
 * (if at least min_block_ns) added to the profile. 0 or -errno. */
int off_cpu_count_waiting(struct sample_bpf *skel, struct aggregation *a, uint64_t end_ns,
			  uint64_t min_block_ns, struct off_cpu_waiting *out);

#endif
