/* SPDX-License-Identifier: MIT */
#include "lib/u64_array.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static uint64_t key_at(const void *records, size_t index, size_t stride, size_t key_offset)
{
	uint64_t key;
	memcpy(&key, (const unsigned char *)records + index * stride + key_offset, sizeof(key));
	return key;
}

/* The first index in [0, count) whose key is above key (or_equal: at or above). */
static size_t first_above(const void *records, size_t count, size_t stride, size_t key_offset,
			  uint64_t key, bool or_equal)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t at = key_at(records, mid, stride, key_offset);
		if (at < key || (!or_equal && at == key))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t u64_field_lower_bound(const void *records, size_t count, size_t stride, size_t key_offset,
			     uint64_t key)
{
	return first_above(records, count, stride, key_offset, key, true);
}

size_t u64_field_upper_bound(const void *records, size_t count, size_t stride, size_t key_offset,
			     uint64_t key)
{
	return first_above(records, count, stride, key_offset, key, false);
}

size_t u64_lower_bound(const uint64_t *sorted, size_t count, uint64_t key)
{
	return first_above(sorted, count, sizeof(*sorted), 0, key, true);
}

size_t u64_upper_bound(const uint64_t *sorted, size_t count, uint64_t key)
{
	return first_above(sorted, count, sizeof(*sorted), 0, key, false);
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

size_t u64_sort_unique(uint64_t *values, size_t count)
{
	if (count < 2)
		return count;
	qsort(values, count, sizeof(*values), compare_u64);
	size_t n = 1;
	for (size_t i = 1; i < count; i++)
		if (values[i] != values[n - 1])
			values[n++] = values[i];
	return n;
}
