/* SPDX-License-Identifier: MIT */
#include "lib/whole_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define FIRST_CAPACITY 4096

/* -errno of a failed call, never 0. */
static int neg_errno(void) { return errno > 0 ? -errno : -EIO; }

/* buf (room for *capacity bytes) with room for one more byte of content than used and the NUL,
 * for content of at most `most` bytes; NULL with *err set when it cannot grow. */
static char *make_room(char *buf, size_t *capacity, size_t used, size_t most, int *err)
{
	if (used + 1 < *capacity)
		return buf;
	if (used >= most) {
		*err = -EFBIG;
		return NULL;
	}
	size_t bigger = *capacity <= SIZE_MAX / 2 ? *capacity * 2 : SIZE_MAX;
	if (bigger - 1 > most)
		bigger = most + 1;
	char *grown = realloc(buf, bigger);
	if (!grown) {
		*err = -ENOMEM;
		return NULL;
	}
	*capacity = bigger;
	return grown;
}

ssize_t read_retrying(int fd, void *buf, size_t size)
{
	ssize_t n;

	do
		n = read(fd, buf, size);
	while (n < 0 && errno == EINTR);
	return n < 0 ? neg_errno() : n;
}

int write_whole_fd(int fd, const void *data, size_t size)
{
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, (const char *)data + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? neg_errno() : -EIO;
		done += (size_t)n;
	}
	return 0;
}

ssize_t pread_retrying(int fd, void *buf, size_t size, off_t at)
{
	ssize_t n;

	do
		n = pread(fd, buf, size, at);
	while (n < 0 && errno == EINTR);
	return n < 0 ? neg_errno() : n;
}

int read_whole_fd(int fd, size_t limit, char **text, size_t *len)
{
	/* Room for one byte more than limit: reading it tells a file of limit bytes from a bigger one. */
	size_t most = limit < SIZE_MAX - 1 ? limit + 1 : SIZE_MAX - 1;
	size_t capacity = most < FIRST_CAPACITY ? most + 1 : FIRST_CAPACITY, used = 0;
	char *buf = malloc(capacity);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		char *room = make_room(buf, &capacity, used, most, &err);
		if (!room)
			break;
		buf = room;
		ssize_t n = read_retrying(fd, buf + used, capacity - 1 - used);
		if (n <= 0) {
			err = n < 0 ? (int)n : 0;
			break;
		}
		used += (size_t)n;
	}
	if (!err && used > limit)
		err = -EFBIG;
	if (err) {
		free(buf);
		return err;
	}
	buf[used] = '\0';
	*text = buf;
	*len = used;
	return 0;
}

int read_whole_file(const char *path, size_t limit, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return neg_errno();
	int err = read_whole_fd(fd, limit, text, len);
	(void)close(fd); /* read-only: nothing to lose */
	return err;
}
