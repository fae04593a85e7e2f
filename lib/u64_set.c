/* SPDX-License-Identifier: MIT */
#include "lib/u64_set.h"

#include <errno.h>
#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t capacity)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (size_t)key & (capacity - 1);
}

static void insert(uint64_t *slots, size_t capacity, uint64_t key)
{
	size_t i = slot_of(key, capacity);

	while (slots[i] != 0)
		i = (i + 1) & (capacity - 1);
	slots[i] = key;
}

static int grow(struct u64_set *set)
{
	size_t capacity = set->capacity ? set->capacity * 2 : 64;
	uint64_t *slots = calloc(capacity, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < set->capacity; i++)
		if (set->slots[i])
			insert(slots, capacity, set->slots[i]);
	free(set->slots);
	set->slots = slots;
	set->capacity = capacity;
	return 0;
}

bool u64_set_contains(const struct u64_set *set, uint64_t key)
{
	if (set->capacity == 0 || key == 0)
		return false;
	for (size_t i = slot_of(key, set->capacity);; i = (i + 1) & (set->capacity - 1)) {
		if (set->slots[i] == key)
			return true;
		if (set->slots[i] == 0)
			return false;
	}
}

int u64_set_add(struct u64_set *set, uint64_t key)
{
	if (key == 0 || u64_set_contains(set, key))
		return 0;
	/* keep the load below 1/2 so that probing stays short and always finds an empty slot */
	if ((set->count + 1) * 2 > set->capacity && grow(set) < 0)
		return -ENOMEM;
	insert(set->slots, set->capacity, key);
	set->count++;
	return 1;
}

void u64_set_free(struct u64_set *set)
{
	free(set->slots);
	set->slots = NULL;
	set->capacity = set->count = 0;
}
