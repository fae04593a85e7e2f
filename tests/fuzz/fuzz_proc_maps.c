/* SPDX-License-Identifier: MIT */
/* fuzz_proc_maps.c - a target's /proc/PID/maps (proc/proc_maps.c) and its paths opened as the
 * target sees them (proc/process_root.c): the input is a maps file; each executable mapping's
 * path, taken out of a container prefix, is opened inside a root directory made for the run.
 * That root holds regular files, a FIFO, and symlinks that would leave it (absolute, "..")
 * if followed from the host. Properties: a parsed path holds no line end; a path inside the
 * prefix points into the printed one; an open succeeds only on a regular file inside the root. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc/proc_maps.h"
#include "proc/process_root.h"
#include "tests/fuzz/fuzz_harness.h"

/* What /proc/PID/maps prints before a chroot'ed process's paths (process_root.h). */
#define CONTAINER_PREFIX "/srv/container"
#define INSIDE_FILES 3

struct fuzz_root {
	int fd;
	struct stat inside[INSIDE_FILES]; /* the regular files an open may give */
};

static void make_file(int dirfd, const char *path, struct stat *st)
{
	int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	FUZZ_ASSERT(fd >= 0 && write(fd, "x", 1) == 1 && fstat(fd, st) == 0, "creating %s", path);
	close(fd);
}

/* root/lib.so, root/dir/x.so, root/etc/passwd (what an absolute symlink to /etc/passwd must
 * name), a FIFO, and symlinks: abs -> /etc/passwd, up -> ../../../../../etc/passwd,
 * loop -> loop. */
static const struct fuzz_root *fuzz_root(void)
{
	static struct fuzz_root root = {.fd = -1};
	if (root.fd >= 0)
		return &root;
	static char name[] = "/tmp/lua-perf-fuzz-maps-XXXXXX";
	FUZZ_ASSERT(mkdtemp(name) != NULL, "mkdtemp %s", name);
	int fd = open(name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	FUZZ_ASSERT(fd >= 0, "opening %s", name);
	FUZZ_ASSERT(mkdirat(fd, "dir", 0755) == 0 && mkdirat(fd, "etc", 0755) == 0, "mkdir");
	make_file(fd, "lib.so", &root.inside[0]);
	make_file(fd, "dir/x.so", &root.inside[1]);
	make_file(fd, "etc/passwd", &root.inside[2]);
	FUZZ_ASSERT(mkfifoat(fd, "fifo", 0644) == 0 && symlinkat("/etc/passwd", fd, "abs") == 0 &&
			    symlinkat("../../../../../etc/passwd", fd, "up") == 0 &&
			    symlinkat("loop", fd, "loop") == 0,
		    "making the special files: errno %d", errno);
	root.fd = fd;
	return &root;
}

static void check_open_inside(const struct fuzz_root *root, const char *path)
{
	struct stat st;
	int fd = open_regular_in_root(root->fd, path, &st);
	if (fd < 0)
		return;
	bool inside = false;
	for (int i = 0; i < INSIDE_FILES; i++)
		inside = inside || (st.st_dev == root->inside[i].st_dev &&
				    st.st_ino == root->inside[i].st_ino);
	FUZZ_ASSERT(inside && S_ISREG(st.st_mode), "\"%s\" opened a file outside the root", path);
	close(fd);
}

static void check_map(const struct fuzz_root *root, const struct proc_exec_map *map)
{
	FUZZ_ASSERT(map->path && !strchr(map->path, '\n'), "a path with a line end");
	const char *inside = process_path_inside(CONTAINER_PREFIX, map->path);
	FUZZ_ASSERT(inside >= map->path && inside <= map->path + strlen(map->path),
		    "the path inside the prefix is not part of \"%s\"", map->path);
	check_open_inside(root, inside);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_root *root = fuzz_root();
	if (size == 0)
		return 0; /* fmemopen refuses an empty buffer */
	FILE *f = fmemopen((void *)data, size, "r");
	FUZZ_ASSERT(f != NULL, "fmemopen: errno %d", errno);
	struct proc_exec_maps maps;
	if (proc_parse_exec_maps(f, &maps) == 0) {
		for (size_t i = 0; i < maps.count; i++)
			check_map(root, &maps.maps[i]);
		proc_exec_maps_free(&maps);
	}
	fclose(f);
	return 0;
}
