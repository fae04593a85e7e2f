/* SPDX-License-Identifier: MIT */
/* content_hash.h - a 128-bit hash of byte streams: names ELF files without a build-id
 * (unwind/elf_image.c) and keys cached unwind tables by their inputs (unwind/table_cache.c).
 * Not cryptographic. */
#ifndef LUA_PERF_CONTENT_HASH_H
#define LUA_PERF_CONTENT_HASH_H

#include <stddef.h>
#include <stdint.h>

#define CONTENT_HASH_SIZE 16

struct content_hash {
	uint64_t lane_a;
	uint64_t lane_b;
	uint64_t length;
	uint8_t tail[8];
	size_t tail_len;
};

void content_hash_init(struct content_hash *h);
void content_hash_update(struct content_hash *h, const void *data, size_t len);
void content_hash_final(struct content_hash *h, uint8_t out[CONTENT_HASH_SIZE]);

#endif
