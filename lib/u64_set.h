/* SPDX-License-Identifier: MIT */
/* u64_set.h - a set of nonzero 64-bit keys (open addressing, grows by doubling). */
#ifndef LUA_PERF_U64_SET_H
#define LUA_PERF_U64_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct u64_set {
	uint64_t *slots;  /* 0 = empty */
	size_t capacity;  /* a power of two */
	size_t count;
};

/* Adds key (nonzero). Returns 1 when added, 0 when already present, -ENOMEM. */
int u64_set_add(struct u64_set *set, uint64_t key);
bool u64_set_contains(const struct u64_set *set, uint64_t key);
void u64_set_free(struct u64_set *set);

#endif
