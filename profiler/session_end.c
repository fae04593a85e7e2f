/* SPDX-License-Identifier: MIT */
/* session_end.c - a session's end: the last drains, the summary and the outputs written, the
 * command told of a stop and waited for, and everything the session held released. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/clocks.h"
#include "lib/log.h"
#include "lib/strbuf.h"
#include "output/summary.h"
#include "profiler/bpf_load.h"
#include "profiler/off_cpu.h"
#include "profiler/pprof_files.h"
#include "profiler/session_internal.h"

void session_free(struct session *s)
{
	finish_loading(s); /* it uses the sampling object */
	detach_perf_events(s);
	for (size_t i = 0; i < sizeof(s->follow_links) / sizeof(s->follow_links[0]); i++)
		bpf_link__destroy(s->follow_links[i]);
	thread_dump_close(s->dump);
	ring_buffer__free(s->events);
	sample_drain_free(&s->drain);
	folded_profile_free(&s->aggregation.profile);
	frame_origins_free(&s->aggregation.origins);
	stack_lines_free(&s->aggregation.lines);
	free(s->gone);
	frame_namer_free(&s->namer);
	mapped_files_free(&s->files);
	table_store_free(s->store);
	if (s->rows_mem)
		munmap(s->rows_mem, s->rows_len);
	if (s->pages_mem)
		munmap(s->pages_mem, s->pages_len);
	if (s->rules_mem)
		munmap(s->rules_mem, s->rules_len);
	sample_bpf__destroy(s->skel);
	sample_bpf__destroy(s->map_owner);
	free(s->scratch_mappings);
	free(s->targets);
	process_tree_free(&s->tree);
	free(s->links);
	free(s->perf_fds);
}

/* Every target exited while the tables were built: one line naming them. */
void report_gone_before_start(const struct session *s)
{
	struct strbuf sb = {0};

	for (size_t i = 0; i < s->opts->pid_count; i++) {
		const struct tree_process *p = process_tree_find(&s->tree, s->opts->pids[i]);

		strbuf_appendf(&sb, "%sPID %d (%s)", i ? ", " : "", (int)s->opts->pids[i],
			       p ? p->comm : "?");
	}
	char *pids = strbuf_take(&sb);
	lp_error("%s: exited before profiling started", pids ? pids : "every target process");
	free(pids);
}

/* --off-cpu: the threads still off CPU when it ended, counted up to then. */
static void count_threads_off_cpu(struct session *s, uint64_t end_ns, uint64_t *counters)
{
	struct off_cpu_waiting waiting;
	int rc = off_cpu_count_waiting(s->skel, &s->aggregation, end_ns,
				       (uint64_t)s->opts->min_block_us * 1000u, &waiting);

	if (rc < 0)
		lp_warn("cannot count the threads still off CPU at the end: %s", strerror(-rc));
	lp_debug("%llu threads still off CPU at the end",
		 (unsigned long long)waiting.threads);
	counters[CNT_OFF_CPU_SHORT] += waiting.short_blocks;
	counters[CNT_OFF_CPU_SHORT_NS] += waiting.short_ns;
}

/* How many times the kernel did not run the sampling program because it was already running on
 * that CPU (bpf_prog_info.recursion_misses, Linux >= 5.12; 0 when it cannot tell): each one is a
 * sample lost, or with --off-cpu a switch missed, so a block's time. */
static uint64_t skipped_runs(const struct session *s)
{
	const struct bpf_program *prog = s->opts->off_cpu ? s->skel->progs.on_switch
							   : s->skel->progs.on_sample;
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0)
		return 0;
	return info.recursion_misses;
}

/* Sampling is over: take what the kernel still holds (both generations), then write. */
int finish_profile(struct session *s, struct outputs *outputs)
{
	uint64_t counters[CNT_COUNT] = {0};

	detach_perf_events(s);
	uint64_t end_ns = monotonic_ns();
	drain_samples(s);
	drain_samples(s);
	if (read_counters(s->skel, counters) < 0)
		lp_warn("cannot read the BPF counters: the summary's loss counts are 0");
	if (s->opts->off_cpu)
		count_threads_off_cpu(s, end_ns, counters);
	struct folded_profile *profile = &s->aggregation.profile;
	struct run_summary summary = {
		.counters = counters,
		.drains = s->drain.drained,
		.stats = s->opts->stats,
		.elapsed = now_seconds() - s->started,
		.cpu_at_start = s->cpu_at_start,
		.frequency = s->opts->frequency,
		.off_cpu = s->opts->off_cpu,
		.min_block_us = s->opts->min_block_us,
		.mappings_dropped = s->files.mappings_dropped,
		.skipped_runs = skipped_runs(s),
		.drained = s->drain.amount_taken,
		.tree = &s->tree,
	};
	lp_debug("drains: %llu stacks named, %llu counted by the line named before",
		 (unsigned long long)s->aggregation.lines.misses,
		 (unsigned long long)s->aggregation.lines.hits);
	folded_profile_sort(profile);
	folded_profile_sort_processes(profile);
	summary_print(&summary, profile);
	struct output_run run = {
		.elapsed = summary.elapsed,
		.frequency = summary.frequency,
		.lua_lines = s->opts->lua_lines,
		.off_cpu = s->opts->off_cpu,
	};
	struct pprof_file *files = NULL;
	if (pprof_files_of(&s->files, &files, &run.file_count) < 0)
		lp_warn("out of memory: the pprof output's mappings name files by base name only");
	run.files = files;
	run.origins = &s->aggregation.origins;
	if (run.origins->dropped)
		lp_warn("%llu distinct frames beyond the memory bound: the pprof output gives them "
			"no Mapping and no line defined", (unsigned long long)run.origins->dropped);
	int rc = outputs_write(outputs, profile, &run);
	free(files);
	return rc == 0 ? 0 : 1;
}

/* lua-perf -- CMD: a stop signal that CMD did not get too (not from the terminal) is passed on. */
void stop_command(struct session *s)
{
	if (s->command.pid > 0 && stop_requested && stop_signal_forwardable)
		command_signal(&s->command, stop_signal_number);
}

/* lua-perf -- CMD exits with CMD's status, once CMD has exited; 1 if CMD succeeded but the
 * profile could not be written. */
int command_result(struct session *s, int profile_exit_code)
{
	if (!command_exited(&s->command))
		lp_info("waiting for %s (PID %d) to exit", s->opts->command[0], (int)s->command.pid);
	command_wait(&s->command, &stop_signals);
	int code = command_exit_code(&s->command);
	return code == 0 ? profile_exit_code : code;
}
