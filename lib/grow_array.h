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

#endif
