/* SPDX-License-Identifier: MIT */
/* folded_profile.h - the profile as it accumulates in userspace while the kernel's maps are
 * drained: sample counts by folded stack (the symbolized text, so that the same stack in many
 * processes, or in many generations, is one line), by process and by how the user stack ended.
 * Memory grows with what is distinct after symbolization; past max_text_bytes (default
 * FOLDED_PROFILE_MAX_BYTES) of stack text, samples of new stacks are counted under one overflow
 * line (never dropped). Each line also counts its samples by thread (32 bytes per thread
 * that ran the stack, for the pprof output's pid/comm/thread labels; not counted against the
 * bound).
 * A zeroed struct is an empty profile. */
#ifndef LUA_PERF_FOLDED_PROFILE_H
#define LUA_PERF_FOLDED_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpf/abi/unwind_abi.h"
#include "output/flamegraph_svg.h"
#include "output/process_samples.h"

#define FOLDED_PROFILE_MAX_BYTES ((size_t)512 << 20)
#define FOLDED_PROFILE_OVERFLOW_LINE "[lua-perf: too many distinct stacks]"

struct folded_profile {
	size_t max_text_bytes;        /* the bound; 0: FOLDED_PROFILE_MAX_BYTES */
	struct folded_line *lines;    /* distinct stacks, in order of first appearance */
	size_t count;
	size_t capacity;
	size_t *slots;                /* hash table: index + 1 into lines, 0 = empty */
	size_t slot_count;            /* a power of two */
	size_t text_bytes;            /* of every line's text, counted against the bound */
	uint64_t overflow_samples;    /* samples of stacks beyond the bound */
	struct process_samples *processes; /* sorted by tgid */
	size_t process_count;
	size_t process_capacity;
	uint64_t samples;
	uint64_t by_reason[END_REASON_COUNT];
};

/* count samples of thread tid of process tgid whose user stack ended with end_reason and whose
 * frames fold to text (root first; taken: freed here). text NULL: out of memory while naming
 * it. *line_index (may be NULL) is set to the index of the line counted in (valid until the
 * lines are sorted), and left alone when none was. Returns 0 or -ENOMEM (the samples are then
 * counted in the totals but not in a line). */
int folded_profile_add(struct folded_profile *p, pid_t tgid, pid_t tid, uint32_t end_reason,
		       char *text, uint64_t count, size_t *line_index);
/* As folded_profile_add, into the line of index line_index that an earlier add gave. */
int folded_profile_add_to_line(struct folded_profile *p, size_t line_index, pid_t tgid,
			       pid_t tid, uint32_t end_reason, uint64_t count);
/* Is the line of this index the one of the stacks beyond the bound? */
bool folded_profile_is_overflow(const struct folded_profile *p, size_t line_index);
/* The bound on the text of distinct lines, in bytes. */
size_t folded_profile_bound(const struct folded_profile *p);
/* The lines sorted by text, for writing (the profile must not be added to afterwards). */
void folded_profile_sort(struct folded_profile *p);
/* Processes most samples first (the profile must not be added to afterwards). */
void folded_profile_sort_processes(struct folded_profile *p);
void folded_profile_free(struct folded_profile *p);

#endif
