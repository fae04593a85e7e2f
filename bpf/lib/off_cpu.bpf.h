/* SPDX-License-Identifier: GPL-2.0 */
/*
 * off_cpu.bpf.h - lua-perf --off-cpu: where target threads wait. When a target thread leaves a
 * CPU, its stack is unwound exactly as a sample's (the same unwinder, Lua frames spliced), led by
 * a frame that says why it left (preempted, or asleep in which system call), and kept with the
 * time in off_cpu_threads; when it runs again, the time it was away is added to that stack's
 * count (sample_counts.bpf.h), in nanoseconds. Userspace counts the threads still away when the
 * run ends (profiler/off_cpu.c).
 *
 * The sched_switch tracepoint fires in __schedule() before context_switch() (kernel/sched/core.c):
 * the current task and address space are still prev's, so its user memory is read as in a sample
 * and its user registers are those saved at its kernel entry (bpf_task_pt_regs). Its arguments
 * (preempt, prev, next, prev_state) are those of Linux >= 5.18.
 */
#ifndef LUA_PERF_OFF_CPU_BPF_H
#define LUA_PERF_OFF_CPU_BPF_H

#include "lib/native_unwind.bpf.h"
#include "lib/sample_counts.bpf.h"
#include "lib/stack_record.bpf.h"

/* Set by userspace before load: shorter blocks are only counted (--min-block-us). */
const volatile __u64 min_block_ns = 1000;

/* userspace shrinks it to 1 entry when not profiling off CPU */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_OFF_CPU_THREADS);
	__type(key, __u32); /* thread ID */
	__type(value, struct off_cpu_thread);
} off_cpu_threads SEC(".maps");

/* The template a thread's entry is created from (its fields are all written afterwards). */
const struct off_cpu_thread new_off_cpu_thread = {};

/* include/linux/sched.h */
#define TASK_INTERRUPTIBLE 0x1
#define TASK_UNINTERRUPTIBLE 0x2
#define TASK_DEAD 0x80

static __always_inline __u64 off_cpu_frame(struct task_struct *prev, bool preempt, __u32 state)
{
	__u64 reason = OFF_CPU_BLOCKED;

	/* preempt: taken off its CPU while runnable; state 0 (TASK_RUNNING) without it: it gave
	 * the CPU up (sched_yield) or a signal cancelled its sleep - runnable all the same. */
	if (preempt || state == 0)
		reason = OFF_CPU_PREEMPTED;
	else if ((state & (TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE)) == TASK_UNINTERRUPTIBLE)
		reason = OFF_CPU_UNINTERRUPTIBLE;
	__u64 syscall = reason == OFF_CPU_PREEMPTED ? 0 : (__u64)(syscall_of(prev) + 1);

	return (FRAME_OFF_CPU << FRAME_KIND_SHIFT) | (reason << OFF_CPU_REASON_SHIFT) |
	       (syscall & OFF_CPU_SYSCALL_MASK);
}

/* The entry of thread *tid, created if need be. */
static __always_inline struct off_cpu_thread *off_cpu_entry(__u32 *tid)
{
	struct off_cpu_thread *held = bpf_map_lookup_elem(&off_cpu_threads, tid);

	if (held)
		return held;
	if (bpf_map_update_elem(&off_cpu_threads, tid, &new_off_cpu_thread, BPF_NOEXIST) != 0) {
		count(CNT_OFF_CPU_UNTRACKED);
		return NULL;
	}
	return bpf_map_lookup_elem(&off_cpu_threads, tid);
}

static __always_inline void hold_stack(struct off_cpu_thread *held, struct unwinder_state *st,
				       __u64 now)
{
	__u32 len = st->trace.len;

	if (len > MAX_STACK_FRAMES)
		len = MAX_STACK_FRAMES;
	held->start_ns = now;
	held->hash = st->hash;
	held->proto_hash = st->proto_hash;
	held->tgid = st->tgid;
	held->end_reason = st->end_reason;
	held->lua_frames = st->lua_frames;
	held->trace.len = len;
	/* only the frames recorded: a switch is no place to copy 2 KiB */
	bpf_probe_read_kernel(held->trace.frames, len * sizeof(__u64), st->trace.frames);
}

/* Target thread prev leaves the CPU. Its map keys live in st->key, not on the BPF stack: Linux
 * < 6.2 limits the stack of the whole call chain down to the unwinder's deepest callback to 512
 * bytes (see on_sample). A thread's entry lives from its first switch-out to its last (TASK_DEAD:
 * it exits), not one switch: nothing is allocated per switch. */
static __always_inline void switched_out(void *ctx, struct task_struct *prev, bool preempt,
					 __u32 state, __u64 now)
{
	struct unwinder_state *st = unwinder_state();

	if (!st)
		return;
	st->key.tgid = prev->tgid;
	st->key.tid = prev->pid;
	if (state & TASK_DEAD) { /* even if its process is no target any more */
		bpf_map_delete_elem(&off_cpu_threads, &st->key.tid);
		return;
	}
	if (!bpf_map_lookup_elem(&targets, &st->key.tgid))
		return;
	count(CNT_OFF_CPU_SWITCHES);
	struct off_cpu_thread *held = off_cpu_entry(&st->key.tid);

	if (!held)
		return;
	begin_stack(st, st->key.tgid);
	push_frame(st, off_cpu_frame(prev, preempt, state));
	if (collect_kernel_stacks)
		push_kernel_frames(st, bpf_get_stack(ctx, st->kernel_ips, sizeof(st->kernel_ips), 0));
	unwind_user(st, prev);
	hold_stack(held, st, now);
}

/* Thread next runs again: the time since it left goes to the stack it left with. Not inlined:
 * its stack frame stays out of the unwinder's call chain (switched_out). */
static __noinline void switched_in(struct task_struct *next, __u64 now)
{
	__u32 tid = next->pid;
	struct off_cpu_thread *held = bpf_map_lookup_elem(&off_cpu_threads, &tid);

	if (!held || !held->start_ns)
		return; /* not followed, or its switch-out was not (it is back, held is stale) */
	__u64 away = now - held->start_ns;
	struct unwinder_state *st = unwinder_state();

	if (away < min_block_ns) {
		count(CNT_OFF_CPU_SHORT);
		count_add(CNT_OFF_CPU_SHORT_NS, away);
	} else if (st) {
		st->tgid = held->tgid;
		st->proto_hash = held->proto_hash;
		st->generation = current_generation();
		st->key = (struct sample_key){.tgid = held->tgid, .tid = tid,
					      .end_reason = held->end_reason};
		st->key.stack_id = store_trace(st, &held->trace, held->hash, held->lua_frames);
		st->amount = away;
		if (add_to_count(st))
			count_add(CNT_OFF_CPU_NS, away);
	}
	held->start_ns = 0; /* back on a CPU */
}

/* ctx: (bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int
 * prev_state) */
SEC("tp_btf/sched_switch")
int on_switch(__u64 *ctx)
{
	bool preempt = (bool)ctx[0];
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	__u32 prev_state = (__u32)ctx[3];
	__u64 now = bpf_ktime_get_ns();

	switched_in(next, now);
	switched_out(ctx, prev, preempt, prev_state, now);
	return 0;
}

#endif
