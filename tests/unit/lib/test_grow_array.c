/* SPDX-License-Identifier: MIT */
/* test_grow_array.c - lib/grow_array.c: room for what is needed, doubling from the initial
 * capacity, the contents kept, and NULL with everything untouched when the size cannot be
 * represented; grow_array_push: the new element's slot, the count kept, the same refusals. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/grow_array.h"
#include "tests/unit/support/test_check.h"

static void grows_by_doubling(void)
{
	size_t capacity = 0, count = 0;
	uint32_t *items = NULL;

	for (uint32_t i = 0; i < 1000; i++) {
		uint32_t *grown = grow_array(items, &capacity, count + 1, sizeof(*items), 16);

		CHECK(grown != NULL, "out of memory at %u", i);
		if (!grown)
			break;
		items = grown;
		items[count++] = i * 7u;
		/* 16, 32, ..., 1024: always a power of two times 16, at least count */
		CHECK(capacity >= count && capacity % 16 == 0 && (capacity & (capacity - 1)) == 0,
		      "capacity %zu for %zu elements", capacity, count);
	}
	CHECK(capacity == 1024, "capacity %zu after 1000 elements from 16, want 1024", capacity);
	for (size_t i = 0; i < count; i++)
		CHECK(items[i] == i * 7u, "element %zu is %u after growing", i, items[i]);
	free(items);
}

static void keeps_an_array_with_room(void)
{
	size_t capacity = 8;
	char *items = malloc(capacity);

	CHECK(items != NULL, "malloc");
	CHECK(grow_array(items, &capacity, 8, 1, 4) == items && capacity == 8,
	      "an array with room was moved or its capacity changed to %zu", capacity);
	char *big = grow_array(items, &capacity, 100, 1, 4);
	CHECK(big != NULL && capacity == 128, "8 -> 100 elements: capacity %zu, want 128", capacity);
	free(big ? big : items);
}

static void refuses_sizes_that_overflow(void)
{
	size_t capacity = 4;
	uint64_t *items = calloc(capacity, sizeof(*items));

	CHECK(items != NULL, "calloc");
	CHECK(grow_array(items, &capacity, SIZE_MAX / 2, sizeof(*items), 4) == NULL && capacity == 4,
	      "elements * size beyond SIZE_MAX: not refused, or capacity changed to %zu", capacity);
	CHECK(grow_array(items, &capacity, SIZE_MAX, 1, 4) == NULL && capacity == 4,
	      "SIZE_MAX elements: not refused, or capacity changed to %zu", capacity);
	free(items); /* still ours after the refusals */
}

struct pair {
	uint32_t key;
	uint64_t value;
};

static void pushes_one_element_at_a_time(void)
{
	struct pair *items = NULL;
	size_t count = 0, capacity = 0;

	for (uint32_t i = 0; i < 100; i++) {
		struct pair *slot = grow_array_push(items, count, capacity, 4);

		CHECK(slot != NULL, "out of memory at %u", i);
		if (!slot)
			break;
		CHECK(slot == &items[i] && count == i + 1u, "push %u: slot %td, count %zu", i,
		      slot - items, count);
		*slot = (struct pair){i, (uint64_t)i * 3};
	}
	CHECK(capacity == 128, "capacity %zu after 100 pushes from 4, want 128", capacity);
	for (size_t i = 0; i < count; i++)
		CHECK(items[i].key == i && items[i].value == i * 3, "element %zu is {%u, %llu}", i,
		      items[i].key, (unsigned long long)items[i].value);
	free(items);
}

static void push_refused_leaves_the_array_alone(void)
{
	uint64_t *items = calloc(4, sizeof(*items));
	uint64_t *before = items;
	size_t count = SIZE_MAX, capacity = 4;

	CHECK(items != NULL, "calloc");
	CHECK(grow_array_push(items, count, capacity, 4) == NULL, "a push past SIZE_MAX elements");
	CHECK(items == before && count == SIZE_MAX && capacity == 4,
	      "a refused push changed the array, count %zu or capacity %zu", count, capacity);
	count = SIZE_MAX / 2;
	CHECK(grow_array_push(items, count, capacity, 4) == NULL, "elements * size beyond SIZE_MAX");
	CHECK(items == before && count == SIZE_MAX / 2 && capacity == 4,
	      "a refused push changed the array, count %zu or capacity %zu", count, capacity);
	free(items);
}

static void appends_copies(void)
{
	struct pair *items = NULL;
	size_t count = 0, capacity = 0;

	for (uint32_t i = 0; i < 40; i++) {
		const struct pair p = {i, (uint64_t)i << 33};
		CHECK(grow_array_append(items, count, capacity, 2, &p) == 0, "append %u", i);
	}
	CHECK(count == 40 && capacity == 64, "count %zu, capacity %zu after 40 appends from 2", count,
	      capacity);
	for (size_t i = 0; i < count; i++)
		CHECK(items[i].key == i && items[i].value == (uint64_t)i << 33, "element %zu", i);
	struct pair *before = items;
	count = SIZE_MAX;
	const struct pair p = {1, 2};
	CHECK(grow_array_append(items, count, capacity, 2, &p) == -ENOMEM &&
		      items == before && count == SIZE_MAX && capacity == 64,
	      "a refused append changed the array");
	free(items);
}

int main(void)
{
	grows_by_doubling();
	keeps_an_array_with_room();
	refuses_sizes_that_overflow();
	pushes_one_element_at_a_time();
	push_refused_leaves_the_array_alone();
	appends_copies();
	return check_finish("grow_array");
}
