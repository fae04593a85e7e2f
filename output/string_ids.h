/* SPDX-License-Identifier: MIT */
/* string_ids.h - numbers for distinct byte strings, in order of first appearance (0, 1, ...):
 * the pprof output's string table, and its functions, locations and mappings by their key. */
#ifndef LUA_PERF_STRING_IDS_H
#define LUA_PERF_STRING_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct string_key {
	char *data;
	size_t len;
};

/* A zeroed struct is empty. */
struct string_ids {
	struct string_key *keys; /* by number */
	size_t count;
	size_t capacity;
	size_t *slots;           /* hash table: number + 1, 0 = empty; at most half full */
	size_t slot_count;
};

/* The number of key[0..len) into *id; *added says whether it is new (then copied). 0 or
 * -ENOMEM (nothing added). */
int string_ids_get(struct string_ids *t, const void *key, size_t len, uint64_t *id, bool *added);
/* The number of key[0..len) into *id, if it has one (nothing is added). */
bool string_ids_find(const struct string_ids *t, const void *key, size_t len, uint64_t *id);
void string_ids_free(struct string_ids *t);

#endif
