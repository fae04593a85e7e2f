/* SPDX-License-Identifier: MIT */
#include "profiler/off_cpu.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "profiler/frame_names.h"
#include "sample.skel.h"

int off_cpu_configure(struct sample_bpf *skel, const struct session_options *opts)
{
	bool off_cpu = opts->off_cpu && !opts->dump;

	skel->rodata->min_block_ns = (uint64_t)opts->min_block_us * 1000u;
	if (bpf_program__set_autoload(skel->progs.on_switch, off_cpu) != 0 ||
	    bpf_program__set_autoload(skel->progs.on_sample, !off_cpu) != 0 ||
	    (!off_cpu && bpf_map__set_max_entries(skel->maps.off_cpu_threads, 1) != 0)) {
		lp_error("cannot choose the BPF programs to load: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static struct stack_trace untraced; /* 2 KiB: off the stack */

/* trace without the kernel frames that ran the BPF program (between __schedule and the leaf's
 * reason frame): how many there are depends on the kernel and on the other probes attached to
 * the tracepoint, so they are found by name. */
static const struct stack_trace *without_tracing_frames(struct frame_namer *namer,
							 const struct stack_trace *trace)
{
	uint32_t count = recorded_frame_count(trace), first = 1;

	while (first < count && frame_namer_is_tracing(namer, trace->frames[first]))
		first++;
	if (first == 1)
		return trace;
	untraced.frames[0] = trace->frames[0];
	memcpy(&untraced.frames[1], &trace->frames[first], (count - first) * sizeof(trace->frames[0]));
	untraced.len = count - (first - 1);
	return &untraced;
}

int aggregate_off_cpu(void *aggregation, const struct sample_key *key, uint64_t nanoseconds,
		      const struct stack_trace *trace)
{
	struct aggregation *a = aggregation;
	uint64_t microseconds = (nanoseconds + 500) / 1000;

	if (microseconds == 0)
		return 0; /* --min-block-us 0 only: below what the outputs can show */
	return aggregate_sample(a, key, microseconds,
				trace ? without_tracing_frames(a->namer, trace) : NULL);
}

uint64_t monotonic_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int count_waiting_thread(struct aggregation *a, __u32 tid, const struct off_cpu_thread *t,
				uint64_t end_ns, uint64_t min_block_ns, struct off_cpu_waiting *out)
{
	uint64_t away = end_ns > t->start_ns ? end_ns - t->start_ns : 0;

	if (t->start_ns == 0)
		return 0; /* on a CPU */
	if (away < min_block_ns) {
		out->short_blocks++;
		out->short_ns += away;
		return 0;
	}
	struct sample_key key = {
		.tgid = t->tgid,
		.tid = tid,
		.stack_id = t->hash ? t->hash : 1, /* as bpf/lib/stack_record.bpf.h store_trace */
		.end_reason = t->end_reason,
	};
	out->threads++;
	return aggregate_off_cpu(a, &key, away, t->trace.len ? &t->trace : NULL);
}

int off_cpu_count_waiting(struct sample_bpf *skel, struct aggregation *a, uint64_t end_ns,
			  uint64_t min_block_ns, struct off_cpu_waiting *out)
{
	int fd = bpf_map__fd(skel->maps.off_cpu_threads);
	struct off_cpu_thread *thread = malloc(sizeof(*thread));
	__u32 key, next;
	int rc = 0;

	*out = (struct off_cpu_waiting){0};
	if (!thread)
		return -ENOMEM;
	/* the program is detached: the map no longer changes, and holds at most its size */
	for (unsigned i = 0; i < MAX_OFF_CPU_THREADS; i++) {
		if (bpf_map_get_next_key(fd, i ? &key : NULL, &next) != 0)
			break;
		key = next;
		if (bpf_map_lookup_elem(fd, &key, thread) != 0)
			continue;
		int one = count_waiting_thread(a, key, thread, end_ns, min_block_ns, out);
		if (rc == 0)
			rc = one;
	}
	free(thread);
	return rc;
}
