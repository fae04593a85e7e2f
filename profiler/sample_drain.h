/* SPDX-License-Identifier: MIT */
/* sample_drain.h - taking the samples out of the kernel while profiling, so that its maps never
 * fill: the BPF programs record into one of two generations of maps (bpf/lib/generations.bpf.h);
 * draining switches to the other, waits until no program still records into the old one, and
 * hands every sample of the old one to a callback, then empties it. */
#ifndef LUA_PERF_SAMPLE_DRAIN_H
#define LUA_PERF_SAMPLE_DRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/abi/unwind_abi.h"

struct sample_bpf;

struct stack_entry {
	uint64_t id;
	const struct stack_trace *trace;
};

struct sample_drain {
	struct sample_bpf *skel;
	int sync_outer_fd;             /* a map of maps: updating it waits for running programs */
	int sync_inner_fd;
	struct sample_key *keys;       /* MAX_SAMPLE_KEYS each */
	uint64_t *counts;
	uint64_t *stack_ids;           /* MAX_STACKS each */
	struct stack_trace *traces;
	struct stack_entry *stacks;    /* sorted by id, for the keys to find their frames */
	uint64_t drained;              /* generations drained */
	uint64_t amount_taken;         /* the counts taken, summed: samples, or ns off CPU */
	double longest_sync;           /* seconds, the longest wait for running programs */
};

/* Handles count samples of key, whose frames are trace (NULL: none recorded). */
typedef int (*sample_fn)(void *ctx, const struct sample_key *key, uint64_t count,
			 const struct stack_trace *trace);

/* Once the BPF object has its maps (its .bss is read only when draining, after the load). 0, or
 * -errno with the error said. */
int sample_drain_init(struct sample_drain *d, struct sample_bpf *skel);
void sample_drain_free(struct sample_drain *d);
/* The active generation is half full: drain now rather than at the next interval. */
bool sample_drain_due(const struct sample_drain *d);
/* Switch generations, then hand every sample of the previous one to fn and empty it. Returns
 * 0, fn's first error or -errno (the generation is emptied in any case). */
int sample_drain_run(struct sample_drain *d, sample_fn fn, void *ctx);
/* The stacks map of a generation (for naming the Lua frames of a stack as soon as BPF announces
 * it). */
int sample_drain_stacks_fd(const struct sample_drain *d, uint32_t generation);

#endif
