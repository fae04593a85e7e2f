/* SPDX-License-Identifier: GPL-2.0 */
/*
 * generations.bpf.h - where samples are kept until userspace takes them: two generations of
 * maps (the stacks here, the sample counts in sample.bpf.c). The programs record into the
 * active one; userspace flips `active_generation`, waits until no program still runs with the
 * old value, then reads and empties the other. So the maps never have to hold more than one
 * interval's distinct stacks, for runs of any length (docs/design.md, "Draining the samples").
 */
#ifndef LUA_PERF_GENERATIONS_BPF_H
#define LUA_PERF_GENERATIONS_BPF_H

#include "lib/kernel_types.h"
#include <bpf/bpf_helpers.h>

#include "abi/unwind_abi.h"

/* Written by userspace through the mmap()ed .bss; read once per sample (begin_stack). */
__u32 active_generation;
/* How full each generation is, for userspace to drain before a map fills: stacks inserted,
 * sample keys inserted. Reset by userspace when it has emptied the generation. */
__u64 generation_stacks[2];
__u64 generation_keys[2];

#define STACKS_MAP(name)                                   \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_HASH);           \
		__uint(max_entries, MAX_STACKS);           \
		__type(key, __u64);                        \
		__type(value, struct stack_trace);         \
	} name SEC(".maps")

STACKS_MAP(stacks_0);
STACKS_MAP(stacks_1);

static __always_inline __u32 current_generation(void)
{
	return *(volatile __u32 *)&active_generation & 1;
}

static __always_inline void *stacks_of(__u32 generation)
{
	return generation ? (void *)&stacks_1 : (void *)&stacks_0;
}

static __always_inline void count_stored(__u64 *per_generation, __u32 generation)
{
	__sync_fetch_and_add(&per_generation[generation & 1], 1);
}

#endif
