/* SPDX-License-Identifier: MIT */
#include "src/aggregate.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sample.skel.h"
#include "src/clocks.h"
#include "src/flamegraph_svg.h"
#include "src/frame_names.h"
#include "src/log.h"
#include "src/proc_maps.h"
#include "src/process_tree.h"
#include "src/strbuf.h"

static const char *const end_reason_names[END_REASON_COUNT] = {
	[END_COMPLETE] = "complete",
	[END_NO_MAPPING] = "pc outside known mappings",
	[END_NO_TABLE] = "file without unwind table",
	[END_NO_ROW] = "pc without unwind row (gap between FDEs)",
	[END_UNSUPPORTED] = "unsupported CFA rule",
	[END_REG_UNKNOWN] = "CFA register unknown",
	[END_READ_FAILED] = "stack read failed",
	[END_DEPTH] = "depth limit",
	[END_BAD_FRAME] = "bad frame (return address 0 or stack not growing)",
	[END_ANON_CODE] = "anonymous executable memory",
	[END_NO_USER_REGS] = "no user registers",
	[END_PROC_UNKNOWN] = "process mappings not loaded yet",
};

const char *unwind_end_reason_name(uint32_t reason)
{
	return reason < END_REASON_COUNT ? end_reason_names[reason] : "unknown";
}

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

/* Root first: the recorded trace is leaf first (kernel frames, then user frames). */
static void append_frames(struct frame_namer *namer, pid_t tgid, const struct stack_trace *trace,
			  struct strbuf *sb)
{
	uint32_t len = trace->len < MAX_STACK_FRAMES ? trace->len : MAX_STACK_FRAMES;

	for (uint32_t i = len; i-- > 0;) {
		uint64_t frame = trace->frames[i];

		if (sb->len)
			strbuf_append(sb, ";");
		if (frame >> FRAME_KIND_SHIFT == FRAME_KERNEL)
			frame_name_kernel(namer, frame | ~FRAME_KERNEL_MASK, sb);
		else
			frame_name_user(namer, tgid, frame, sb);
	}
}

static struct stack_trace prefetch_buffer; /* 2 KiB: keep it off the stack */

void aggregate_prefetch_lua_stack(struct frame_namer *namer, int stacks_fd, pid_t tgid,
				  uint64_t stack_id)
{
	if (bpf_map_lookup_elem(stacks_fd, &stack_id, &prefetch_buffer) != 0)
		return; /* drained already: named then */
	for (uint32_t i = 0; i < prefetch_buffer.len && i < MAX_STACK_FRAMES; i++)
		frame_namer_prefetch(namer, tgid, prefetch_buffer.frames[i]);
}

int aggregate_sample(void *aggregation, const struct sample_key *key, uint64_t count,
		     const struct stack_trace *trace)
{
	struct aggregation *a = aggregation;
	struct strbuf sb = {0};

	if (trace)
		append_frames(a->namer, (pid_t)key->tgid, trace, &sb);
	if (sb.len == 0)
		strbuf_append(&sb, "[no stack]");
	return folded_profile_add(&a->profile, (pid_t)key->tgid, key->end_reason, strbuf_take(&sb),
				  count);
}

/* ---- Outputs */

#define TITLE_MAX_TARGETS 8 /* the flame graph's title names this many, then says how many more */

/* "comm (PID n), ..." (or the command line) for the flame graph's title, read before sampling:
 * targets may exit. */
static char *describe_targets(const struct session_options *opts)
{
	struct strbuf sb = {0};

	for (char **arg = opts->command; arg && *arg; arg++) /* lua-perf -- CMD: the command line */
		strbuf_appendf(&sb, "%s%s", arg == opts->command ? "" : " ", *arg);
	for (size_t i = 0; i < opts->pid_count && i < TITLE_MAX_TARGETS; i++) {
		/* comm: at most TASK_COMM_LEN - 1 = 15 bytes (include/linux/sched.h) */
		char comm[64];

		proc_thread_comm(opts->pids[i], opts->pids[i], comm, sizeof(comm));
		strbuf_appendf(&sb, "%s%s (PID %d)", i ? ", " : "", comm[0] ? comm : "?",
			       (int)opts->pids[i]);
	}
	if (opts->pid_count > TITLE_MAX_TARGETS)
		strbuf_appendf(&sb, " and %zu more", opts->pid_count - TITLE_MAX_TARGETS);
	return strbuf_take(&sb);
}

/* Open without truncating (that happens when writing); remember whether the file is new. */
static int open_output(struct output_file *o)
{
	const char *path = o->spec->path;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);

	o->created = fd >= 0;
	if (fd < 0 && errno == EEXIST) /* or a symbolic link, which O_EXCL does not follow */
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	if (fd >= 0) {
		o->file = fdopen(fd, "w");
		if (!o->file) {
			int err = errno;

			close(fd);
			errno = err;
		}
	}
	if (!o->file) {
		int err = errno;

		if (o->created)
			unlink(path);
		o->created = false;
		lp_error("cannot write %s: %s", path, strerror(err));
		return -1;
	}
	return 0;
}

int outputs_open(struct outputs *outs, const struct session_options *opts)
{
	*outs = (struct outputs){0};
	outs->files = calloc(opts->output_count, sizeof(*outs->files));
	if (!outs->files) {
		lp_error("out of memory");
		return -1;
	}
	for (size_t i = 0; i < opts->output_count; i++) {
		outs->files[outs->count].spec = &opts->outputs[i];
		if (open_output(&outs->files[outs->count]) < 0) {
			outputs_discard(outs);
			return -1;
		}
		outs->count++;
	}
	bool svg = false;
	for (size_t i = 0; i < opts->output_count; i++)
		svg |= opts->outputs[i].format == OUTPUT_SVG;
	if (svg && !(outs->targets = describe_targets(opts))) {
		lp_error("out of memory");
		outputs_discard(outs);
		return -1;
	}
	return 0;
}

static void outputs_free(struct outputs *outs)
{
	free(outs->files);
	free(outs->targets);
	*outs = (struct outputs){0};
}

void outputs_discard(struct outputs *outs)
{
	for (size_t i = 0; i < outs->count; i++) {
		struct output_file *o = &outs->files[i];

		fclose(o->file);
		if (o->created)
			unlink(o->spec->path);
	}
	outputs_free(outs);
}

static int write_folded(FILE *f, const struct folded_profile *res)
{
	for (size_t i = 0; i < res->count; i++)
		fprintf(f, "%s %llu\n", res->lines[i].text, (unsigned long long)res->lines[i].count);
	return ferror(f) ? -EIO : 0;
}

/* Empty a regular file that held something before (pipes, terminals, /dev/null stay). */
static int truncate_output(FILE *f)
{
	struct stat st;
	int fd = fileno(f);

	if (fstat(fd, &st) != 0)
		return -errno;
	if (S_ISREG(st.st_mode) && st.st_size > 0 && ftruncate(fd, 0) != 0)
		return -errno;
	return 0;
}

static int write_output(const struct aggregate_input *in, const struct outputs *outs,
			struct output_file *o, const struct folded_profile *res)
{
	struct flamegraph_stats stats = {0};
	int rc = truncate_output(o->file);

	if (rc == 0 && o->spec->format == OUTPUT_SVG) {
		struct flamegraph_info info = {
			.targets = outs->targets,
			.duration = in->elapsed,
			.frequency = in->frequency,
		};
		rc = flamegraph_svg_write(o->file, res->lines, res->count, &info, &stats);
	} else if (rc == 0) {
		rc = write_folded(o->file, res);
	}
	if (fclose(o->file) != 0 && rc == 0)
		rc = -errno;
	o->file = NULL;
	if (rc < 0) {
		lp_error("cannot write %s: %s", o->spec->path, strerror(-rc));
		return rc;
	}
	if (o->spec->format == OUTPUT_SVG)
		lp_info("wrote a flame graph of %zu frames (%zu too narrow to draw) to %s",
			stats.frames_drawn, stats.frames_omitted, o->spec->path);
	else
		lp_info("wrote %zu stacks to %s", res->count, o->spec->path);
	return 0;
}

/* Write every output (each one even if another fails) and close them: 0 or the first error. */
static int write_outputs(const struct aggregate_input *in, const struct folded_profile *res)
{
	struct outputs *outs = in->outputs;
	int rc = 0;

	for (size_t i = 0; i < outs->count; i++) {
		int one = write_output(in, outs, &outs->files[i], res);

		if (rc == 0)
			rc = one;
	}
	outputs_free(outs);
	return rc;
}

static double percent(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

#define PROCESS_LINES 16 /* processes listed in the summary; the rest in one "+N more" line */

static void print_process_summary(const struct aggregate_input *in,
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
static void print_own_cost(const struct aggregate_input *in, const struct folded_profile *res)
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

static void print_summary(const struct aggregate_input *in, const struct folded_profile *res)
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
			fprintf(stderr, "  %-52s %10llu  %5.1f%%\n", end_reason_names[r],
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

int aggregate_and_write(const struct aggregate_input *in)
{
	folded_profile_sort(in->profile);
	folded_profile_sort_processes(in->profile);
	print_summary(in, in->profile);
	return write_outputs(in, in->profile);
}
