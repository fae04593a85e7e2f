/* SPDX-License-Identifier: GPL-2.0 */
/*
 * user_memory.bpf.h - reading the target thread's memory. The sampling program runs in the
 * sampled thread itself (bpf_probe_read_user); the dump's task iterator runs in lua-perf and
 * reads the thread dump_tid with bpf_copy_from_user_task (sleepable programs, Linux 5.18). An
 * entry point that is a task iterator defines LUA_PERF_TASK_ITER before including this.
 *
 * The iterator looks the thread up at every read: the unwinder's parts are global BPF functions
 * (checked once each by the verifier), and before Linux 6.8 those take no task pointer; a dump is
 * one unwind per thread, not a hot path. bpf_task_from_pid is Linux 6.2.
 */
#ifndef LUA_PERF_USER_MEMORY_BPF_H
#define LUA_PERF_USER_MEMORY_BPF_H

#include "lib/kernel_types.h"
#include <bpf/bpf_helpers.h>

#ifdef LUA_PERF_TASK_ITER
extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
__s32 dump_tid;

static __always_inline long read_user(void *dst, __u32 size, const void *src)
{
	struct task_struct *task = bpf_task_from_pid(dump_tid);
	long rc;

	if (!task)
		return -1;
	rc = bpf_copy_from_user_task(dst, size, src, task, 0);
	bpf_task_release(task);
	return rc;
}
#else
#define read_user bpf_probe_read_user
#endif

static __always_inline int read_u64(__u64 addr, __u64 *out)
{
	return read_user(out, sizeof(*out), (void *)addr);
}

#endif
