// SPDX-License-Identifier: GPL-2.0
/*
 * sample.bpf.c - the sampling program: on every cpu-clock tick that lands in a target process,
 * unwind the user stack (lib/native_unwind.bpf.h, with the Lua frames spliced in), record the
 * kernel stack, and count the sample in a hash map under its struct sample_key: the process and
 * thread, the id of the stack (a hash of its kernel and user frames, which the stacks map holds
 * once) and how the user unwind ended. Userspace drains the maps every second or so
 * (lib/generations.bpf.h): nothing per sample crosses to userspace. Processes the targets start
 * join in the kernel (lib/process_follow.bpf.h). With --off-cpu, userspace loads on_switch
 * (lib/off_cpu.bpf.h) instead of on_sample: the same unwinder at every switch of a target
 * thread, weighted by the time it is away.
 *
 * `lua-perf dump` loads it with dump_threads set: it then keeps the first stack of each thread
 * that runs on a CPU (thread_stacks, keyed by thread ID); bpf/thread_dump.bpf.c unwinds the
 * threads that are off CPU.
 */
#include "lib/kernel_types.h"
#include <bpf/bpf_helpers.h>

/* The Lua walkers first: their global functions lead .text, as before the move to walk/. */
#include "walk/lua_puc_walk.bpf.h"
#include "walk/luajit_walk.bpf.h"

#include "lib/native_unwind.bpf.h"
#include "lib/process_follow.bpf.h"
#include "lib/off_cpu.bpf.h"
#include "lib/sample_counts.bpf.h"
#include "lib/stack_record.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* lua-perf dump: record each thread's first stack in thread_stacks instead of counting samples.
 * A read-only constant, so the verifier drops the branch not taken: profiling pays nothing. */
const volatile bool dump_threads = false;

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	/* x86_64 kernel addresses have the top bit set (Documentation/arch/x86/x86_64/mm.rst);
	 * the ctx only allows 8-byte loads, so this is simpler than reading the 16-bit cs. */
	bool in_kernel = (__s64)ctx->regs.ip < 0;

	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	if (dump_threads && bpf_map_lookup_elem(&thread_stacks, &tid))
		return 0; /* this thread is dumped already */
	count(CNT_SAMPLES);

	struct unwinder_state *st = unwinder_state();
	if (!st)
		return 0;
	begin_stack(st, tgid);
	if (collect_kernel_stacks && in_kernel)
		push_kernel_frames(st, bpf_get_stack(ctx, st->kernel_ips, sizeof(st->kernel_ips), 0));

	struct task_struct *task = bpf_get_current_task_btf();

	unwind_user(st, task);
	if (dump_threads) {
		record_thread(st, task, tid, THREAD_ON_CPU, 0);
		return 0;
	}
	/* In the per-CPU state, not on the stack: Linux < 6.2 rounds each function's stack to 32
	 * bytes when it checks the 512-byte total of a call chain (kernel/bpf/verifier.c,
	 * check_max_stack_depth), and on_sample must stay at 64 (a 24-byte key on it made 96). */
	st->key = (struct sample_key){.tgid = tgid, .tid = tid, .end_reason = st->end_reason};
	st->key.stack_id = store_stack(st);
	st->amount = 1;
	add_to_count(st);
	return 0;
}
