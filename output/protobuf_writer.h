/* SPDX-License-Identifier: MIT */
/* protobuf_writer.h - the few protobuf encodings the pprof output needs (varint and
 * length-delimited fields, packed repeated varints), into a growable byte buffer. A nested
 * message is built in its own buffer, then added with pb_message(). After an allocation failure
 * the buffer says so (failed) and stays as it was: callers check once, at the end. */
#ifndef LUA_PERF_PROTOBUF_WRITER_H
#define LUA_PERF_PROTOBUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pb_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool failed;
};

/* A bare varint (base 128, least significant group first). */
void pb_varint(struct pb_buf *b, uint64_t v);
/* Field `field` as a varint (wire type 0). Zero is written too: callers leave out defaults. */
void pb_uint64(struct pb_buf *b, uint32_t field, uint64_t v);
/* Field `field` as length-delimited bytes (wire type 2), even when len is 0. */
void pb_bytes(struct pb_buf *b, uint32_t field, const void *data, size_t len);
/* A NUL-terminated string as pb_bytes. */
void pb_string(struct pb_buf *b, uint32_t field, const char *s);
/* The encoded message msg as field `field` (a failed msg fails b). */
void pb_message(struct pb_buf *b, uint32_t field, const struct pb_buf *msg);
/* values[0..n) as one packed repeated varint field (nothing when n is 0). */
void pb_packed_uint64(struct pb_buf *b, uint32_t field, const uint64_t *values, size_t n);
/* Empty the buffer, keeping its memory. */
void pb_reset(struct pb_buf *b);
void pb_free(struct pb_buf *b);

#endif
