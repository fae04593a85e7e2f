/* SPDX-License-Identifier: MIT */
/* test_files.h - whole-file reads and writes for the C test programs. */
#ifndef LUA_PERF_TEST_FILES_H
#define LUA_PERF_TEST_FILES_H

#include <stddef.h>
#include <stdint.h>

struct blob {
	uint8_t *data;
	size_t size;
};

/* The whole non-empty file at path into out (malloc'ed: free out->data). 0 or a negative errno. */
int blob_read_file(const char *path, struct blob *out);
/* Create or truncate path with exactly data[0..size). 0 or a negative errno. */
int blob_write_file(const char *path, const uint8_t *data, size_t size);
/* All of data[0..size) to the open descriptor fd (retrying short writes). 0 or a negative errno. */
int blob_write_fd(int fd, const uint8_t *data, size_t size);

#endif
