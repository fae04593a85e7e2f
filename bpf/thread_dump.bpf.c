// SPDX-License-Identifier: GPL-2.0
/*
 * thread_dump.bpf.c - `lua-perf dump`: unwind the threads of the target processes that are off
 * CPU (sleeping, or runnable and waiting for a CPU), with the very unwinder and Lua walkers of
 * the sampling program (sample.bpf.c), built here with LUA_PERF_TASK_ITER so that they read the
 * thread's memory with bpf_copy_from_user_task (lib/user_memory.bpf.h). Threads on a CPU are left
 * to the sampling program (dump_threads mode); both record into the shared map thread_stacks,
 * first one wins.
 *
 * A task iterator (iter.s/task: sleepable, Linux 5.18) visits every task of the system each time
 * userspace reads the iterator; userspace shares every map of the sampling object with this one
 * but `scratch` (a sampling program may run on this CPU while the iterator sleeps in a read).
 *
 * Off CPU, a thread's user registers are those saved at its last kernel entry (task_pt_regs)
 * and its stack does not change: the snapshot is exact if it did not run while we read it,
 * which the context switch counts (kernel/sched/core.c __schedule: every switch away from a
 * task increments its nvcsw or nivcsw) and on_cpu confirm afterwards.
 */
#define LUA_PERF_TASK_ITER 1
#include "lib/kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* The Lua walkers first: their global functions lead .text, as before the move to walk/. */
#include "walk/lua_puc_walk.bpf.h"
#include "walk/luajit_walk.bpf.h"

#include "lib/native_unwind.bpf.h"
#include "lib/stack_record.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by userspace after a grace period. Until then a runnable thread (waiting for a CPU) is
 * left to the sampling program, which takes it as it runs; one that gets no CPU meanwhile is
 * unwound where it waits. */
bool take_runnable;

static __always_inline __u64 context_switches(struct task_struct *task)
{
	return BPF_CORE_READ(task, nvcsw) + BPF_CORE_READ(task, nivcsw);
}

SEC("iter.s/task")
int dump_thread(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (!task)
		return 0;
	__u32 tgid = task->tgid, tid = task->pid;
	if (!bpf_map_lookup_elem(&targets, &tgid) || bpf_map_lookup_elem(&thread_stacks, &tid))
		return 0;
	/* A thread on a CPU changes its stack while we read it: the sampling program takes it. */
	if (BPF_CORE_READ(task, on_cpu) || !task->mm)
		return 0;
	/* (no state kept across the unwind: a known value would double the verifier's work) */
	if (!take_runnable && BPF_CORE_READ(task, __state) == 0 /* TASK_RUNNING */)
		return 0;
	__u64 switches = context_switches(task);

	struct unwinder_state *st = unwinder_state();
	if (!st)
		return 0;
	dump_tid = (__s32)tid;
	begin_stack(st, tgid);
	if (collect_kernel_stacks)
		push_kernel_frames(st, bpf_get_task_stack(task, st->kernel_ips, sizeof(st->kernel_ips), 0));
	unwind_user(st, task);
	/* It ran meanwhile: the frames may mix two moments. A later round, or the sampling
	 * program while it runs, takes it again. */
	if (BPF_CORE_READ(task, on_cpu) || context_switches(task) != switches)
		return 0;
	record_thread(st, task, tid, THREAD_OFF_CPU, BPF_CORE_READ(task, __state));
	return 0;
}
