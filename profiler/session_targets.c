/* SPDX-License-Identifier: MIT */
/* session_targets.c - the processes a session samples: the tree's processes joining and leaving
 * (scans, forks, execs), their mappings published to BPF and kept current, the Lua VM each runs
 * announced, and the exited ones remembered until their samples are named. */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clocks.h"
#include "lib/grow_array.h"
#include "lib/log.h"
#include "proc/proc_maps.h"
#include "runtime/luajit/luajit_detect.h"
#include "profiler/session_internal.h"

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

static int update_proc_mappings(struct session *s, pid_t pid)
{
	return bpf_map__update_elem(s->map_owner->maps.proc_mappings, &pid, sizeof(pid),
				    s->scratch_mappings, sizeof(*s->scratch_mappings), BPF_ANY) != 0
		       ? -errno
		       : 0;
}

/* The mappings of files with a table already go to BPF before new files' tables are built
 * (tens of milliseconds each, ten times that under ASan): after an exec, ld.so maps libc and
 * the rest while the new image starts, and its stacks through libc need not wait for libm's
 * table. Nothing is published early when no mapping is known yet. */
static int publish_known_first(struct session *s, pid_t pid, const struct proc_exec_maps *maps)
{
	size_t deferred;
	int rc = mapped_files_build_process(&s->files, pid, maps, true, s->scratch_mappings,
					    &deferred);

	if (rc == 0 && (deferred == 0 || s->scratch_mappings->count > 0))
		rc = update_proc_mappings(s, pid);
	if (rc == 0 && deferred > 0) {
		rc = mapped_files_build_process(&s->files, pid, maps, false, s->scratch_mappings,
						&deferred);
		if (rc == 0)
			rc = update_proc_mappings(s, pid);
	}
	return rc;
}

/* Read pid's executable mappings and publish them (and any new unwind tables) to BPF. */
static int publish_process(struct session *s, struct target *t, bool force)
{
	struct proc_exec_maps maps;
	int rc = proc_read_exec_maps(t->pid, &maps);

	if (rc < 0)
		return rc;
	if (force || maps.content_hash != t->maps_hash) {
		rc = publish_known_first(s, t->pid, &maps);
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
	if (bpf_map__update_elem(s->map_owner->maps.targets, &pid, sizeof(pid), &one, sizeof(one),
				 BPF_ANY) != 0) {
		rc = -errno;
		bpf_map__delete_elem(s->map_owner->maps.proc_mappings, &pid, sizeof(pid), 0);
		return rc;
	}
	s->target_count++;
	return 0;
}

/* Stop sampling an exited process and forget its BPF entries, so that a process reusing its
 * PID is not sampled by mistake. */
static void remove_target(struct session *s, pid_t pid)
{
	struct bpf_map *maps[] = {s->map_owner->maps.targets, s->map_owner->maps.proc_mappings,
				  s->map_owner->maps.refresh_pending};

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
	pid_t *slot = grow_array_push(s->gone, s->gone_count, s->gone_capacity, 16);

	if (!slot) {
		/* out of memory: at once, rather than never */
		aggregation_forget(&s->aggregation, &pid, 1);
		return;
	}
	*slot = pid;
}

void forget_gone(struct session *s)
{
	aggregation_forget(&s->aggregation, s->gone, s->gone_count);
	s->gone_count = 0;
}

/* A new process has a PID that an exited one had: forget the old one now, not after the new
 * one has been introduced. */
static void forget_reused_pid(struct session *s, pid_t pid)
{
	for (size_t i = 0; i < s->gone_count; i++) {
		if (s->gone[i] == pid) {
			aggregation_forget(&s->aggregation, &pid, 1);
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
int update_targets(struct session *s)
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

int add_targets(struct session *s)
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

struct target *find_target(struct session *s, pid_t pid)
{
	for (size_t i = 0; i < s->target_count; i++)
		if (s->targets[i].pid == pid)
			return &s->targets[i];
	return NULL;
}

/* BPF made child a target when a target forked it (bpf/lib/process_follow.bpf.h): it joins the tree
 * now, or leaves BPF's targets again when it cannot be followed. */
void process_forked(struct session *s, pid_t child, pid_t parent)
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
void process_execed(struct session *s, pid_t pid)
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

/* Reread mappings where BPF asked for it or (every RESCAN_INTERVAL_S) where they changed. An
 * exited process is left to the next tree scan. */
void refresh_targets(struct session *s, bool periodic)
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
			bpf_map__delete_elem(s->map_owner->maps.refresh_pending, &t->pid,
					     sizeof(t->pid), 0);
	}
}
