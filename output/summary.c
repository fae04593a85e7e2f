/* SPDX-License-Identifier: MIT */
#include "output/summary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/clocks.h"
#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/percent.h"
#include "proc/process_tree.h"

const char *unwind_end_reason_name(uint32_t reason)
{
	return reason < END_REASON_COUNT ? unwind_end_names[reason] : "unknown";
}

#define PROCESS_LINES 16 /* processes listed in the summary; the rest in one "+N more" line */
#define REASONS_LISTED 6 /* off-CPU reasons listed per process; the rest in one "N more" */
#define MICROS_PER_SECOND 1e6

/* What the profile's counts are: samples, or (--off-cpu) microseconds off CPU, printed as
 * seconds. Chosen once (measure_of). */
struct measure {
	bool off_cpu;
	const char *unit;        /* after an amount: "samples", "s off CPU" */
	const char *per_process; /* the head of the per-process lines */
	const char *by_end;      /* the head of the lines by end reason (--stats) */
};

static const struct measure *measure_of(const struct run_summary *in)
{
	static const struct measure samples = {
		false, "samples", "samples per process (PID, samples, share, command)",
		"how user stacks ended",
	};
	static const struct measure off_cpu = {
		true, "s off CPU", "off-CPU time per process (PID, seconds, share, command; then the "
				   "seconds by reason)",
		"how user stacks ended (seconds off CPU)",
	};

	return in->off_cpu ? &off_cpu : &samples;
}

/* An amount of the profile in a field of width characters: samples, or seconds off CPU. */
static void print_amount(const struct measure *m, uint64_t count, int width)
{
	if (m->off_cpu)
		fprintf(stderr, "%*.3f", width, (double)count / MICROS_PER_SECOND);
	else
		fprintf(stderr, "%*llu", width, (unsigned long long)count);
}

/* Microseconds off CPU of one process for one reason: the leaf frame of the folded lines
 * ("[blocked: read]"), without its brackets. */
struct reason_time {
	const char *name; /* not NUL-terminated: points into a folded line */
	size_t len;
	uint64_t micros;
};

struct reason_times {
	struct reason_time *items;
	size_t count, capacity;
};

static void leaf_reason(const char *text, struct reason_time *r)
{
	const char *cut = strrchr(text, ';');
	const char *leaf = cut ? cut + 1 : text;
	size_t len = strlen(leaf);

	if (len >= 2 && leaf[0] == '[' && leaf[len - 1] == ']') {
		leaf++;
		len -= 2;
	}
	r->name = leaf;
	r->len = len;
}

static int add_reason_time(struct reason_times *t, const struct reason_time *r)
{
	for (size_t i = 0; i < t->count; i++)
		if (t->items[i].len == r->len && memcmp(t->items[i].name, r->name, r->len) == 0) {
			t->items[i].micros += r->micros;
			return 0;
		}
	return grow_array_append(t->items, t->count, t->capacity, 8, r);
}

/* Most time first, then by name. */
static int reason_order(const void *pa, const void *pb)
{
	const struct reason_time *a = pa, *b = pb;

	if (a->micros != b->micros)
		return a->micros > b->micros ? -1 : 1;
	int c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* The time off CPU of process tgid by reason, from its threads' counts on every line. */
static int reasons_of(const struct folded_profile *res, pid_t tgid, struct reason_times *t)
{
	for (size_t i = 0; i < res->count; i++) {
		const struct folded_line *l = &res->lines[i];
		struct reason_time r = {0};

		for (size_t p = 0; p < l->process_count; p++)
			r.micros += l->processes[p].tgid == tgid ? l->processes[p].samples : 0;
		if (r.micros == 0)
			continue;
		leaf_reason(l->text, &r);
		if (add_reason_time(t, &r) < 0)
			return -1;
	}
	if (t->count > 1)
		qsort(t->items, t->count, sizeof(*t->items), reason_order);
	return 0;
}

/* "blocked: read 1.234 s, preempted 0.012 s, 3 more 0.001 s" under a process's line. */
static void print_reasons(const struct folded_profile *res, pid_t tgid)
{
	struct reason_times t = {0};
	uint64_t rest = 0;

	if (reasons_of(res, tgid, &t) < 0)
		fputs("             (by reason: out of memory)\n", stderr);
	if (t.count == 0) { /* or only in lines that could not be stored: nothing to list */
		free(t.items);
		return;
	}
	fputs("            ", stderr);
	for (size_t i = 0; i < t.count; i++) {
		if (i >= REASONS_LISTED) {
			rest += t.items[i].micros;
			continue;
		}
		fprintf(stderr, "%s %.*s %.3f s", i ? "," : "", (int)t.items[i].len, t.items[i].name,
			(double)t.items[i].micros / MICROS_PER_SECOND);
	}
	if (t.count > REASONS_LISTED)
		fprintf(stderr, ", %zu more %.3f s", t.count - REASONS_LISTED,
			(double)rest / MICROS_PER_SECOND);
	fputc('\n', stderr);
	free(t.items);
}

static void print_process_summary(const struct run_summary *in,
				  const struct folded_profile *res)
{
	const struct measure *m = measure_of(in);
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
	fprintf(stderr, "lua-perf: %s:\n", m->per_process);
	for (size_t i = 0; i < res->process_count; i++) {
		const struct process_samples *p = &res->processes[i];
		const struct tree_process *tp = process_tree_find(tree, p->tgid);

		if (i >= PROCESS_LINES) {
			rest += p->samples;
			continue;
		}
		fprintf(stderr, "  %8d ", (int)p->tgid);
		print_amount(m, p->samples, 10);
		fprintf(stderr, " %5.1f%%  %s\n", percent(p->samples, res->samples),
			tp ? tp->comm : "?");
		if (m->off_cpu)
			print_reasons(res, p->tgid);
	}
	if (res->process_count > PROCESS_LINES) {
		fprintf(stderr, "  +%zu more processes: ", res->process_count - PROCESS_LINES);
		print_amount(m, rest, 0);
		fprintf(stderr, " %s\n", m->unit);
	}
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

static void print_sample_totals(const struct run_summary *in, const struct folded_profile *res)
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
}

/* --off-cpu: the time off CPU (res counts microseconds), the blocks followed and dropped. */
static void print_off_cpu_totals(const struct run_summary *in, const struct folded_profile *res)
{
	const uint64_t *counters = in->counters;

	fprintf(stderr,
		"lua-perf: %.3f s off CPU in %.2f s, %llu blocks followed; %llu lost (sample map "
		"full), %llu without stack (stack map full); complete stacks: %.1f%% of the time\n",
		(double)res->samples / MICROS_PER_SECOND, in->elapsed,
		(unsigned long long)counters[CNT_OFF_CPU_SWITCHES],
		(unsigned long long)counters[CNT_COUNTS_FULL],
		(unsigned long long)counters[CNT_STACKS_FULL],
		percent(res->by_reason[END_COMPLETE], res->samples));
	fprintf(stderr,
		"lua-perf: not counted: %llu blocks shorter than %u us (%.3f s in all), %llu blocks "
		"not followed (more than %d threads off CPU at once)\n",
		(unsigned long long)counters[CNT_OFF_CPU_SHORT], in->min_block_us,
		(double)counters[CNT_OFF_CPU_SHORT_NS] / 1e9,
		(unsigned long long)counters[CNT_OFF_CPU_UNTRACKED], MAX_OFF_CPU_THREADS);
	if (res->samples == 0)
		lp_warn("no time off CPU: no target thread left a CPU for %u us or more during the "
			"run (one asleep since before it counts once it has run again)",
			in->min_block_us);
}

/* What the program added to the counts maps must be what the drains took out of them: say any
 * difference (a loss between the kernel and the profile, which nothing else would show). */
static void check_drained(const struct run_summary *in)
{
	const uint64_t *counters = in->counters;
	uint64_t counted = in->off_cpu ? counters[CNT_OFF_CPU_NS]
				       : counters[CNT_SAMPLES] - counters[CNT_COUNTS_FULL];

	if (in->drained == counted)
		return;
	if (in->off_cpu)
		lp_warn("the kernel counted %.6f s off CPU and the drains took %.6f s: the "
			"difference is missing from the profile (a bug: please report it)",
			(double)counted / 1e9, (double)in->drained / 1e9);
	else
		lp_warn("the kernel counted %llu samples and the drains took %llu: the difference "
			"is missing from the profile (a bug: please report it)",
			(unsigned long long)counted, (unsigned long long)in->drained);
}

/* --stats: how user stacks ended, and the BPF counters (the off-CPU ones in --off-cpu runs). */
static void print_stats(const struct run_summary *in, const struct folded_profile *res)
{
	const struct measure *m = measure_of(in);
	static const struct {
		enum counter counter;
		const char *what;
		bool off_cpu; /* listed in --off-cpu runs only */
	} listed[] = {
		{CNT_SAMPLES, "samples taken by BPF", false},
		{CNT_REFRESH_REQUESTS, "mapping refreshes requested by BPF", false},
		{CNT_REFRESH_LOST, "refresh requests lost (ring buffer full)", false},
		{CNT_LUA_NO_STATE, "Lua VM frames whose lua_State was unreadable", false},
		{CNT_LUA_EMPTY_ACTIVATION, "Lua VM frames with no Lua frame found", false},
		{CNT_LUA_EVENTS_LOST, "new Lua stack events lost (resolved later)", false},
		{CNT_FOLLOW_REFUSED, "processes forked beyond the process limit", false},
		{CNT_FOLLOW_EVENTS_LOST, "fork/exec events lost (found by the scan)", false},
		{CNT_OFF_CPU_SWITCHES, "target threads switched off CPU", true},
		{CNT_OFF_CPU_SHORT, "blocks shorter than --min-block-us (not counted)", true},
		{CNT_OFF_CPU_SHORT_NS, "the time of those short blocks, ns", true},
		{CNT_OFF_CPU_UNTRACKED, "blocks not followed (off_cpu_threads map full)", true},
		{CNT_OFF_CPU_NS, "time off CPU counted by BPF, ns", true},
	};

	fprintf(stderr, "lua-perf: %s:\n", m->by_end);
	for (int r = 0; r < END_REASON_COUNT; r++) {
		if (!res->by_reason[r])
			continue;
		fprintf(stderr, "  %-52s ", unwind_end_reason_name((uint32_t)r));
		print_amount(m, res->by_reason[r], 10);
		fprintf(stderr, "  %5.1f%%\n", percent(res->by_reason[r], res->samples));
	}
	for (size_t i = 0; i < sizeof(listed) / sizeof(listed[0]); i++)
		if (!listed[i].off_cpu || in->off_cpu)
			fprintf(stderr, "  %-52s %10llu\n", listed[i].what,
				(unsigned long long)in->counters[listed[i].counter]);
}

void summary_print(const struct run_summary *in, const struct folded_profile *res)
{
	const uint64_t *counters = in->counters;
	const struct measure *m = measure_of(in);

	if (m->off_cpu)
		print_off_cpu_totals(in, res);
	else
		print_sample_totals(in, res);
	print_own_cost(in, res);
	if (res->overflow_samples) {
		fputs("lua-perf: ", stderr);
		print_amount(m, res->overflow_samples, 0);
		fprintf(stderr, " %s of stacks beyond %zu MiB of distinct stacks are counted as "
			"\"%s\"\n", m->unit, FOLDED_PROFILE_MAX_BYTES >> 20,
			FOLDED_PROFILE_OVERFLOW_LINE);
	}
	check_drained(in);
	if (in->skipped_runs)
		lp_warn("the kernel skipped the BPF program %llu times (it was running on that CPU "
			"already): %s", (unsigned long long)in->skipped_runs,
			m->off_cpu ? "each skip missed a switch, so a block's time"
				   : "each skip is a sample lost");
	if (counters[CNT_KSTACK_FAILED])
		fprintf(stderr, "lua-perf: %llu kernel stacks not recorded\n",
			(unsigned long long)counters[CNT_KSTACK_FAILED]);
	print_process_summary(in, res);
	if (in->mappings_dropped)
		fprintf(stderr, "lua-perf: %u executable mappings beyond %d per process were ignored\n",
			in->mappings_dropped, MAX_PROC_MAPPINGS);
	if (!in->stats)
		return;
	print_stats(in, res);
}
