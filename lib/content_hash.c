/* SPDX-License-Identifier: MIT */
/* content_hash.c - two independent 64-bit lanes over little-endian 8-byte words, each a
 * multiply-rotate accumulator with its own seed and constants, finalized with the murmur3 64-bit
 * mixer (fmix64) and the length. */
#include "lib/content_hash.h"

#include <string.h>

static uint64_t rotl64(uint64_t v, unsigned r) { return (v << r) | (v >> (64u - r)); }

static uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

void content_hash_init(struct content_hash *h)
{
	memset(h, 0, sizeof(*h));
	h->lane_a = 0x9e3779b97f4a7c15ull;
	h->lane_b = 0xd6e8feb86659fd93ull;
}

static void mix_word(struct content_hash *h, uint64_t w)
{
	h->lane_a = rotl64(h->lane_a ^ (w * 0x87c37b91114253d5ull), 31) * 0x4cf5ad432745937full;
	h->lane_b = rotl64(h->lane_b ^ (w * 0x9fb21c651e98df25ull), 27) * 0xc2b2ae3d27d4eb4full + 0x52dce729u;
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8u * i);
	return v;
}

void content_hash_update(struct content_hash *h, const void *bytes, size_t len)
{
	const uint8_t *data = bytes;

	h->length += len;
	while (len > 0 && h->tail_len > 0) {
		h->tail[h->tail_len++] = *data++;
		len--;
		if (h->tail_len == 8) {
			mix_word(h, load_le64(h->tail));
			h->tail_len = 0;
		}
	}
	for (; len >= 8; data += 8, len -= 8)
		mix_word(h, load_le64(data));
	for (; len > 0; len--)
		h->tail[h->tail_len++] = *data++;
}

void content_hash_final(struct content_hash *h, uint8_t out[CONTENT_HASH_SIZE])
{
	uint8_t last[8] = {0};
	memcpy(last, h->tail, h->tail_len);
	/* The tail length is folded into the final word so that trailing zero bytes count. */
	mix_word(h, load_le64(last) ^ ((uint64_t)h->tail_len << 59));
	uint64_t a = fmix64(h->lane_a ^ h->length);
	uint64_t b = fmix64(h->lane_b ^ rotl64(h->length, 32));
	a += b;
	b += a;
	for (unsigned i = 0; i < 8; i++) {
		out[i] = (uint8_t)(a >> (8u * i));
		out[8 + i] = (uint8_t)(b >> (8u * i));
	}
}
