/* SPDX-License-Identifier: GPL-2.0 */
/*
 * process_follow.bpf.h - processes join the profile in the kernel, before they run: a process
 * that a target forks is a target from its first instruction, with its parent's mappings (the
 * same address space until it execs); a target that execs loses its mappings at once (samples
 * then wait for userspace, END_PROC_UNKNOWN, instead of being unwound with the old tables) and
 * userspace is told to publish the new ones. The periodic scan of the process tree stays the
 * fallback for what these events miss (ring buffer full).
 */
#ifndef LUA_PERF_PROCESS_FOLLOW_BPF_H
#define LUA_PERF_PROCESS_FOLLOW_BPF_H

#include "lib/unwinder_state.bpf.h"

static __always_inline void announce_process(__u32 type, __u32 tgid, __u32 parent)
{
	struct profiler_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);

	if (!event) {
		count(CNT_FOLLOW_EVENTS_LOST);
		return;
	}
	event->type = type;
	event->tgid = tgid;
	event->addr = parent;
	bpf_ringbuf_submit(event, BPF_RB_FORCE_WAKEUP); /* why: the events map */
}

/* kernel/fork.c kernel_clone(): the tracepoint fires after copy_process() and before
 * wake_up_new_task(), so the child has not run yet. ctx: (parent, child) as task_struct *. */
SEC("tp_btf/sched_process_fork")
int on_fork(__u64 *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx[0];
	struct task_struct *child = (struct task_struct *)ctx[1];
	__u32 parent_tgid = parent->tgid, child_tgid = child->tgid;
	__u8 one = 1;

	if (child_tgid == parent_tgid || !bpf_map_lookup_elem(&targets, &parent_tgid))
		return 0; /* a new thread, or not ours */
	if (bpf_map_update_elem(&targets, &child_tgid, &one, BPF_NOEXIST) != 0) {
		count(CNT_FOLLOW_REFUSED);
		return 0;
	}
	struct proc_mappings *pm = bpf_map_lookup_elem(&proc_mappings, &parent_tgid);
	if (pm)
		bpf_map_update_elem(&proc_mappings, &child_tgid, pm, BPF_ANY);
	announce_process(EVENT_PROCESS_FORKED, child_tgid, parent_tgid);
	return 0;
}

/* fs/exec.c exec_binprm(): fires once the new image is mapped, before it runs. ctx: (task,
 * old_pid, linux_binprm *). */
SEC("tp_btf/sched_process_exec")
int on_exec(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	__u32 tgid = task->tgid;

	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	bpf_map_delete_elem(&proc_mappings, &tgid);
	announce_process(EVENT_PROCESS_EXECED, tgid, 0);
	return 0;
}

#endif
