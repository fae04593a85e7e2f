/* SPDX-License-Identifier: MIT */
#include "output/summary.h"

#include <stdio.h>
#include <sys/resource.h>

#include "lib/clocks.h"
#include "lib/log.h"
#include "lib/percent.h"
#include "proc/process_tree.h"

const char *unwind_end_reason_name(uint32_t reason)
{
	return reason < END_REASON_COUNT ? unwind_end_names[reason] : "unknown";
}

#define PROCESS_LINES 16 /* processes listed in the summary; the rest in one "+N more" line */

static void print_process_summary(const struct run_summary *in,
				  const struct folded_profile *res)
{
	const struct process_tree *tree = in->tree;
	size_t exited = 0;
	uint64_t rest = 0;

	for (size_t i = 0; i < tree->count; i++)
		exited += !tree->procs[i].live;
	fprintf(stderr, "lua-perf: %zu process%s followed (%zu exited during the run)\n", tree->count,
		tree->count == 1 ? "" : "es", exited);
	if (tree->refused_count)
		fprintf(stderr, "lua-perf: %zu processes not profiled: more than %d at once (their "
			"descendants were not looked for)\n", tree->refused_count, MAX_TARGET_PROCS);
	if (res->process_count == 0)
		return;
	fprintf(stderr, "lua-perf: samples per process (PID, samples, share, command):\n");
	for (size_t i = 0; i < res->process_count; i++) {
		const struct process_samples *p = &res->processes[i];
		const struct tree_process *tp = process_tree_find(tree, p->tgid);

		if (i >= PROCESS_LINES) {
			rest += p->samples;
			continue;
		}
		fprintf(stderr, "  %8d %10llu %5.1f%%  %s\n", (int)p->tgid,
			(unsigned long long)p->samples, percent(p->samples, res->samples),
			tp ? tp->comm : "?");
	}
	if (res->process_count > PROCESS_LINES)
		fprintf(stderr, "  +%zu more processes: %llu samples\n",
			res->process_count - PROCESS_LINES, (unsigned long long)rest);
}

/* lua-perf's own cost: CPU time (to start, then while sampling) and peak memory, from the
 * kernel's accounting. */
static void print_own_cost(const struct run_summary *in, const struct folded_profile *res)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return;
	double sampling_cpu = own_cpu_seconds() - in->cpu_at_start;
	fprintf(stderr,
		"lua-perf: %zu distinct folded stacks; kernel maps drained %llu times; lua-perf used "
		"%.2f s of CPU to start, %.2f s while sampling (%.1f%% of one CPU), peak RSS %.1f "
		"MiB\n",
		res->count, (unsigned long long)in->drains, in->cpu_at_start, sampling_cpu,
		in->elapsed > 0 ? 100.0 * sampling_cpu / in->elapsed : 0.0,
		(double)ru.ru_maxrss / 1024.0);
}

void summary_print(const struct run_summary *in, const struct folded_profile *res)
{
	const uint64_t *counters = in->counters;

	fprintf(stderr,
		"lua-perf: %llu samples in %.2f s at %u Hz; %llu lost (sample map full), %llu without "
		"stack (stack map full); complete stacks: %.1f%%\n",
		(unsigned long long)res->samples, in->elapsed, in->frequency,
		(unsigned long long)counters[CNT_COUNTS_FULL],
		(unsigned long long)counters[CNT_STACKS_FULL],
		percent(res->by_reason[END_COMPLETE], res->samples));
	if (res->samples == 0)
		lp_warn("no samples: the target processes did not run on a CPU while profiling (idle?)");
	print_own_cost(in, res);
	if (res->overflow_samples)
		fprintf(stderr, "lua-perf: %llu samples of stacks beyond %zu MiB of distinct stacks are "
			"counted as \"%s\"\n", (unsigned long long)res->overflow_samples,
			FOLDED_PROFILE_MAX_BYTES >> 20, FOLDED_PROFILE_OVERFLOW_LINE);
	if (counters[CNT_KSTACK_FAILED])
		fprintf(stderr, "lua-perf: %llu kernel stacks not recorded\n",
			(unsigned long long)counters[CNT_KSTACK_FAILED]);
	print_process_summary(in, res);
	if (in->mappings_dropped)
		fprintf(stderr, "lua-perf: %u executable mappings beyond %d per process were ignored\n",
			in->mappings_dropped, MAX_PROC_MAPPINGS);
	if (!in->stats)
		return;
	fprintf(stderr, "lua-perf: how user stacks ended:\n");
	for (int r = 0; r < END_REASON_COUNT; r++)
		if (res->by_reason[r])
			fprintf(stderr, "  %-52s %10llu  %5.1f%%\n", unwind_end_reason_name((uint32_t)r),
				(unsigned long long)res->by_reason[r], percent(res->by_reason[r], res->samples));
	static const struct {
		enum counter counter;
		const char *what;
	} listed[] = {
		{CNT_SAMPLES, "samples taken by BPF"},
		{CNT_REFRESH_REQUESTS, "mapping refreshes requested by BPF"},
		{CNT_REFRESH_LOST, "refresh requests lost (ring buffer full)"},
		{CNT_LUA_NO_STATE, "Lua VM frames whose lua_State was unreadable"},
		{CNT_LUA_EMPTY_ACTIVATION, "Lua VM frames with no Lua frame found"},
		{CNT_LUA_EVENTS_LOST, "new Lua stack events lost (resolved later)"},
		{CNT_FOLLOW_REFUSED, "processes forked beyond the process limit"},
		{CNT_FOLLOW_EVENTS_LOST, "fork/exec events lost (found by the scan)"},
	};
	for (size_t i = 0; i < sizeof(listed) / sizeof(listed[0]); i++)
		fprintf(stderr, "  %-52s %10llu\n", listed[i].what,
			(unsigned long long)counters[listed[i].counter]);
}
