/* SPDX-License-Identifier: MIT */
/* grow_array.h - the one growth policy of lua-perf's growable arrays. */
#ifndef LUA_PERF_GROW_ARRAY_H
#define LUA_PERF_GROW_ARRAY_H

#include <stddef.h>

/* Room for `needed` elements of elem_size bytes in items, which has room for *capacity: items
 * itself when it has, else items reallocated with the capacity doubled (from `initial` when 0)
 * until they fit, and *capacity updated. NULL when out of memory or when the size would not fit
 * in size_t: items is then untouched and still the caller's to free. */
void *grow_array(void *items, size_t *capacity, size_t needed, size_t elem_size, size_t initial);

/* One more element at the end of the array `items` (an lvalue `T *`, NULL when empty) that
 * holds `count` elements and has room for `capacity` (size_t lvalues): grown by grow_array()
 * when full, `count` incremented. Evaluates to the new element (a `T *` to fill), or NULL when
 * out of memory, with items, count and capacity untouched. */
#define grow_array_push(items, count, capacity, initial)                                          \
	grow_array_push_slot(&(items), &(count), &(capacity), sizeof(*(items)), (initial))

/* grow_array_push() and a copy of *value into the new element: 0, or -ENOMEM with nothing
 * changed. value must point to the array's element type (checked at compile time by the
 * unevaluated assignment). */
#define grow_array_append(items, count, capacity, initial, value)                                 \
	((void)sizeof(*(items) = *(value)),                                                        \
	 grow_array_append_copy(&(items), &(count), &(capacity), sizeof(*(items)), (initial),      \
				(value)))

/* grow_array_push() without the macro: items_ptr is the address of the array's pointer (of any
 * object pointer type; they share void *'s representation on every target lua-perf runs on). */
void *grow_array_push_slot(void *items_ptr, size_t *count, size_t *capacity, size_t elem_size,
			   size_t initial);
/* grow_array_append() without the macro. */
int grow_array_append_copy(void *items_ptr, size_t *count, size_t *capacity, size_t elem_size,
			   size_t initial, const void *value);

#endif
