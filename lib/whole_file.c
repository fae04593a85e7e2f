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

/* buf (room for *capacity bytes) with room for at least one more byte than used, up to limit
 * bytes of content and the NUL; NULL with *err set when it cannot grow. */
static char *make_room(char *buf, size_t *capacity, size_t used, size_t limit, int *err)
{
	if (used + 1 < *capacity)
		return buf;
	if (used >= limit) {
		*err = -EFBIG;
		return NULL;
	}
	size_t bigger = *capacity <= SIZE_MAX / 2 ? *capacity * 2 : SIZE_MAX;
	if (bigger - 1 > limit)
		bigger = limit + 1;
	char *grown = realloc(buf, bigger);
	if (!grown) {
		*err = -ENOMEM;
		return NULL;
	}
	*capacity = bigger;
	return grown;
}

int read_whole_file(const char *path, size_t limit, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t capacity = limit < FIRST_CAPACITY ? limit + 1 : FIRST_CAPACITY, used = 0;
	char *buf;
	int err = 0;

	if (fd < 0)
		return neg_errno();
	buf = malloc(capacity);
	if (!buf) {
		(void)close(fd); /* read-only: nothing to lose */
		return -ENOMEM;
	}
	for (;;) {
		char *room = make_room(buf, &capacity, used, limit, &err);
		if (!room)
			break;
		buf = room;
		ssize_t n = read(fd, buf + used, capacity - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = neg_errno();
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	(void)close(fd);
	if (err) {
		free(buf);
		return err;
	}
	buf[used] = '\0';
	*text = buf;
	*len = used;
	return 0;
}
