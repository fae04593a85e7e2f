/* SPDX-License-Identifier: MIT */
#include "profiler/sample_folding.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/strbuf.h"
#include "profiler/frame_names.h"
#include "sample.skel.h"

int read_counters(struct sample_bpf *skel, uint64_t totals[CNT_COUNT])
{
	int cpus = libbpf_num_possible_cpus();
	uint64_t *values;

	if (cpus <= 0)
		return -EINVAL;
	values = calloc((size_t)cpus, sizeof(*values));
	if (!values)
		return -ENOMEM;
	for (uint32_t key = 0; key < CNT_COUNT; key++) {
		totals[key] = 0;
		if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.counters), &key, values) != 0)
			continue;
		for (int cpu = 0; cpu < cpus; cpu++)
			totals[key] += values[cpu];
	}
	free(values);
	return 0;
}

static struct stack_trace prefetch_buffer; /* 2 KiB: keep it off the stack */

void aggregate_prefetch_lua_stack(struct frame_namer *namer, int stacks_fd, pid_t tgid,
				  uint64_t stack_id)
{
	if (bpf_map_lookup_elem(stacks_fd, &stack_id, &prefetch_buffer) != 0)
		return; /* drained already: named then */
	for (uint32_t i = 0; i < recorded_frame_count(&prefetch_buffer); i++)
		frame_namer_prefetch(namer, tgid, prefetch_buffer.frames[i]);
}

int aggregate_sample(void *aggregation, const struct sample_key *key, uint64_t count,
		     const struct stack_trace *trace)
{
	struct aggregation *a = aggregation;
	pid_t tgid = (pid_t)key->tgid, tid = (pid_t)key->tid;
	uint64_t id = trace ? key->stack_id : 0; /* not recorded: "[no stack]", as id 0 */
	size_t line = SIZE_MAX;

	if (stack_lines_find(&a->lines, tgid, id, &line)) {
		a->lines.hits++;
		return folded_profile_add_to_line(&a->profile, line, tgid, tid, key->end_reason,
						  count);
	}
	a->lines.misses++;
	struct strbuf sb = {0};
	uint64_t unnamed = a->namer->lua_unnamed;
	if (trace)
		frame_names_of_trace(a->namer, tgid, trace, &sb);
	if (sb.len == 0)
		strbuf_append(&sb, "[no stack]");
	int rc = folded_profile_add(&a->profile, tgid, tid, key->end_reason, strbuf_take(&sb),
				    count, &line);
	/* not the overflow line: its samples are counted as such when added by text */
	if (rc == 0 && line != SIZE_MAX && a->namer->lua_unnamed == unnamed && tgid > 0 &&
	    !folded_profile_is_overflow(&a->profile, line))
		stack_lines_add(&a->lines, tgid, id, line); /* out of memory: named again */
	return rc;
}

void aggregation_forget(struct aggregation *a, const pid_t *pids, size_t count)
{
	frame_namer_forget(a->namer, pids, count);
	stack_lines_forget(&a->lines, pids, count);
}
