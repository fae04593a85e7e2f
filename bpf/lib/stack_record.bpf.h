/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stack_record.bpf.h - a stack from its start to where it is kept: the kernel frames, the
 * stack's identity (a hash of its frames, key of the active generation's stacks map,
 * generations.bpf.h), and for `lua-perf dump` the first
 * stack of each thread with what the thread is doing.
 */
#ifndef LUA_PERF_STACK_RECORD_BPF_H
#define LUA_PERF_STACK_RECORD_BPF_H

#include "lib/generations.bpf.h"
#include "lib/unwinder_state.bpf.h"

/* lua-perf dump: one stack per thread (userspace shrinks it to 1 entry when profiling). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_DUMP_THREADS);
	__type(key, __u32); /* thread ID */
	__type(value, struct thread_stack);
} thread_stacks SEC(".maps");

static __always_inline void begin_stack(struct unwinder_state *st, __u32 tgid)
{
	st->trace.len = 0;
	st->hash = 0x243f6a8885a308d3ull;
	st->lua_L = 0;
	st->lua_ci = 0;
	st->lua_frames = 0;
	st->proto_hash = 0;
	st->lua_end = 0;
	st->tgid = tgid;
	st->end_reason = END_DEPTH;
	st->generation = current_generation();
	st->window_len = 0;
	st->memo_closure = 0;
	st->memo_code_proto = 0;
}

/* Kernel frames first (leaf first), with bpf_get_stack / bpf_get_task_stack (bytes = their
 * result) rather than a STACK_TRACE map, whose buckets drop a stack when two hash alike
 * (kernel/bpf/stackmap.c: -EEXIST). */
static __always_inline void push_kernel_frames(struct unwinder_state *st, long bytes)
{
	if (bytes < 0) {
		count(CNT_KSTACK_FAILED);
		return;
	}
	for (int i = 0; i < MAX_KERNEL_FRAMES; i++) {
		if (i >= bytes / 8)
			break;
		push_frame(st, (FRAME_KERNEL << FRAME_KIND_SHIFT) | (st->kernel_ips[i] & FRAME_KERNEL_MASK));
	}
}

/* Sets of Protos userspace was told of, across generations: a stack is announced only when its
 * Lua frames' Protos make a set not announced before in its process (a stack that keeps being
 * sampled, or differs only in bytecode positions, names no new function), not again every time
 * a drain empties its generation. Keyed by the Protos' hash mixed with the process; an entry the
 * LRU evicts only costs one more announcement. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_ANNOUNCED_STACKS);
	__type(key, __u64);
	__type(value, __u64);
} announced_sets SEC(".maps");

/* Wake-ups for new Lua stacks (bpf_ktime_get_ns times; racy by design: two CPUs may both
 * wake userspace, which only costs one wake-up more). */
__u64 lua_wakeup_window_ns;  /* when the current second of wake-ups began */
__u64 lua_wakeups_in_window;
__u64 last_lua_wakeup_ns;

/* Wake userspace at once for the first LUA_WAKEUPS_AT_ONCE new Lua stacks of a second (a Proto
 * may live for milliseconds: it is named while alive), then at most once per
 * LUA_WAKEUP_INTERVAL_NS: the events in between wait in the ring, which userspace polls at that
 * interval while events come (profiler/session_sampling.c). A burst of new stacks costs a
 * bounded number of wake-ups. */
static __always_inline __u64 lua_event_wakeup(void)
{
	__u64 now = bpf_ktime_get_ns();

	if (now - lua_wakeup_window_ns >= 1000000000ull) {
		lua_wakeup_window_ns = now;
		lua_wakeups_in_window = 0;
	}
	if (lua_wakeups_in_window >= LUA_WAKEUPS_AT_ONCE &&
	    now - last_lua_wakeup_ns < LUA_WAKEUP_INTERVAL_NS)
		return BPF_RB_NO_WAKEUP;
	lua_wakeups_in_window++;
	last_lua_wakeup_ns = now;
	return 0;
}

/* Once per distinct stack of a process, never per sample: userspace names the Protos in it
 * while they are alive. */
static __always_inline void announce_lua_stack(struct unwinder_state *st, __u64 stack_id,
					       __u32 generation)
{
	st->announced_key = st->proto_hash ^ ((__u64)st->tgid * 0x9e3779b97f4a7c15ull);
	st->announced_value = 1;
	if (bpf_map_update_elem(&announced_sets, &st->announced_key, &st->announced_value,
				BPF_NOEXIST) != 0)
		return; /* announced before (or the map refused: the drain names it anyway) */
	struct profiler_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);

	if (!event) {
		count(CNT_LUA_EVENTS_LOST);
		bpf_map_delete_elem(&announced_sets, &st->announced_key);
		return;
	}
	event->type = EVENT_NEW_LUA_STACK;
	event->tgid = st->tgid;
	event->addr = stack_id;
	event->generation = generation;
	bpf_ringbuf_submit(event, lua_event_wakeup());
}

/* Keep trace (its frames hash to `hash`) in the stacks of st's generation; announce it if it has
 * Lua frames never announced (st->tgid, st->proto_hash). Returns its id, 0 if not kept. */
static __always_inline __u64 store_trace(struct unwinder_state *st, struct stack_trace *trace,
					 __u64 hash, __u32 lua_frames)
{
	__u64 id = hash ? hash : 1;
	__u32 generation = st->generation;
	void *stacks = stacks_of(generation);

	if (trace->len == 0)
		return 0;
	if (bpf_map_lookup_elem(stacks, &id))
		return id;
	if (bpf_map_update_elem(stacks, &id, trace, BPF_NOEXIST) == 0) {
		count_stored(generation_stacks, generation);
		if (lua_frames)
			announce_lua_stack(st, id, generation);
		return id;
	}
	if (bpf_map_lookup_elem(stacks, &id)) /* another CPU inserted it meanwhile */
		return id;
	count(CNT_STACKS_FULL);
	return 0;
}

static __always_inline __u64 store_stack(struct unwinder_state *st)
{
	return store_trace(st, &st->trace, st->hash, st->lua_frames);
}

/* The system call task is in, or -1: syscall entry saves its number in orig_ax and leaves
 * -ENOSYS in ax until the call returns (arch/x86/entry/entry_64.S, entry_SYSCALL_64: "pushq
 * $-ENOSYS"); interrupts store a negative vector there instead. */
#define ENOSYS_ERRNO 38
static __always_inline __s32 syscall_of(struct task_struct *task)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	long orig_ax = (long)regs->orig_ax;

	if ((long)regs->ax != -ENOSYS_ERRNO || orig_ax < 0 || orig_ax > 0xffff)
		return -1;
	return (__s32)orig_ax;
}

/* lua-perf dump: the stack of thread tid, kept if it is the first one of that thread. Not
 * inlined: its locals would add to the stack frame the unwinder's bpf_loop callbacks nest in. */
static __noinline void record_thread(struct unwinder_state *st, struct task_struct *task,
					  __u32 tid, __u32 capture, __u32 state)
{
	struct thread_stack ts = {
		.tgid = st->tgid,
		.end_reason = st->end_reason,
		.capture = capture,
		.state = state,
		.syscall = syscall_of(task),
	};

	bpf_probe_read_kernel_str(ts.comm, sizeof(ts.comm), task->comm);
	ts.stack_id = store_stack(st);
	bpf_map_update_elem(&thread_stacks, &tid, &ts, BPF_NOEXIST);
}

#endif
