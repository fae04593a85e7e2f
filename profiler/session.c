/* SPDX-License-Identifier: MIT */
#include "profiler/session.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/clocks.h"
#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/strbuf.h"
#include "output/loss_report.h"
#include "output/output_files.h"
#include "output/summary.h"
#include "proc/proc_maps.h"
#include "proc/process_tree.h"
#include "profiler/bpf_load.h"
#include "profiler/command.h"
#include "profiler/frame_names.h"
#include "profiler/mapped_files.h"
#include "profiler/sample_drain.h"
#include "profiler/sample_folding.h"
#include "profiler/thread_dump.h"
#include "runtime/luajit/luajit_detect.h"
#include "sample.skel.h"

#define POLL_INTERVAL_MS 100
#define RESCAN_INTERVAL_S 1.0
#define DRAIN_INTERVAL_S 1.0 /* or sooner, when a generation is half full */
#define DUMP_ROUND_MS 20 /* lua-perf dump: between two task iterator rounds */
#define DUMP_RUNNABLE_GRACE_S 0.3 /* lua-perf dump: runnable threads are sampled as they run
				   * until then, then unwound where they wait for a CPU */

/* A process being sampled: in the BPF `targets` map, its mappings in `proc_mappings`. */
struct target {
	pid_t pid;
	uint64_t maps_hash;
	bool refresh_requested;
	const struct mapped_file *lua_file; /* the file with its Lua VM (or VM problem) announced */
};

struct session {
	const struct session_options *opts;
	struct sample_bpf *skel;
	struct table_store *store;
	struct mapped_files files;
	struct frame_namer namer;
	struct sample_drain drain;
	struct aggregation aggregation;  /* the profile, built at every drain */
	struct loss_report losses;
	double last_drain;
	bool drain_failure_said;
	pid_t *gone;                     /* exited since the last drain: forgotten after the next */
	size_t gone_count;
	size_t gone_capacity;
	struct command command;          /* lua-perf -- CMD */
	struct process_tree tree;        /* the -p processes and their descendants */
	struct target *targets;          /* the live processes of the tree, MAX_TARGET_PROCS at most */
	size_t target_count;
	struct bpf_link **links;
	struct bpf_link *follow_links[2]; /* fork, exec */
	int *perf_fds;
	int cpu_count;
	struct ring_buffer *events;
	void *rows_mem, *pages_mem, *rules_mem;
	size_t rows_len, pages_len, rules_len;
	struct proc_mappings *scratch_mappings;
	double started;
	double cpu_at_start; /* own CPU seconds when sampling started */
	bool limit_warned;               /* MAX_TARGET_PROCS reached: said once */
	struct thread_dump *dump;        /* lua-perf dump only */
};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t stop_signals;       /* how many were received */
static volatile sig_atomic_t stop_signal_forwardable; /* the last one was sent to lua-perf alone */
static volatile sig_atomic_t stop_signal_number;

/* A terminal sends its signals (Ctrl-C) to the whole foreground process group, with si_code
 * SI_KERNEL (drivers/tty/tty_io.c, __kill_pgrp_info via isig()); kill(2) sends SI_USER. */
static void on_stop_signal(int sig, siginfo_t *info, void *context)
{
	(void)context;
	stop_requested = 1;
	stop_signals++;
	stop_signal_number = sig;
	stop_signal_forwardable = info && info->si_code != SI_KERNEL;
}

/* An mmap()ed BPF array: elements are value_size rounded up to 8 bytes (kernel/bpf/arraymap.c,
 * elem_size), which every table entry type already is. */
static void *mmap_map(struct bpf_map *map, size_t *len)
{
	if (bpf_map__value_size(map) % 8 != 0) {
		errno = EINVAL;
		return NULL;
	}
	*len = (size_t)bpf_map__value_size(map) * bpf_map__max_entries(map);
	void *mem = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	return mem == MAP_FAILED ? NULL : mem;
}

static int open_table_store(struct session *s)
{
	struct sample_bpf *skel = s->skel;

	s->rows_mem = mmap_map(skel->maps.unwind_rows, &s->rows_len);
	s->pages_mem = mmap_map(skel->maps.unwind_pages, &s->pages_len);
	s->rules_mem = mmap_map(skel->maps.unwind_rules, &s->rules_len);
	if (!s->rows_mem || !s->pages_mem || !s->rules_mem) {
		lp_error("cannot map the unwind tables: %s", strerror(errno));
		return -1;
	}
	struct table_store_maps maps = {
		.files_fd = bpf_map__fd(skel->maps.unwind_files),
		.rows = s->rows_mem,
		.max_rows = bpf_map__max_entries(skel->maps.unwind_rows),
		.pages = s->pages_mem,
		.max_pages = bpf_map__max_entries(skel->maps.unwind_pages),
		.rules = s->rules_mem,
		.max_rules = bpf_map__max_entries(skel->maps.unwind_rules),
	};
	s->store = table_store_new(&maps);
	if (!s->store ||
	    mapped_files_init(&s->files, s->store, bpf_map__fd(skel->maps.lua_interps)) < 0 ||
	    frame_namer_init(&s->namer, &s->files, s->opts->lua_lines) < 0) {
		lp_error("out of memory");
		return -1;
	}
	s->aggregation.namer = &s->namer;
	return 0;
}

/* Say once per process which Lua VM it runs (or why its Lua frames will be missing), and
 * remember the VM for naming its Lua frames. */
static void announce_lua(struct session *s, struct target *t)
{
	const struct mapped_file *f = mapped_files_lua_of(&s->files, s->scratch_mappings);

	if (!f || f == t->lua_file)
		return;
	t->lua_file = f;
	if (f->lua) {
		if (f->lua->jit)
			lp_info("PID %d: %s in %s", (int)t->pid, f->lua->jit->description, f->name);
		else
			lp_info("PID %d: Lua %s in %s", (int)t->pid, f->lua->version, f->name);
		if (frame_namer_add_lua_process(&s->namer, t->pid, f->lua) < 0)
			lp_warn("out of memory: Lua frames of PID %d unnamed", (int)t->pid);
	} else {
		lp_warn("PID %d: %s (%s): no Lua frames, native frames only", (int)t->pid,
			f->lua_problem, f->name);
	}
}

/* Read pid's executable mappings and publish them (and any new unwind tables) to BPF. */
static int publish_process(struct session *s, struct target *t, bool force)
{
	struct proc_exec_maps maps;
	int rc = proc_read_exec_maps(t->pid, &maps);

	if (rc < 0)
		return rc;
	if (force || maps.content_hash != t->maps_hash) {
		rc = mapped_files_build_process(&s->files, t->pid, &maps, s->scratch_mappings);
		if (rc == 0 && bpf_map__update_elem(s->skel->maps.proc_mappings, &t->pid, sizeof(t->pid),
						    s->scratch_mappings, sizeof(*s->scratch_mappings),
						    BPF_ANY) != 0)
			rc = -errno;
		if (rc == 0) {
			t->maps_hash = maps.content_hash;
			announce_lua(s, t);
		}
	}
	proc_exec_maps_free(&maps);
	return rc;
}

/* Start sampling a process of the tree: publish its mappings, then add it to `targets`. */
static int add_target(struct session *s, pid_t pid)
{
	struct target *t = &s->targets[s->target_count];
	__u8 one = 1;

	*t = (struct target){.pid = pid};
	int rc = publish_process(s, t, true);
	if (rc < 0)
		return rc;
	if (bpf_map__update_elem(s->skel->maps.targets, &pid, sizeof(pid), &one, sizeof(one),
				 BPF_ANY) != 0) {
		rc = -errno;
		bpf_map__delete_elem(s->skel->maps.proc_mappings, &pid, sizeof(pid), 0);
		return rc;
	}
	s->target_count++;
	return 0;
}

/* Stop sampling an exited process and forget its BPF entries, so that a process reusing its
 * PID is not sampled by mistake. */
static void remove_target(struct session *s, pid_t pid)
{
	struct bpf_map *maps[] = {s->skel->maps.targets, s->skel->maps.proc_mappings,
				  s->skel->maps.refresh_pending};

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
		bpf_map__delete_elem(maps[i], &pid, sizeof(pid), 0); /* ENOENT: never added */
	for (size_t i = 0; i < s->target_count; i++) {
		if (s->targets[i].pid == pid) {
			s->targets[i] = s->targets[--s->target_count];
			return;
		}
	}
}

/* What was learnt about an exited process (its Lua functions' names) is kept until the samples
 * it left in the kernel are drained and named. */
static void remember_gone(struct session *s, pid_t pid)
{
	pid_t *grown = grow_array(s->gone, &s->gone_capacity, s->gone_count + 1, sizeof(*grown), 16);

	if (!grown) {
		frame_namer_forget(&s->namer, &pid, 1); /* out of memory: at once, rather than never */
		return;
	}
	s->gone = grown;
	s->gone[s->gone_count++] = pid;
}

static void forget_gone(struct session *s)
{
	frame_namer_forget(&s->namer, s->gone, s->gone_count);
	s->gone_count = 0;
}

/* A new process has a PID that an exited one had: forget the old one now, not after the new
 * one has been introduced. */
static void forget_reused_pid(struct session *s, pid_t pid)
{
	for (size_t i = 0; i < s->gone_count; i++) {
		if (s->gone[i] == pid) {
			frame_namer_forget(&s->namer, &pid, 1);
			s->gone[i] = s->gone[--s->gone_count];
			return;
		}
	}
}

static void process_left(struct session *s, const struct tree_process *p)
{
	lp_info("PID %d (%s) exited", (int)p->pid, p->comm);
	remove_target(s, p->pid);
	remember_gone(s, p->pid);
}

/* A root that cannot be profiled ends the run before it starts; a descendant is left out. */
static int process_joined(struct session *s, const struct tree_process *p)
{
	if (p->ppid)
		lp_info("PID %d (%s) joined, child of %d", (int)p->pid, p->comm, (int)p->ppid);
	forget_reused_pid(s, p->pid);
	int rc = add_target(s, p->pid);
	if (rc < 0 && !p->ppid) {
		if (rc == -ESRCH || rc == -ENOENT)
			lp_error("PID %d (%s): exited before profiling started", (int)p->pid, p->comm);
		else
			lp_error("cannot profile PID %d: %s", (int)p->pid, strerror(-rc));
		return rc;
	}
	if (rc == -ESRCH || rc == -ENOENT)
		lp_debug("PID %d exited before it could be profiled", (int)p->pid);
	else if (rc < 0)
		lp_warn("PID %d (%s) not profiled: %s", (int)p->pid, p->comm, strerror(-rc));
	else if (!s->targets[s->target_count - 1].lua_file && !p->ppid && p->pid != s->command.pid)
		lp_info("PID %d: no Lua runtime found: native frames only", (int)p->pid);
	return 0;
}

/* Exited processes leave first: a PID reused in between joins afresh. */
static int update_targets(struct session *s)
{
	struct tree_changes changes;
	double started = now_seconds();
	int rc = process_tree_scan(&s->tree, &changes);

	lp_debug("process tree scan: %zu live, %.2f ms", s->tree.live_count,
		 (now_seconds() - started) * 1e3);
	if (rc < 0)
		lp_warn("cannot look for new processes: %s", strerror(-rc));
	for (size_t i = 0; i < changes.left_count; i++)
		process_left(s, &s->tree.procs[changes.left[i]]);
	for (size_t i = changes.first_joined; i < s->tree.count; i++) {
		rc = process_joined(s, &s->tree.procs[i]);
		if (rc < 0)
			return rc;
	}
	if (s->tree.refused_count && !s->limit_warned) {
		lp_warn("more than %d processes at once: the new ones are not profiled", MAX_TARGET_PROCS);
		s->limit_warned = true;
	}
	return 0;
}

/* The -p processes, or the command lua-perf started. */
static const pid_t *root_pids(const struct session *s, size_t *count)
{
	*count = s->command.pid > 0 ? 1 : s->opts->pid_count;
	return s->command.pid > 0 ? &s->command.pid : s->opts->pids;
}

static int add_targets(struct session *s)
{
	size_t root_count;
	const pid_t *roots = root_pids(s, &root_count);
	int rc = process_tree_init(&s->tree, roots, root_count, MAX_TARGET_PROCS,
				   process_tree_default_discovery());

	s->targets = calloc(MAX_TARGET_PROCS, sizeof(*s->targets));
	if (rc < 0 || !s->targets)
		return -ENOMEM;
	rc = update_targets(s);
	for (size_t i = 0; rc == 0 && i < root_count; i++) {
		const struct tree_process *p = process_tree_find(&s->tree, roots[i]);

		if (!p || !p->live) {
			lp_error("PID %d: %s", (int)roots[i],
				 s->tree.refused_count ? "not profiled: too many processes"
						       : "exited before profiling started");
			rc = -ESRCH;
		}
	}
	return rc;
}

static int open_cpu_clock(int cpu, unsigned frequency)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.freq = 1,
		.sample_freq = frequency,
	};

	return (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

static const char *perf_failure_hint(int err)
{
	switch (err) {
	case EINVAL:
		return " (above kernel.perf_event_max_sample_rate?)";
	case ENOSYS:
		return " (this kernel has no perf events: CONFIG_PERF_EVENTS)";
	case ENOENT:
	case EOPNOTSUPP:
		return " (this kernel has no cpu-clock software event)";
	case EPERM:
	case EACCES:
		return " (needs CAP_PERFMON; see kernel.perf_event_paranoid)";
	default:
		return "";
	}
}

static int attach_perf_events(struct session *s)
{
	int attached = 0;

	s->cpu_count = libbpf_num_possible_cpus();
	if (s->cpu_count <= 0) {
		lp_error("cannot count CPUs: %s", strerror(-s->cpu_count));
		return -1;
	}
	s->perf_fds = calloc((size_t)s->cpu_count, sizeof(*s->perf_fds));
	s->links = calloc((size_t)s->cpu_count, sizeof(*s->links));
	if (!s->perf_fds || !s->links)
		return -ENOMEM;
	for (int cpu = 0; cpu < s->cpu_count; cpu++) {
		s->perf_fds[cpu] = open_cpu_clock(cpu, s->opts->frequency);
		if (s->perf_fds[cpu] < 0) {
			if (errno == ENODEV)
				continue; /* offline CPU */
			lp_error("perf_event_open(cpu-clock, %u Hz, CPU %d): %s%s", s->opts->frequency, cpu,
				 strerror(errno), perf_failure_hint(errno));
			return -1;
		}
		s->links[cpu] = bpf_program__attach_perf_event(s->skel->progs.on_sample, s->perf_fds[cpu]);
		if (!s->links[cpu]) {
			lp_error("cannot attach the BPF program to CPU %d: %s", cpu, strerror(errno));
			return -1;
		}
		attached++;
	}
	return attached > 0 ? 0 : -1;
}

/* Processes the targets fork and exec are followed in the kernel (bpf/lib/process_follow.bpf.h). */
static int attach_process_followers(struct session *s)
{
	s->follow_links[0] = bpf_program__attach(s->skel->progs.on_fork);
	s->follow_links[1] = s->follow_links[0] ? bpf_program__attach(s->skel->progs.on_exec) : NULL;
	if (!s->follow_links[1]) {
		lp_error("cannot attach the BPF programs that follow fork and exec: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void detach_perf_events(struct session *s)
{
	for (int cpu = 0; s->links && cpu < s->cpu_count; cpu++) {
		bpf_link__destroy(s->links[cpu]);
		s->links[cpu] = NULL;
	}
	for (int cpu = 0; s->perf_fds && cpu < s->cpu_count; cpu++) {
		if (s->perf_fds[cpu] > 0)
			close(s->perf_fds[cpu]);
		s->perf_fds[cpu] = -1;
	}
}

static struct target *find_target(struct session *s, pid_t pid)
{
	for (size_t i = 0; i < s->target_count; i++)
		if (s->targets[i].pid == pid)
			return &s->targets[i];
	return NULL;
}

/* BPF made child a target when a target forked it (bpf/lib/process_follow.bpf.h): it joins the tree
 * now, or leaves BPF's targets again when it cannot be followed. */
static void process_forked(struct session *s, pid_t child, pid_t parent)
{
	int rc = process_tree_add(&s->tree, child, parent);

	if (rc == 1) {
		process_joined(s, &s->tree.procs[s->tree.count - 1]);
		return;
	}
	if (rc < 0)
		lp_warn("PID %d not profiled: %s", (int)child, strerror(-rc));
	const struct tree_process *p = process_tree_find(&s->tree, child);
	if (!p || !p->live)
		remove_target(s, child); /* gone already, or beyond the limit */
}

/* The kernel dropped the mappings of the old image: publish the new one's at once. */
static void process_execed(struct session *s, pid_t pid)
{
	struct target *t = find_target(s, pid);

	if (!t)
		return;
	double started = now_seconds();
	process_tree_update_comm(&s->tree, pid);
	int rc = publish_process(s, t, true);
	if (rc < 0 && rc != -ESRCH && rc != -ENOENT)
		lp_warn("PID %d: cannot read its mappings after exec: %s", (int)pid, strerror(-rc));
	lp_debug("PID %d exec'd: its mappings published in %.1f ms", (int)pid,
		 (now_seconds() - started) * 1e3);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct session *s = ctx;
	const struct profiler_event *event = data;
	struct target *t;

	if (size < sizeof(*event))
		return 0;
	switch (event->type) {
	case EVENT_NEW_LUA_STACK:
		aggregate_prefetch_lua_stack(&s->namer,
					     sample_drain_stacks_fd(&s->drain, event->generation),
					     (pid_t)event->tgid, event->addr);
		break;
	case EVENT_UNKNOWN_MAPPING:
		t = find_target(s, (pid_t)event->tgid);
		if (t)
			t->refresh_requested = true;
		break;
	case EVENT_PROCESS_FORKED:
		process_forked(s, (pid_t)event->tgid, (pid_t)event->addr);
		break;
	case EVENT_PROCESS_EXECED:
		process_execed(s, (pid_t)event->tgid);
		break;
	default:
		break;
	}
	return 0;
}

/* Take the samples out of the kernel into the profile, then say any loss that started. */
static void drain_samples(struct session *s)
{
	uint64_t counters[CNT_COUNT];
	int rc = sample_drain_run(&s->drain, aggregate_sample, &s->aggregation);

	s->last_drain = now_seconds();
	if (rc < 0 && !s->drain_failure_said) {
		lp_warn("cannot take samples out of the kernel: %s", strerror(-rc));
		s->drain_failure_said = true;
	}
	forget_gone(s);
	if (read_counters(s->skel, counters) == 0)
		loss_report_check(&s->losses, counters, &s->aggregation.profile);
}

/* Has the run's end come: the command exited, or every process of every tree? */
static bool targets_done(struct session *s)
{
	if (s->command.pid > 0) {
		if (!command_exited(&s->command))
			return false;
		lp_info("%s exited (status %d)", s->opts->command[0], command_exit_code(&s->command));
		return true;
	}
	if (s->tree.live_count > 0)
		return false;
	lp_info("all target processes exited");
	return true;
}

/* Reread mappings where BPF asked for it or (every RESCAN_INTERVAL_S) where they changed. An
 * exited process is left to the next tree scan. */
static void refresh_targets(struct session *s, bool periodic)
{
	for (size_t i = 0; i < s->target_count; i++) {
		struct target *t = &s->targets[i];
		bool requested = t->refresh_requested;

		if (!requested && !periodic)
			continue;
		t->refresh_requested = false;
		int rc = publish_process(s, t, false);
		if (rc < 0 && rc != -ESRCH && rc != -ENOENT)
			lp_warn("PID %d: cannot refresh mappings: %s", (int)t->pid, strerror(-rc));
		if (requested)
			bpf_map__delete_elem(s->skel->maps.refresh_pending, &t->pid, sizeof(t->pid), 0);
	}
}

static void run_loop(struct session *s)
{
	double last_rescan = now_seconds();

	while (!stop_requested) {
		int rc = ring_buffer__poll(s->events, POLL_INTERVAL_MS);
		double now = now_seconds();

		if (rc < 0 && rc != -EINTR) {
			lp_warn("ring buffer poll failed: %s", strerror(-rc));
			break;
		}
		if (now - s->last_drain >= DRAIN_INTERVAL_S || sample_drain_due(&s->drain))
			drain_samples(s);
		bool periodic = now - last_rescan >= RESCAN_INTERVAL_S;
		if (periodic) {
			last_rescan = now;
			if (update_targets(s) < 0)
				break;
		}
		refresh_targets(s, periodic);
		if (targets_done(s))
			break;
		if (s->opts->duration > 0 && now - s->started >= s->opts->duration)
			break;
	}
}

static const char *load_failure_hint(int err)
{
	switch (err) {
	case ENOSYS:
		return "this kernel has no BPF system call: CONFIG_BPF_SYSCALL";
	case EPERM:
	case EACCES:
		return "needs CAP_BPF and CAP_PERFMON; a kernel lockdown or an LSM may also forbid BPF";
	default:
		return "-v shows libbpf's and the kernel's messages";
	}
}

static int load_program(struct session *s)
{
	if (!kernel_supports_sampling())
		return -1;
	s->skel = sample_bpf__open();
	if (!s->skel) {
		lp_error("cannot open the BPF program: %s", strerror(errno));
		return -1;
	}
	s->skel->rodata->collect_kernel_stacks = s->opts->kernel_stacks;
	s->skel->rodata->dump_threads = s->opts->dump;
	if (!s->opts->dump && bpf_map__set_max_entries(s->skel->maps.thread_stacks, 1) != 0) {
		lp_error("cannot size the BPF map thread_stacks: %s", strerror(errno)); /* unused */
		return -1;
	}
	if (s->opts->dump && (bpf_program__set_autoload(s->skel->progs.on_fork, false) != 0 ||
			      bpf_program__set_autoload(s->skel->progs.on_exec, false) != 0)) {
		lp_error("cannot leave out the BPF process followers: %s", strerror(errno));
		return -1;
	}
	double started = now_seconds();
	struct verifier_stats *stats = verifier_stats_collect(s->skel->obj);
	int rc = sample_bpf__load(s->skel);
	bool refusal_said = verifier_stats_report(stats, rc);
	if (rc < 0) {
		if (!refusal_said)
			lp_error("cannot load the BPF program: %s (%s)", strerror(-rc), load_failure_hint(-rc));
		return -1;
	}
	lp_debug("BPF program loaded in %.2f s", now_seconds() - started);
	s->events = ring_buffer__new(bpf_map__fd(s->skel->maps.events), on_event, s, NULL);
	if (!s->events) {
		lp_error("cannot open the BPF ring buffer: %s", strerror(errno));
		return -1;
	}
	/* In dump mode too: it names the stacks that EVENT_NEW_LUA_STACK announces. */
	if (sample_drain_init(&s->drain, s->skel) < 0)
		return -1;
	if (!s->opts->dump)
		return 0;
	bool off_cpu = kernel_supports_off_cpu_dump();
	started = now_seconds();
	rc = thread_dump_open(&s->dump, s->skel, s->opts->kernel_stacks, off_cpu);
	if (rc == 0 && off_cpu)
		lp_debug("BPF dump iterator loaded in %.2f s", now_seconds() - started);
	return rc;
}

/* lua-perf dump: task iterator rounds take the sleeping threads while the perf events take those
 * that run, until every thread has a stack or the wait (duration) is over. */
static int run_dump(struct session *s)
{
	int missing;

	do {
		bool take_runnable = now_seconds() - s->started >= DUMP_RUNNABLE_GRACE_S;

		missing = thread_dump_round(s->dump, &s->tree, take_runnable);
		if (missing <= 0)
			break;
		int rc = ring_buffer__poll(s->events, DUMP_ROUND_MS);
		if (rc < 0 && rc != -EINTR) {
			lp_warn("ring buffer poll failed: %s", strerror(-rc));
			break;
		}
		refresh_targets(s, false);
	} while (!stop_requested && now_seconds() - s->started < s->opts->duration);
	detach_perf_events(s);
	if (missing < 0) {
		lp_error("cannot run the BPF dump iterator: %s", strerror(-missing));
		return 1;
	}
	lp_debug("dump took %.3f s", now_seconds() - s->started);
	int rc = thread_dump_print(s->dump, &s->tree, &s->namer, stdout);
	if (rc < 0)
		lp_error("cannot write the dump: %s", strerror(-rc));
	return rc == 0 ? 0 : 1;
}

static void session_free(struct session *s)
{
	detach_perf_events(s);
	for (size_t i = 0; i < sizeof(s->follow_links) / sizeof(s->follow_links[0]); i++)
		bpf_link__destroy(s->follow_links[i]);
	thread_dump_close(s->dump);
	ring_buffer__free(s->events);
	sample_drain_free(&s->drain);
	folded_profile_free(&s->aggregation.profile);
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
	free(s->scratch_mappings);
	free(s->targets);
	process_tree_free(&s->tree);
	free(s->links);
	free(s->perf_fds);
}

/* Every target exited while the tables were built: one line naming them. */
static void report_gone_before_start(const struct session *s)
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

static void install_signal_handlers(void)
{
	struct sigaction sa = {.sa_sigaction = on_stop_signal, .sa_flags = SA_SIGINFO};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void print_table_summary(const struct session *s)
{
	struct table_store_stats st = table_store_stats(s->store);

	lp_info("unwind tables: %u files (%u without table), %u rows (%.1f MiB), %u rules, built in %.3f s",
		st.files, st.files_without_table, st.rows_used,
		(double)st.rows_used * sizeof(struct unwind_row) / (1024.0 * 1024.0), st.rules_used,
		s->files.build_seconds);
}

/* Sampling is over: take what the kernel still holds (both generations), then write. */
static int finish_profile(struct session *s, struct outputs *outputs)
{
	uint64_t counters[CNT_COUNT] = {0};

	detach_perf_events(s);
	drain_samples(s);
	drain_samples(s);
	if (read_counters(s->skel, counters) < 0)
		lp_warn("cannot read the BPF counters: the summary's loss counts are 0");
	struct folded_profile *profile = &s->aggregation.profile;
	struct run_summary summary = {
		.counters = counters,
		.drains = s->drain.drained,
		.stats = s->opts->stats,
		.elapsed = now_seconds() - s->started,
		.cpu_at_start = s->cpu_at_start,
		.frequency = s->opts->frequency,
		.mappings_dropped = s->files.mappings_dropped,
		.tree = &s->tree,
	};
	folded_profile_sort(profile);
	folded_profile_sort_processes(profile);
	summary_print(&summary, profile);
	struct output_run run = {.elapsed = summary.elapsed, .frequency = summary.frequency};
	return outputs_write(outputs, profile, &run) == 0 ? 0 : 1;
}

/* lua-perf -- CMD: a stop signal that CMD did not get too (not from the terminal) is passed on. */
static void stop_command(struct session *s)
{
	if (s->command.pid > 0 && stop_requested && stop_signal_forwardable)
		command_signal(&s->command, stop_signal_number);
}

/* lua-perf -- CMD exits with CMD's status, once CMD has exited; 1 if CMD succeeded but the
 * profile could not be written. */
static int command_result(struct session *s, int profile_exit_code)
{
	if (!command_exited(&s->command))
		lp_info("waiting for %s (PID %d) to exit", s->opts->command[0], (int)s->command.pid);
	command_wait(&s->command, &stop_signals);
	int code = command_exit_code(&s->command);
	return code == 0 ? profile_exit_code : code;
}

/* CMD's executable gets its unwind table (and its Lua VM found) before CMD runs: after the
 * exec, its samples then wait only for its mappings to be read, not for a table to be built. */
static void prepare_command(struct session *s)
{
	char *path = command_resolve(s->opts->command[0]);
	int rc = path ? mapped_files_prepare(&s->files, s->command.pid, path) : -ENOENT;

	if (rc < 0)
		lp_debug("%s: no table built ahead: %s", s->opts->command[0], strerror(-rc));
	free(path);
}

/* Release CMD, held since the fork. Its exit code when it cannot run: 127 not found, else 126
 * (the shell's convention). */
static int start_command(struct session *s)
{
	prepare_command(s);
	int rc = command_start(&s->command, s->opts->command[0]);

	if (rc == 0)
		return 0;
	command_exited(&s->command); /* reaps it */
	return rc == -ENOENT ? 127 : 126;
}

static int profile(struct session *s, struct outputs *outputs)
{
	lp_info("profiling %zu process%s at %u Hz%s", s->target_count,
		s->target_count == 1 ? "" : "es", s->opts->frequency,
		s->opts->duration > 0 ? "" : "; Ctrl-C to stop");
	run_loop(s);
	stop_command(s);
	int exit_code = finish_profile(s, outputs);
	return s->command.pid > 0 ? command_result(s, exit_code) : exit_code;
}

int session_run(const struct session_options *opts)
{
	struct session s = {.opts = opts, .command.release_fd = -1, .command.status_fd = -1};
	int exit_code = 1;

	/* Before any BPF work: an unwritable output must not cost a whole profiling run. */
	struct outputs outputs = {0};
	struct output_targets targets = {opts->command, opts->pids, opts->pid_count};
	if (!opts->dump && outputs_open(&outputs, opts->outputs, opts->output_count, &targets) < 0)
		return 1;
	bool outputs_pending = !opts->dump;
	s.scratch_mappings = calloc(1, sizeof(*s.scratch_mappings));
	if (!s.scratch_mappings) {
		lp_error("out of memory");
		goto out;
	}
	if (opts->command && command_spawn(&s.command, opts->command) < 0)
		goto out;
	install_signal_handlers();
	if (load_program(&s) < 0 || open_table_store(&s) < 0 || add_targets(&s) < 0)
		goto out;
	print_table_summary(&s);
	s.started = now_seconds();
	s.cpu_at_start = own_cpu_seconds();
	s.last_drain = s.started;
	if (attach_perf_events(&s) < 0 || (!opts->dump && attach_process_followers(&s) < 0))
		goto out;
	if (s.command.pid > 0 && (exit_code = start_command(&s)) != 0)
		goto out;
	exit_code = 1;
	/* Targets that exit while the tables are built end the run here, as they would have before */
	if (update_targets(&s) < 0)
		goto out;
	if (s.tree.live_count == 0 && s.command.pid <= 0) {
		report_gone_before_start(&s);
		goto out;
	}
	if (opts->dump) {
		exit_code = run_dump(&s);
		goto out;
	}
	exit_code = profile(&s, &outputs);
	outputs_pending = false; /* closed by outputs_write */
out:
	if (outputs_pending)
		outputs_discard(&outputs);
	command_abandon(&s.command);
	session_free(&s);
	return exit_code;
}
