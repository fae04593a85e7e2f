/* SPDX-License-Identifier: MIT */
#include "output/loss_report.h"

#include "lib/log.h"

#define STRINGIFY(x) #x
#define NUMBER_TEXT(x) STRINGIFY(x) /* a macro's value as a string literal */

/* The counters that count a loss, and what the user loses. */
static const struct {
	enum counter counter;
	const char *what;
} losses[] = {
	{CNT_COUNTS_FULL, "samples lost: the kernel's sample map was full before it was drained"},
	{CNT_STACKS_FULL, "samples without stack: the kernel's stack map was full before it was "
			  "drained"},
	{CNT_KSTACK_FAILED, "kernel stacks not recorded (bpf_get_stack failed)"},
	{CNT_REFRESH_LOST, "mapping refresh requests lost (ring buffer full): retried"},
	{CNT_LUA_EVENTS_LOST, "new Lua stack announcements lost (ring buffer full): their Lua "
			      "functions are named at the next drain, if still alive"},
	{CNT_FOLLOW_REFUSED, "processes started by the targets not profiled: the limit of "
			     "processes profiled at once was reached"},
	{CNT_FOLLOW_EVENTS_LOST, "fork/exec events lost (ring buffer full): those processes are "
				 "found by the next scan"},
	{CNT_OFF_CPU_UNTRACKED, "off-CPU blocks not followed: more than "
				NUMBER_TEXT(MAX_OFF_CPU_THREADS) " threads off CPU at once"},
};

void loss_report_check(struct loss_report *r, const uint64_t counters[CNT_COUNT],
		       const struct folded_profile *profile)
{
	for (size_t i = 0; i < sizeof(losses) / sizeof(losses[0]); i++) {
		enum counter c = losses[i].counter;

		if (counters[c] == 0 || r->said[c])
			continue;
		r->said[c] = true;
		lp_warn("%llu %s (the summary has the total)", (unsigned long long)counters[c],
			losses[i].what);
	}
	if (profile->overflow_samples && !r->overflow_said) {
		r->overflow_said = true;
		lp_warn("more than %zu KiB of distinct stacks: the samples of new ones are counted as "
			"\"%s\"", folded_profile_bound(profile) >> 10, FOLDED_PROFILE_OVERFLOW_LINE);
	}
}
