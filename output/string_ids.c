/* SPDX-License-Identifier: MIT */
#include "output/string_ids.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fnv1a.h"
#include "lib/grow_array.h"

static size_t *find_slot(const struct string_ids *t, const void *key, size_t len)
{
	size_t mask = t->slot_count - 1;

	for (size_t i = (size_t)fnv1a_64(FNV1A_64_START, key, len) & mask;; i = (i + 1) & mask) {
		size_t *slot = &t->slots[i];
		const struct string_key *k = *slot ? &t->keys[*slot - 1] : NULL;

		if (!k || (k->len == len && (len == 0 || memcmp(k->data, key, len) == 0)))
			return slot;
	}
}

static int grow_slots(struct string_ids *t)
{
	if (t->slot_count && (t->count + 1) * 2 <= t->slot_count)
		return 0;
	size_t new_count = t->slot_count ? t->slot_count * 2 : 256;
	size_t *slots = calloc(new_count, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	free(t->slots);
	t->slots = slots;
	t->slot_count = new_count;
	for (size_t i = 0; i < t->count; i++)
		*find_slot(t, t->keys[i].data, t->keys[i].len) = i + 1;
	return 0;
}

int string_ids_get(struct string_ids *t, const void *key, size_t len, uint64_t *id, bool *added)
{
	if (grow_slots(t) < 0)
		return -ENOMEM;
	size_t *slot = find_slot(t, key, len);
	*added = *slot == 0;
	if (*slot) {
		*id = *slot - 1;
		return 0;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, key, len);
	copy[len] = '\0';
	struct string_key k = {copy, len};
	if (grow_array_append(t->keys, t->count, t->capacity, 256, &k) < 0) {
		free(copy);
		return -ENOMEM;
	}
	*slot = t->count;
	*id = t->count - 1;
	return 0;
}

bool string_ids_find(const struct string_ids *t, const void *key, size_t len, uint64_t *id)
{
	if (t->slot_count == 0)
		return false;
	const size_t *slot = find_slot(t, key, len);
	if (*slot)
		*id = *slot - 1;
	return *slot != 0;
}

void string_ids_free(struct string_ids *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->keys[i].data);
	free(t->keys);
	free(t->slots);
	*t = (struct string_ids){0};
}
