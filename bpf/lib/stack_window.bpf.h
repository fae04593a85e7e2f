/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stack_window.bpf.h - the native unwinder's reads of the user stack (return addresses, saved
 * registers) served from one copy of up to STACK_WINDOW bytes. A frame's slots lie between its
 * stack pointer and its CFA, and its caller's frame starts there, so one copy serves several
 * frames: one helper call per few frames instead of one per slot (up to seven a frame). In a
 * slow hour of the 2-vCPU VM this project is measured on, the slots' reads were two thirds of a
 * native frame's cost, about 55 ns each (docs/benchmarks.md, "Where the extra points went").
 */
#ifndef LUA_PERF_STACK_WINDOW_BPF_H
#define LUA_PERF_STACK_WINDOW_BPF_H

#include "lib/unwinder_state.bpf.h"
#include "lib/user_memory.bpf.h"

#define WINDOW_PAGE_SIZE 4096

/* Copies the stack from start into the window: STACK_WINDOW bytes or, when that copy fails
 * (the top of a stack is the end of its mapping), the rest of start's page. */
static __always_inline int window_fill(struct unwinder_state *st, __u64 start)
{
	__u32 len = STACK_WINDOW;

	st->window_len = 0;
	if (read_user(st->window, STACK_WINDOW, (void *)start)) {
		len = WINDOW_PAGE_SIZE - (__u32)(start & (WINDOW_PAGE_SIZE - 1));
		if (len >= STACK_WINDOW)
			return -1; /* the same copy, which failed already */
		/* The mask bounds len for the verifier: Linux 6.1 lost the bound of the two
		 * comparisons above, which clang joins into one on a copy of len. */
		opaque(len);
		len &= STACK_WINDOW - 1;
		if (len < sizeof(__u64))
			return -1;
		if (read_user(st->window, len, (void *)start))
			return -1;
	}
	st->window_start = start;
	st->window_len = len;
	return 0;
}

/* The word of user stack at addr: from the window, refilled from the frame's stack pointer when
 * addr lies outside it (the frame's slots are above it), or read on its own when no window holds
 * it. Returns 0, or -1 when the memory cannot be read. A global function: the verifier checks it
 * once, not at each of unwind_frame's seven reads. */
__noinline int read_stack_word(struct unwinder_state *st, __u64 addr, __u64 *out)
{
	if (!st || !out)
		return -1;

	__u64 off = addr - st->window_start;

	if (addr < st->window_start || off + sizeof(__u64) > st->window_len) {
		__u64 sp = st->regs[DW_RSP];
		bool from_sp = (st->valid & REG_BIT(DW_RSP)) && sp <= addr &&
			       addr - sp <= STACK_WINDOW - sizeof(__u64);
		__u64 start = from_sp ? sp : addr;

		if (window_fill(st, start))
			return read_u64(addr, out) ? -1 : 0;
		off = addr - start;
	}
	if (off > STACK_WINDOW - sizeof(__u64) || off + sizeof(__u64) > st->window_len)
		return read_u64(addr, out) ? -1 : 0;
	*out = *(__u64 *)(st->window + off);
	return 0;
}

/* read_stack_word with its common case inline, addr inside the window: the global call per slot
 * cost more than the check (on_sample's time per run about 13% lower at 116 native frames,
 * docs/benchmarks.md "Two frames per loop step"). */
static __always_inline int stack_word(struct unwinder_state *st, __u64 addr, __u64 *out)
{
	__u64 off = addr - st->window_start;

	if (addr >= st->window_start && off <= STACK_WINDOW - sizeof(__u64) &&
	    off + sizeof(__u64) <= st->window_len) {
		*out = *(__u64 *)(st->window + off);
		return 0;
	}
	return read_stack_word(st, addr, out);
}

#endif
