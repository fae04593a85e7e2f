/* SPDX-License-Identifier: MIT */
/* fnv1a.h - FNV-1a, the hash of lua-perf's hash tables and change detection (not for security:
 * a target cannot gain anything by colliding them but a slower lookup). */
#ifndef LUA_PERF_FNV1A_H
#define LUA_PERF_FNV1A_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A_64_START 0xcbf29ce484222325ull

/* hash (FNV1A_64_START, or an earlier result to go on with) extended by len bytes of data. */
static inline uint64_t fnv1a_64(uint64_t hash, const void *data, size_t len)
{
	const unsigned char *bytes = data;

	for (size_t i = 0; i < len; i++)
		hash = (hash ^ bytes[i]) * 0x100000001b3ull;
	return hash;
}

static inline uint32_t fnv1a_32(const void *data, size_t len)
{
	const unsigned char *bytes = data;
	uint32_t hash = 2166136261u;

	for (size_t i = 0; i < len; i++)
		hash = (hash ^ bytes[i]) * 16777619u;
	return hash;
}

#endif
