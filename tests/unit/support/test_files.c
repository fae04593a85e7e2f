/* SPDX-License-Identifier: MIT */
#include "tests/unit/support/test_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/whole_file.h"

int blob_read_file(const char *path, struct blob *out)
{
	memset(out, 0, sizeof(*out));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = fstat(fd, &st) != 0 ? -errno : (st.st_size <= 0 ? -EINVAL : 0);
	if (!err) {
		out->size = (size_t)st.st_size;
		out->data = malloc(out->size);
		err = out->data ? 0 : -ENOMEM;
	}
	for (size_t done = 0; !err && done < out->size;) {
		ssize_t n = pread(fd, out->data + done, out->size - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			err = n < 0 ? -errno : -EIO;
		else
			done += (size_t)n;
	}
	close(fd);
	if (err) {
		free(out->data);
		memset(out, 0, sizeof(*out));
	}
	return err;
}

int blob_write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int err = blob_write_fd(fd, data, size);
	if (close(fd) != 0 && !err)
		err = -errno;
	return err;
}

int blob_write_fd(int fd, const uint8_t *data, size_t size)
{
	return write_whole_fd(fd, data, size);
}
