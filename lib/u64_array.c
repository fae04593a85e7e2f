/* SPDX-License-Identifier: MIT */
#include "lib/u64_array.h"

#include <stdlib.h>

size_t u64_lower_bound(const uint64_t *sorted, size_t count, uint64_t key)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t u64_upper_bound(const uint64_t *sorted, size_t count, uint64_t key)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
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
