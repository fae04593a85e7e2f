/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sample_counts.bpf.h - the kernel-side aggregation: per generation (generations.bpf.h), a hash
 * from struct sample_key (process, thread, stack id, how the unwind ended) to a total: samples
 * for on-CPU profiles, nanoseconds off CPU with --off-cpu (off_cpu.bpf.h).
 */
#ifndef LUA_PERF_SAMPLE_COUNTS_BPF_H
#define LUA_PERF_SAMPLE_COUNTS_BPF_H

#include "lib/generations.bpf.h"
#include "lib/unwinder_state.bpf.h"

#define SAMPLE_COUNTS_MAP(name)                            \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_HASH);           \
		__uint(max_entries, MAX_SAMPLE_KEYS);      \
		__type(key, struct sample_key);            \
		__type(value, __u64);                      \
	} name SEC(".maps")

SAMPLE_COUNTS_MAP(sample_counts_0);
SAMPLE_COUNTS_MAP(sample_counts_1);

/* Add amount to st->key's count in st->generation; false when the map is full (counted). The
 * amount is passed in st (st->amount): on the BPF stack it would make on_sample's too deep for
 * Linux 6.1 (see on_sample). */
static __always_inline bool add_to_count(struct unwinder_state *st)
{
	__u32 generation = st->generation;
	void *counts = generation ? (void *)&sample_counts_1 : (void *)&sample_counts_0;
	__u64 *value;

	value = bpf_map_lookup_elem(counts, &st->key);
	if (value) {
		__sync_fetch_and_add(value, st->amount);
		return true;
	}
	if (bpf_map_update_elem(counts, &st->key, &st->amount, BPF_NOEXIST) == 0) {
		count_stored(generation_keys, generation);
		return true;
	}
	value = bpf_map_lookup_elem(counts, &st->key);
	if (!value) {
		count(CNT_COUNTS_FULL);
		return false;
	}
	__sync_fetch_and_add(value, st->amount);
	return true;
}

#endif
