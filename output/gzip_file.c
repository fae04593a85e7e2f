/* SPDX-License-Identifier: MIT */
#include "output/gzip_file.h"

#include <errno.h>
#include <limits.h>
#include <zlib.h>

#define GZIP_WINDOW_BITS (15 + 16) /* 32 KiB window; + 16: a gzip header and trailer */
#define GZIP_CHUNK 16384

/* Deflate what strm holds with flush, writing each full chunk: 0 or a negative errno. */
static int deflate_to(FILE *out, z_stream *strm, int flush)
{
	unsigned char chunk[GZIP_CHUNK];
	int zrc;

	do {
		strm->next_out = chunk;
		strm->avail_out = sizeof(chunk);
		zrc = deflate(strm, flush);
		if (zrc == Z_STREAM_ERROR)
			return -EIO;
		size_t have = sizeof(chunk) - strm->avail_out;
		if (have && fwrite(chunk, 1, have, out) != have)
			return -EIO;
	} while (strm->avail_out == 0);
	return flush == Z_FINISH && zrc != Z_STREAM_END ? -EIO : 0;
}

int gzip_write(FILE *out, const uint8_t *data, size_t len)
{
	z_stream strm = {0};
	int rc = 0;

	if (deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW_BITS, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	/* avail_in is an unsigned int: feed larger inputs in pieces */
	while (rc == 0 && len > 0) {
		uInt piece = len > UINT_MAX ? UINT_MAX : (uInt)len;

		strm.next_in = (Bytef *)data; /* zlib's API is not const; it does not write */
		strm.avail_in = piece;
		rc = deflate_to(out, &strm, Z_NO_FLUSH);
		data += piece;
		len -= piece;
	}
	if (rc == 0)
		rc = deflate_to(out, &strm, Z_FINISH);
	deflateEnd(&strm);
	if (rc == 0 && ferror(out))
		rc = -EIO;
	return rc;
}
