/* SPDX-License-Identifier: MIT */
#include "profiler/thread_dump.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/strbuf.h"
#include "lib/whole_file.h"
#include "output/summary.h"
#include "proc/proc_maps.h"
#include "proc/process_tree.h"
#include "profiler/bpf_load.h"
#include "profiler/frame_names.h"
#include "profiler/maps_ahead.h"
#include "profiler/syscall_name.h"
#include "sample.skel.h"
#include "thread_dump.skel.h"

/* A thread of a target process, listed in /proc. */
struct thread_ref {
	pid_t tgid;
	pid_t tid;
};

struct thread_dump {
	struct thread_dump_bpf *skel;
	struct bpf_link *iter;
	int thread_stacks_fd; /* shared with the sampling program */
	int stacks_fd;
	struct thread_ref *listed; /* the threads without a stack at the last round */
	size_t listed_count, listed_capacity;
	struct stack_trace trace; /* 2 KiB: one stack being printed */
};

/* The task iterator that unwinds the threads off CPU, opened with the sampler's maps. */
static int open_iterator(struct thread_dump *d, struct sample_bpf *sampler, bool kernel_stacks)
{
	d->skel = thread_dump_bpf__open();
	if (!d->skel) {
		lp_error("cannot open the BPF dump iterator: %s", strerror(errno));
		return -1;
	}
	d->skel->rodata->collect_kernel_stacks = kernel_stacks;
	/* Every map is the sampling object's own, but the internal ones (its read-only settings,
	 * dump_tid) and the per-CPU scratch state: a sampling program may run on the iterator's
	 * CPU while the iterator sleeps in a read, and must not overwrite its state. */
	return share_maps(d->skel->obj, sampler->obj, "scratch", "the dump iterator");
}

int thread_dump_open(struct thread_dump **out, struct sample_bpf *sampler, bool kernel_stacks)
{
	struct thread_dump *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d) {
		lp_error("out of memory");
		return -1;
	}
	d->thread_stacks_fd = bpf_map__fd(sampler->maps.thread_stacks);
	d->stacks_fd = bpf_map__fd(sampler->maps.stacks_0); /* a dump never switches generations */
	if (open_iterator(d, sampler, kernel_stacks) < 0) {
		thread_dump_close(d);
		return -1;
	}
	*out = d;
	return 0;
}

int thread_dump_load(struct thread_dump *d)
{
	struct verifier_stats *stats = verifier_stats_collect(d->skel->obj);
	int rc = thread_dump_bpf__load(d->skel);

	if (rc < 0 && !kernel_supports_off_cpu_dump()) { /* warned: threads that run only */
		verifier_stats_free(stats);
		thread_dump_bpf__destroy(d->skel);
		d->skel = NULL;
		return 0;
	}
	bool refusal_said = verifier_stats_report(stats, rc);
	if (rc < 0) {
		if (!refusal_said)
			lp_error("cannot load the BPF dump iterator: %s", strerror(-rc));
		return -1;
	}
	d->iter = bpf_program__attach_iter(d->skel->progs.dump_thread, NULL);
	if (!d->iter) {
		lp_error("cannot attach the BPF dump iterator: %s", strerror(errno));
		return -1;
	}
	return 0;
}

bool thread_dump_has_iterator(const struct thread_dump *d)
{
	return d && d->iter;
}

void thread_dump_close(struct thread_dump *d)
{
	if (!d)
		return;
	bpf_link__destroy(d->iter);
	thread_dump_bpf__destroy(d->skel);
	free(d->listed);
	free(d);
}

/* Run the iterator over every task once: the program does its work per task and prints
 * nothing, so the reads return 0 at the end. */
static int run_iterator(struct thread_dump *d)
{
	char buf[64];
	ssize_t n;
	int fd = bpf_iter_create(bpf_link__fd(d->iter));

	if (fd < 0)
		return -errno;
	while ((n = read_retrying(fd, buf, sizeof(buf))) > 0)
		; /* the iterator's work is done by reading it to the end */
	close(fd);
	return n < 0 ? (int)n : 0;
}

static int add_listed(struct thread_dump *d, pid_t tgid, pid_t tid)
{
	const struct thread_ref ref = {tgid, tid};

	return grow_array_append(d->listed, d->listed_count, d->listed_capacity, 64, &ref);
}

static bool has_stack(const struct thread_dump *d, pid_t tid)
{
	struct thread_stack ts;
	__u32 key = (__u32)tid;

	return bpf_map_lookup_elem(d->thread_stacks_fd, &key, &ts) == 0;
}

/* fn(ctx, pid, tid) for each thread of pid in /proc/PID/task, while it returns 0; a process
 * that exited meanwhile has none. 0, fn's result or -errno. */
static int for_each_thread(pid_t pid, int (*fn)(void *ctx, pid_t pid, pid_t tid), void *ctx)
{
	char path[32];
	struct dirent *entry;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return errno == ENOENT || errno == ESRCH ? 0 : -errno;
	int rc = 0;
	while (rc == 0 && (entry = readdir(dir)) != NULL) {
		char *end;
		long tid = strtol(entry->d_name, &end, 10);

		if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9' && *end == '\0' && tid > 0 &&
		    tid <= INT32_MAX)
			rc = fn(ctx, pid, (pid_t)tid);
	}
	closedir(dir);
	return rc;
}

static int list_thread(void *ctx, pid_t pid, pid_t tid)
{
	return add_listed(ctx, pid, tid);
}

/* 1 (stops the walk) when the thread is running or runnable. */
static int thread_running(void *ctx, pid_t pid, pid_t tid)
{
	(void)ctx;
	return proc_thread_state(pid, tid) == 'R';
}

bool thread_dump_any_running(const struct process_tree *tree)
{
	for (size_t i = 0; i < tree->live_count; i++)
		if (for_each_thread(tree->procs[tree->live[i]].pid, thread_running, NULL) == 1)
			return true;
	return false;
}

/* A thread that exited but is still listed: a thread group leader that ended before the other
 * threads stays a zombie until they end (proc(5): state Z, or X). It has no stack to take. */
static bool thread_exited(const struct thread_ref *t)
{
	char state = proc_thread_state(t->tgid, t->tid);

	return state == '\0' || state == 'Z' || state == 'X';
}

int thread_dump_round(struct thread_dump *d, const struct process_tree *tree, bool take_runnable)
{
	size_t kept = 0;

	int rc = 0;

	if (d->skel) {
		d->skel->bss->take_runnable = take_runnable;
		rc = run_iterator(d);
	}
	if (rc < 0)
		return rc;
	d->listed_count = 0;
	for (size_t i = 0; i < tree->live_count; i++) {
		rc = for_each_thread(tree->procs[tree->live[i]].pid, list_thread, d);
		if (rc < 0)
			return rc;
	}
	/* keep the threads still waiting for a stack */
	for (size_t i = 0; i < d->listed_count; i++)
		if (!has_stack(d, d->listed[i].tid) && !thread_exited(&d->listed[i]))
			d->listed[kept++] = d->listed[i];
	d->listed_count = kept;
	return kept > INT32_MAX ? INT32_MAX : (int)kept;
}

/* ---- Printing */

struct dumped_thread {
	pid_t tid;
	bool has_stack;
	struct thread_stack ts; /* when has_stack; else only ts.tgid */
};

struct dumped {
	struct dumped_thread *threads;
	size_t count;
	size_t capacity;
};

/* Every thread with a stack, then the listed ones without. */
static int collect_threads(struct thread_dump *d, struct dumped *all)
{
	__u32 key, next;
	void *prev = NULL;
	int rc = 0;

	while (rc == 0 && bpf_map_get_next_key(d->thread_stacks_fd, prev, &next) == 0) {
		struct dumped_thread t = {.tid = (pid_t)next, .has_stack = true};

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(d->thread_stacks_fd, &key, &t.ts) == 0)
			rc = grow_array_append(all->threads, all->count, all->capacity, 64, &t);
	}
	for (size_t i = 0; rc == 0 && i < d->listed_count; i++) {
		if (has_stack(d, d->listed[i].tid)) /* taken after the last round */
			continue;
		struct dumped_thread t = {.tid = d->listed[i].tid, .ts.tgid = (__u32)d->listed[i].tgid};
		rc = grow_array_append(all->threads, all->count, all->capacity, 64, &t);
	}
	return rc;
}

/* By process, the main thread (TID = PID) first, then by TID. */
static int compare_threads(const void *a, const void *b)
{
	const struct dumped_thread *x = a, *y = b;
	pid_t xp = (pid_t)x->ts.tgid, yp = (pid_t)y->ts.tgid;

	if (xp != yp)
		return (xp > yp) - (xp < yp);
	if ((x->tid == xp) != (y->tid == yp))
		return x->tid == xp ? -1 : 1;
	return (x->tid > y->tid) - (x->tid < y->tid);
}

/* Thread states: include/linux/sched.h (TASK_INTERRUPTIBLE 0x1, TASK_UNINTERRUPTIBLE 0x2,
 * __TASK_STOPPED 0x4, __TASK_TRACED 0x8); 0 off CPU is a runnable thread waiting for a CPU. */
static const char *state_name(const struct thread_stack *ts)
{
	if (ts->capture == THREAD_ON_CPU)
		return "running";
	if (ts->state & 0x8)
		return "traced";
	if (ts->state & 0x4)
		return "stopped";
	if (ts->state & 0x2)
		return "waiting uninterruptibly";
	if (ts->state & 0x1)
		return "sleeping";
	return "runnable (waiting for a CPU)";
}

static void append_syscall(struct strbuf *sb, __s32 nr)
{
	const char *name = syscall_name(nr);

	if (nr < 0)
		return;
	if (name)
		strbuf_appendf(sb, " in %s", name);
	else
		strbuf_appendf(sb, " in system call %d", (int)nr);
}

/* The command name as BPF copied it, or from /proc; non-printable bytes as '?'. */
static void append_comm(struct strbuf *sb, const struct dumped_thread *t)
{
	char comm[sizeof(t->ts.comm) + 1] = "";

	if (t->has_stack)
		memcpy(comm, t->ts.comm, sizeof(t->ts.comm));
	else
		proc_thread_comm((pid_t)t->ts.tgid, t->tid, comm, sizeof(comm));
	for (char *c = comm; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	strbuf_append(sb, comm[0] ? comm : "?");
}

static void append_frames(struct thread_dump *d, struct frame_namer *namer,
			  const struct dumped_thread *t, struct strbuf *sb)
{
	const struct thread_stack *ts = &t->ts;

	if (!t->has_stack) {
		strbuf_append(sb, "    (no stack taken: it ran all along without being sampled)\n");
		return;
	}
	if (ts->stack_id == 0 || bpf_map_lookup_elem(d->stacks_fd, &ts->stack_id, &d->trace) != 0) {
		strbuf_appendf(sb, "    (no frames: %s)\n",
			       ts->stack_id == 0 ? "stack map full" : "stack not found");
		return;
	}
	const __u64 *frames = d->trace.frames;
	pid_t tgid = (pid_t)ts->tgid;
	uint32_t count = recorded_frame_count(&d->trace), shown = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (i > 0 && frame_namer_is_replaced_caller(namer, tgid, frames[i], frames[i - 1]))
			continue;
		strbuf_appendf(sb, "    #%-3u ", shown++);
		frame_name(namer, tgid, frames[i], sb);
		strbuf_append(sb, "\n");
	}
	if (ts->end_reason != END_COMPLETE)
		strbuf_appendf(sb, "    (stack ends here: %s)\n", unwind_end_reason_name(ts->end_reason));
}

/* "  PID TID comm: state[ in syscall]" and its frames, leaf first. */
static void append_thread(struct thread_dump *d, struct frame_namer *namer,
			  const struct dumped_thread *t, struct strbuf *sb)
{
	strbuf_appendf(sb, "\n  %d %d ", (int)t->ts.tgid, (int)t->tid);
	append_comm(sb, t);
	strbuf_appendf(sb, ": %s", t->has_stack ? state_name(&t->ts) : "no stack");
	if (t->has_stack)
		append_syscall(sb, t->ts.syscall);
	strbuf_append(sb, "\n");
	append_frames(d, namer, t, sb);
}

/* "process PID (comm)[, child of PPID]: N threads" and its threads. */
static int print_process(struct thread_dump *d, struct frame_namer *namer,
			 const struct tree_process *p, const struct dumped *all, FILE *out)
{
	struct strbuf sb = {0};
	size_t first = all->count, n = 0;

	for (size_t i = 0; i < all->count; i++) {
		if ((pid_t)all->threads[i].ts.tgid != p->pid)
			continue;
		if (first == all->count)
			first = i;
		n++;
	}
	strbuf_appendf(&sb, "process %d (%s)", (int)p->pid, p->comm);
	if (p->ppid)
		strbuf_appendf(&sb, ", child of %d", (int)p->ppid);
	if (n == 0)
		strbuf_append(&sb, ": exited before its threads were dumped\n");
	else
		strbuf_appendf(&sb, ": %zu thread%s\n", n, n == 1 ? "" : "s");
	for (size_t i = first; i < first + n; i++)
		append_thread(d, namer, &all->threads[i], &sb);
	char *text = strbuf_take(&sb);
	if (!text)
		return -ENOMEM;
	fprintf(out, "%s\n", text);
	free(text);
	return 0;
}

static void print_summary(const struct dumped *all, size_t processes)
{
	size_t on_cpu = 0, off_cpu = 0, without = 0;

	for (size_t i = 0; i < all->count; i++) {
		const struct dumped_thread *t = &all->threads[i];

		if (!t->has_stack)
			without++;
		else if (t->ts.capture == THREAD_ON_CPU)
			on_cpu++;
		else
			off_cpu++;
	}
	lp_info("dumped %zu threads of %zu process%s: %zu off CPU, %zu running%s", all->count, processes,
		processes == 1 ? "" : "es", off_cpu, on_cpu, without ? "" : ", all with a stack");
	if (on_cpu + off_cpu >= MAX_DUMP_THREADS)
		lp_warn("more than %d threads: the others have no stack", MAX_DUMP_THREADS);
	else if (without)
		lp_warn("%zu threads without a stack: they ran all along and were never sampled", without);
}

int thread_dump_print(struct thread_dump *d, const struct process_tree *tree,
		      struct frame_namer *namer, FILE *out)
{
	struct dumped all = {0};
	size_t processes = 0;
	int rc = collect_threads(d, &all);

	if (rc == 0 && all.count)
		qsort(all.threads, all.count, sizeof(*all.threads), compare_threads);
	for (size_t i = 0; rc == 0 && i < tree->count; i++) {
		const struct tree_process *p = &tree->procs[i];

		if (process_tree_find(tree, p->pid) != p)
			continue; /* an earlier process with a PID reused since: the threads are the new one's */
		processes++;
		rc = print_process(d, namer, p, &all, out);
	}
	if (rc == 0 && (fflush(out) != 0 || ferror(out)))
		rc = errno ? -errno : -EIO;
	if (rc == 0)
		print_summary(&all, processes);
	free(all.threads);
	return rc;
}
