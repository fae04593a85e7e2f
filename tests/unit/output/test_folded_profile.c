/* SPDX-License-Identifier: MIT */
/* test_folded_profile.c - output/folded_profile.c, output/loss_report.c and output/summary.c:
 * samples of the same folded stack from any process and any drain add up on one line; totals by
 * process and by end reason; past the bound, new stacks go to the overflow line and nothing is
 * dropped; each kind of loss is said on stderr once, when it first shows; each line keeps its
 * samples by process; the summary of an off-CPU run gives its time per process and by reason
 * (the lines' leaf frames), the blocks followed and dropped. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output/folded_profile.h"
#include "output/loss_report.h"
#include "output/summary.h"
#include "proc/process_tree.h"
#include "tests/unit/support/test_check.h"

static char *text(const char *s)
{
	char *copy = strdup(s);

	CHECK(copy != NULL, "strdup");
	return copy;
}

static const struct folded_line *find_line(const struct folded_profile *p, const char *s)
{
	for (size_t i = 0; i < p->count; i++)
		if (strcmp(p->lines[i].text, s) == 0)
			return &p->lines[i];
	return NULL;
}

static void same_stack_is_one_line(void)
{
	struct folded_profile p = {0};
	char name[64];

	/* 300 short-lived processes, each in the same two stacks, over three drains */
	for (int drain = 0; drain < 3; drain++)
		for (pid_t pid = 1000; pid < 1300; pid++) {
			CHECK(folded_profile_add(&p, pid, pid, END_COMPLETE,
						 text("main;L:handle@a.lua:3"), 2, NULL) == 0, "add");
			CHECK(folded_profile_add(&p, pid, pid, END_NO_ROW,
						 text("main;L:other@a.lua:9"), 1, NULL) == 0, "add");
		}
	/* two threads of process 2000, the second one first, then by the line's index */
	size_t handle_index = SIZE_MAX;
	CHECK(folded_profile_add(&p, 2000, 2002, END_COMPLETE, text("main;L:handle@a.lua:3"), 4,
				 &handle_index) == 0 && handle_index == 0,
	      "add: line index %zu, want 0", handle_index);
	CHECK(folded_profile_add_to_line(&p, handle_index, 2000, 2001, END_COMPLETE, 5) == 0,
	      "add to line");
	for (int i = 0; i < 5000; i++) { /* enough distinct lines to grow the hash table */
		snprintf(name, sizeof(name), "main;f%d", i);
		CHECK(folded_profile_add(&p, 7, 7, END_COMPLETE, text(name), 1, NULL) == 0, "add %d", i);
	}
	CHECK(p.count == 5002, "%zu lines, want 5002", p.count);
	const struct folded_line *handle = find_line(&p, "main;L:handle@a.lua:3");
	CHECK(handle && handle->count == 1809, "handle: %llu samples, want 1809",
	      handle ? (unsigned long long)handle->count : 0ull);
	/* each line keeps its samples by thread, sorted by tgid then tid (the pprof output's
	 * labels) */
	bool by_thread = handle && handle->process_count == 302;
	for (size_t i = 0; by_thread && i < 300; i++)
		by_thread = handle->processes[i].tgid == 1000 + (pid_t)i &&
			    handle->processes[i].tid == 1000 + (pid_t)i &&
			    handle->processes[i].samples == 6;
	by_thread = by_thread && handle->processes[300].tgid == 2000 &&
		    handle->processes[300].tid == 2001 && handle->processes[300].samples == 5 &&
		    handle->processes[301].tgid == 2000 && handle->processes[301].tid == 2002 &&
		    handle->processes[301].samples == 4;
	CHECK(by_thread, "handle by thread: %zu threads, want 300 of 6 samples each, then 2 of "
	      "process 2000", handle ? handle->process_count : 0);
	const struct folded_line *f4999 = find_line(&p, "main;f4999");
	CHECK(f4999 && f4999->count == 1, "f4999 after growing");
	CHECK(p.samples == 2700 + 9 + 5000, "%llu samples", (unsigned long long)p.samples);
	CHECK(p.by_reason[END_COMPLETE] == 1800 + 9 + 5000 && p.by_reason[END_NO_ROW] == 900,
	      "by reason: %llu complete, %llu no row", (unsigned long long)p.by_reason[END_COMPLETE],
	      (unsigned long long)p.by_reason[END_NO_ROW]);
	/* the profile's processes are whole processes: the threads of 2000 are one entry */
	CHECK(p.process_count == 302, "%zu processes, want 302", p.process_count);
	bool whole = true;
	for (size_t i = 0; i < p.process_count; i++)
		whole = whole && p.processes[i].tid == 0 &&
			(p.processes[i].tgid != 2000 || p.processes[i].samples == 9);
	CHECK(whole, "processes with a thread, or process 2000 not 9 samples");
	folded_profile_sort(&p);
	for (size_t i = 1; i < p.count; i++)
		CHECK(strcmp(p.lines[i - 1].text, p.lines[i].text) < 0, "lines not sorted at %zu", i);
	folded_profile_sort_processes(&p);
	CHECK(p.processes[0].tgid == 7 && p.processes[0].samples == 5000, "busiest first");
	CHECK(p.processes[1].tgid == 1000 && p.processes[1].samples == 9, "then by PID");
	folded_profile_free(&p);
}

/* Runs check with stderr going to a file; returns all it wrote (to be freed), NULL on failure. */
static char *stderr_of(void (*check)(void *), void *arg)
{
	FILE *capture = tmpfile();

	CHECK(capture, "tmpfile");
	if (!capture)
		return NULL;
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	CHECK(saved >= 0 && dup2(fileno(capture), STDERR_FILENO) >= 0, "dup2");
	check(arg);
	fflush(stderr);
	CHECK(dup2(saved, STDERR_FILENO) >= 0, "restore stderr");
	close(saved);
	long size = fseek(capture, 0, SEEK_END) == 0 ? ftell(capture) : -1;
	char *out = size >= 0 ? calloc(1, (size_t)size + 1) : NULL;
	rewind(capture);
	CHECK(out && fread(out, 1, (size_t)size, capture) == (size_t)size, "read the capture");
	fclose(capture);
	return out;
}

struct loss_case {
	struct loss_report report;
	uint64_t counters[CNT_COUNT];
	struct folded_profile *profile;
};

static void check_losses(void *arg)
{
	struct loss_case *c = arg;

	loss_report_check(&c->report, c->counters, c->profile);
}

static size_t occurrences(const char *haystack, const char *needle)
{
	size_t n = 0;

	for (const char *at = haystack; (at = strstr(at, needle)); at += strlen(needle))
		n++;
	return n;
}

static void bound_and_losses_said_once(void)
{
	struct folded_profile p = {.max_text_bytes = 64};
	struct loss_case c = {.profile = &p};
	char name[64];

	char *said = stderr_of(check_losses, &c);
	CHECK(said && said[0] == '\0', "nothing lost, yet said: %s", said ? said : "");
	free(said);
	for (int i = 0; i < 20; i++) { /* 20 lines of 12 bytes: 5 fit in 64 */
		snprintf(name, sizeof(name), "stack%05d", i);
		CHECK(folded_profile_add(&p, 1, 1, END_COMPLETE, text(name), 3, NULL) == 0, "add %d", i);
	}
	CHECK(folded_profile_add(&p, 1, 1, END_COMPLETE, text("stack00001"), 1, NULL) == 0, "add known");
	CHECK(p.count == 6, "%zu lines, want 5 and the overflow line", p.count);
	const struct folded_line *over = find_line(&p, FOLDED_PROFILE_OVERFLOW_LINE);
	CHECK(over && over->count == 45, "overflow line: %llu samples, want 45",
	      over ? (unsigned long long)over->count : 0ull);
	CHECK(find_line(&p, "stack00001")->count == 4, "a known stack still counts past the bound");
	CHECK(p.samples == 61 && p.overflow_samples == 45, "%llu samples, %llu overflow",
	      (unsigned long long)p.samples, (unsigned long long)p.overflow_samples);

	c.counters[CNT_STACKS_FULL] = 3;
	said = stderr_of(check_losses, &c);
	CHECK(said && occurrences(said, "warning") == 2, "two warnings: %s", said ? said : "");
	CHECK(said && strstr(said, "3 samples without stack") && strstr(said, "distinct stacks"),
	      "what was said: %s", said ? said : "");
	free(said);
	c.counters[CNT_STACKS_FULL] = 10;
	c.counters[CNT_COUNTS_FULL] = 1;
	said = stderr_of(check_losses, &c);
	CHECK(said && occurrences(said, "warning") == 1 && strstr(said, "1 samples lost"),
	      "only the new kind of loss: %s", said ? said : "");
	free(said);
	c.counters[CNT_OFF_CPU_UNTRACKED] = 2;
	said = stderr_of(check_losses, &c);
	CHECK(said && occurrences(said, "warning") == 1 &&
		      strstr(said, "2 off-CPU blocks not followed: more than 4096 threads off CPU at "
				   "once"),
	      "off-CPU blocks not followed: %s", said ? said : "");
	free(said);
	folded_profile_free(&p);
}

struct summary_case {
	struct run_summary in;
	struct folded_profile *profile;
};

static void print_summary(void *arg)
{
	struct summary_case *c = arg;

	summary_print(&c->in, c->profile);
}

/* Microseconds off CPU by thread and reason (the leaf frame), as an --off-cpu run counts them. */
static void add_off_cpu(struct folded_profile *p)
{
	static const struct {
		pid_t tgid, tid;
		const char *stack;
		uint64_t micros;
	} blocks[] = {
		{1000, 1001, "main;read;[blocked: read]", 1000000},
		{1000, 1002, "main;epoll_wait;[blocked: epoll_wait]", 200000},
		{1000, 1001, "main;[preempted]", 35000},
		{2000, 2000, "main;[preempted]", 5000},
		{2000, 2000, "main;fsync;[blocked uninterruptible: fsync]", 288000},
	};
	char name[64];

	for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++)
		CHECK(folded_profile_add(p, blocks[i].tgid, blocks[i].tid, END_COMPLETE,
					 text(blocks[i].stack), blocks[i].micros, NULL) == 0, "add");
	for (int i = 0; i < 8; i++) { /* 8 reasons: 6 listed, then "2 more" */
		snprintf(name, sizeof(name), "main;[blocked: call%d]", i);
		CHECK(folded_profile_add(p, 3000, 3000, END_NO_ROW, text(name), 1000, NULL) == 0,
		      "add");
	}
	folded_profile_sort(p);
	folded_profile_sort_processes(p);
}

static void expect_said(const char *said, const char *want)
{
	CHECK(said && strstr(said, want), "the summary does not say \"%s\":\n%s", want,
	      said ? said : "");
}

static void off_cpu_summary(void)
{
	struct folded_profile p = {0};
	struct tree_process procs[] = {{.pid = 1000, .comm = "nginx"}, {.pid = 2000, .comm = "lua5.4"},
				       {.pid = 3000, .comm = "many"}};
	struct process_tree tree = {.procs = procs, .count = 3};
	uint64_t counters[CNT_COUNT] = {
		[CNT_OFF_CPU_SWITCHES] = 1234, [CNT_OFF_CPU_SHORT] = 56,
		[CNT_OFF_CPU_SHORT_NS] = 7890000, [CNT_OFF_CPU_UNTRACKED] = 3,
	};
	struct summary_case c = {
		.in = {.counters = counters, .stats = true, .elapsed = 30, .tree = &tree,
		       .off_cpu = true, .min_block_us = 100},
		.profile = &p,
	};

	add_off_cpu(&p);
	char *said = stderr_of(print_summary, &c);
	expect_said(said, "lua-perf: 1.536 s off CPU in 30.00 s, 1234 blocks followed;");
	expect_said(said, "not counted: 56 blocks shorter than 100 us (0.008 s in all), 3 blocks "
		    "not followed (more than 4096 threads off CPU at once)");
	expect_said(said, "lua-perf: off-CPU time per process");
	expect_said(said, "    1000      1.235  80.4%  nginx\n"
		    "             blocked: read 1.000 s, blocked: epoll_wait 0.200 s, "
		    "preempted 0.035 s\n");
	expect_said(said, "    2000      0.293  19.1%  lua5.4\n"
		    "             blocked uninterruptible: fsync 0.288 s, preempted 0.005 s\n");
	expect_said(said, "    3000      0.008   0.5%  many\n             blocked: call0 0.001 s, "
		    "blocked: call1 0.001 s, blocked: call2 0.001 s, blocked: call3 0.001 s, "
		    "blocked: call4 0.001 s, blocked: call5 0.001 s, 2 more 0.002 s\n");
	expect_said(said, "target threads switched off CPU"); /* --stats: the off-CPU counters */
	expect_said(said, "the time of those short blocks, ns");
	CHECK(said && !strstr(said, "samples per process") && !strstr(said, "samples in") &&
		      !strstr(said, "skipped"),
	      "an off-CPU summary counts samples, or says skips that were not:\n%s",
	      said ? said : "");
	free(said);

	c.in.skipped_runs = 2;
	counters[CNT_OFF_CPU_NS] = 1500000000;
	c.in.drained = 1300000000;
	said = stderr_of(print_summary, &c);
	expect_said(said, "the kernel skipped the BPF program 2 times (it was running on that CPU "
		    "already): each skip missed a switch, so a block's time");
	expect_said(said, "the kernel counted 1.500000 s off CPU and the drains took 1.300000 s");
	free(said);
	c.in.skipped_runs = 0;
	c.in.drained = counters[CNT_OFF_CPU_NS];
	said = stderr_of(print_summary, &c);
	CHECK(said && !strstr(said, "drains took"), "all drained, yet said:\n%s", said ? said : "");
	free(said);
	counters[CNT_SAMPLES] = 1500000000; /* as samples: 10 counted, the rest lost */
	counters[CNT_COUNTS_FULL] = 1499999990;
	c.in.drained = 9;
	c.in.off_cpu = false;
	said = stderr_of(print_summary, &c);
	expect_said(said, "the kernel counted 10 samples and the drains took 9:");
	free(said);
	c.in.off_cpu = true;
	c.in.drained = 0;
	counters[CNT_OFF_CPU_NS] = counters[CNT_SAMPLES] = counters[CNT_COUNTS_FULL] = 0;

	c.in.off_cpu = false; /* the same counts as samples: the CPU summary, no reasons */
	said = stderr_of(print_summary, &c);
	expect_said(said, "lua-perf: 1536000 samples in 30.00 s at 0 Hz;");
	expect_said(said, "    1000    1235000  80.4%  nginx\n      2000");
	CHECK(said && !strstr(said, "off CPU") && !strstr(said, "blocked: read"),
	      "a CPU summary speaks of off-CPU time:\n%s", said ? said : "");
	free(said);
	folded_profile_free(&p);
}

int main(void)
{
	same_stack_is_one_line();
	bound_and_losses_said_once();
	off_cpu_summary();
	return check_finish("folded_profile");
}
