/* SPDX-License-Identifier: MIT */
/* u64_array.h - sorted arrays of 64-bit values (function starts, addresses): binary searches and
 * sorting with duplicates dropped; the searches also over records sorted by a 64-bit key. */
#ifndef LUA_PERF_U64_ARRAY_H
#define LUA_PERF_U64_ARRAY_H

#include <stddef.h>
#include <stdint.h>

/* The index of the first of the count ascending values that is >= key (count when none is). */
size_t u64_lower_bound(const uint64_t *sorted, size_t count, uint64_t key);
/* The index of the first of the count ascending values that is > key (count when none is): the
 * number of values <= key, so sorted[result - 1] is the last start at or below key. */
size_t u64_upper_bound(const uint64_t *sorted, size_t count, uint64_t key);
/* The same searches over count records of `stride` bytes sorted by the uint64_t at `key_offset`
 * in each (rows by pc, symbols by address): pass sizeof and offsetof of the record's key. */
size_t u64_field_lower_bound(const void *records, size_t count, size_t stride, size_t key_offset,
			     uint64_t key);
size_t u64_field_upper_bound(const void *records, size_t count, size_t stride, size_t key_offset,
			     uint64_t key);
/* Sorts the count values ascending and drops repeats; returns how many are left. */
size_t u64_sort_unique(uint64_t *values, size_t count);

#endif
