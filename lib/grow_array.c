/* SPDX-License-Identifier: MIT */
#include "lib/grow_array.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *grow_array(void *items, size_t *capacity, size_t needed, size_t elem_size, size_t initial)
{
	if (needed <= *capacity)
		return items;
	size_t cap = *capacity ? *capacity : (initial ? initial : 1);
	while (cap < needed) {
		if (cap > SIZE_MAX / 2)
			return NULL;
		cap *= 2;
	}
	if (elem_size && cap > SIZE_MAX / elem_size)
		return NULL;
	void *grown = realloc(items, cap * elem_size);
	if (grown)
		*capacity = cap;
	return grown;
}

void *grow_array_push_slot(void *items_ptr, size_t *count, size_t *capacity, size_t elem_size,
			   size_t initial)
{
	void *items;

	if (*count == SIZE_MAX)
		return NULL;
	memcpy(&items, items_ptr, sizeof(items));
	void *grown = grow_array(items, capacity, *count + 1, elem_size, initial);
	if (!grown)
		return NULL;
	memcpy(items_ptr, &grown, sizeof(grown));
	return (char *)grown + (*count)++ * elem_size;
}

int grow_array_append_copy(void *items_ptr, size_t *count, size_t *capacity, size_t elem_size,
			   size_t initial, const void *value)
{
	void *slot = grow_array_push_slot(items_ptr, count, capacity, elem_size, initial);

	if (!slot)
		return -ENOMEM;
	memcpy(slot, value, elem_size);
	return 0;
}
