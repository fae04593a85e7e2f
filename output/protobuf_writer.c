/* SPDX-License-Identifier: MIT */
#include "output/protobuf_writer.h"

#include <stdlib.h>
#include <string.h>

#include "lib/grow_array.h"

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void append(struct pb_buf *b, const void *data, size_t len)
{
	if (b->failed)
		return;
	uint8_t *grown = grow_array(b->data, &b->cap, b->len + len, 1, 256);
	if (!grown) {
		b->failed = true;
		return;
	}
	b->data = grown;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

void pb_varint(struct pb_buf *b, uint64_t v)
{
	uint8_t bytes[10]; /* 64 bits in groups of 7 */
	size_t n = 0;

	do {
		bytes[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			bytes[n] |= 0x80;
		n++;
	} while (v);
	append(b, bytes, n);
}

static void tag(struct pb_buf *b, uint32_t field, unsigned wire)
{
	pb_varint(b, (uint64_t)field << 3 | wire);
}

void pb_uint64(struct pb_buf *b, uint32_t field, uint64_t v)
{
	tag(b, field, WIRE_VARINT);
	pb_varint(b, v);
}

void pb_bytes(struct pb_buf *b, uint32_t field, const void *data, size_t len)
{
	tag(b, field, WIRE_LEN);
	pb_varint(b, len);
	append(b, data, len);
}

void pb_string(struct pb_buf *b, uint32_t field, const char *s)
{
	pb_bytes(b, field, s, strlen(s));
}

void pb_message(struct pb_buf *b, uint32_t field, const struct pb_buf *msg)
{
	if (msg->failed)
		b->failed = true;
	pb_bytes(b, field, msg->data, msg->len);
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >>= 7)
		n++;
	return n;
}

void pb_packed_uint64(struct pb_buf *b, uint32_t field, const uint64_t *values, size_t n)
{
	size_t len = 0;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		len += varint_size(values[i]);
	tag(b, field, WIRE_LEN);
	pb_varint(b, len);
	for (size_t i = 0; i < n; i++)
		pb_varint(b, values[i]);
}

void pb_reset(struct pb_buf *b)
{
	b->len = 0;
	b->failed = false;
}

void pb_free(struct pb_buf *b)
{
	free(b->data);
	*b = (struct pb_buf){0};
}
