/* SPDX-License-Identifier: MIT */
/* test_u64_array.c - lib/u64_array.c: lower and upper bounds over plain sorted values and over
 * records sorted by a 64-bit field, checked against a linear scan for every key around every
 * value (repeats, the ends, empty arrays), and the sort that drops repeats. */
#include <stddef.h>
#include <stdint.h>

#include "lib/u64_array.h"
#include "tests/unit/support/test_check.h"

struct record {
	uint32_t tag;     /* the key is not first: the offset is honoured */
	uint64_t key;
	char pad[3];      /* nor a multiple of 8 bytes after it: the stride is too */
};

static const uint64_t VALUES[] = { 0, 3, 3, 3, 10, 11, 500, UINT64_MAX - 1, UINT64_MAX };
#define VALUE_COUNT (sizeof(VALUES) / sizeof(VALUES[0]))

static size_t linear_first(const uint64_t *values, size_t count, uint64_t key, int or_equal)
{
	size_t i = 0;
	while (i < count && (values[i] < key || (!or_equal && values[i] == key)))
		i++;
	return i;
}

static void check_key(const struct record *records, size_t count, uint64_t key)
{
	size_t lower = linear_first(VALUES, count, key, 1), upper = linear_first(VALUES, count, key, 0);
	size_t stride = sizeof(*records), offset = offsetof(struct record, key);

	CHECK(u64_lower_bound(VALUES, count, key) == lower, "lower bound of %llu in %zu values",
	      (unsigned long long)key, count);
	CHECK(u64_upper_bound(VALUES, count, key) == upper, "upper bound of %llu in %zu values",
	      (unsigned long long)key, count);
	CHECK(u64_field_lower_bound(records, count, stride, offset, key) == lower,
	      "field lower bound of %llu in %zu records", (unsigned long long)key, count);
	CHECK(u64_field_upper_bound(records, count, stride, offset, key) == upper,
	      "field upper bound of %llu in %zu records", (unsigned long long)key, count);
}

static void bounds_match_a_linear_scan(void)
{
	struct record records[VALUE_COUNT];

	for (size_t i = 0; i < VALUE_COUNT; i++)
		records[i] = (struct record){ .tag = (uint32_t)i, .key = VALUES[i] };
	for (size_t count = 0; count <= VALUE_COUNT; count++)
		for (size_t i = 0; i < VALUE_COUNT; i++) {
			check_key(records, count, VALUES[i]);
			check_key(records, count, VALUES[i] - 1);   /* wraps at 0: UINT64_MAX */
			check_key(records, count, VALUES[i] + 1);   /* wraps at UINT64_MAX: 0 */
		}
}

static void sort_unique_drops_repeats(void)
{
	uint64_t values[] = { 9, 3, UINT64_MAX, 3, 0, 9, 9, 1 };
	const uint64_t want[] = { 0, 1, 3, 9, UINT64_MAX };
	size_t n = u64_sort_unique(values, sizeof(values) / sizeof(values[0]));

	CHECK(n == sizeof(want) / sizeof(want[0]), "%zu values left, want 5", n);
	for (size_t i = 0; i < n && i < 5; i++)
		CHECK(values[i] == want[i], "value %zu is %llu", i, (unsigned long long)values[i]);
	CHECK(u64_sort_unique(values, 0) == 0 && u64_sort_unique(values, 1) == 1, "0 and 1 values");
}

int main(void)
{
	bounds_match_a_linear_scan();
	sort_unique_drops_repeats();
	return check_finish("u64_array");
}
