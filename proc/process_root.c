/* SPDX-License-Identifier: MIT */
#include "proc/process_root.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LINK_MAX_BYTES (1u << 16) /* d_path output fits a page: PATH_MAX is plenty, this more so */
#define DELETED_SUFFIX " (deleted)" /* fs/d_path.c, d_path: appended for unlinked dentries */

/* The target of a symbolic link (malloc()ed) or a negative errno. */
static int read_link(const char *path, char **out)
{
	for (size_t cap = 256; cap <= LINK_MAX_BYTES; cap *= 2) {
		char *buf = malloc(cap);
		if (!buf)
			return -ENOMEM;
		ssize_t n = readlink(path, buf, cap);
		if (n < 0) {
			int err = -errno;
			free(buf);
			return err;
		}
		if ((size_t)n < cap) {
			buf[n] = '\0';
			*out = buf;
			return 0;
		}
		free(buf);
	}
	return -ENAMETOOLONG;
}

/* /proc/PID/<name> into buf; "/proc/" + 10 digits + "/" + a short name always fits 64 bytes. */
static const char *proc_path(char buf[64], pid_t pid, const char *name)
{
	snprintf(buf, 64, "/proc/%d/%s", (int)pid, name);
	return buf;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t len = strlen(s), slen = strlen(suffix);
	return len >= slen && strcmp(s + len - slen, suffix) == 0;
}

/* A directory path usable as a prefix to strip: absolute, not "/", still linked. */
static bool is_strippable_dir(const char *dir)
{
	return dir[0] == '/' && dir[1] != '\0' && !ends_with(dir, DELETED_SUFFIX);
}

int process_root_prefix(pid_t pid, char **prefix)
{
	char buf[64];
	char *root = NULL;
	int err = read_link(proc_path(buf, pid, "root"), &root);

	if (err == -ENOMEM)
		return err;
	if (err == 0 && is_strippable_dir(root)) {
		*prefix = root;
		return 0;
	}
	free(root);
	*prefix = strdup("");
	return *prefix ? 0 : -ENOMEM;
}

const char *process_path_inside(const char *prefix, const char *path)
{
	size_t len = strlen(prefix);

	if (len && strncmp(path, prefix, len) == 0 && path[len] == '/')
		return path + len;
	return path;
}

/* An O_PATH descriptor of path, resolved with rootfd as the root. */
static int open_path_in_root(int rootfd, const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));

	/* Only a seccomp filter older than openat2 gets here (lua-perf needs Linux >= 5.17): resolve
	 * from rootfd without the confinement, as the kernel's /proc/PID/root walk does. */
	if (fd < 0 && errno == ENOSYS)
		fd = openat(rootfd, path + strspn(path, "/"), O_PATH | O_CLOEXEC);
	return fd < 0 ? -errno : (int)fd;
}

/* The regular file behind an O_PATH descriptor, opened for reading (pathfd is closed). Through
 * /proc/self/fd the same inode is reopened: nothing can swap the file after the check. */
static int reopen_regular(int pathfd, struct stat *st)
{
	char buf[64];
	int fd;

	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", pathfd);
	if (fstat(pathfd, st) != 0)
		fd = -errno;
	else if (!S_ISREG(st->st_mode))
		fd = -EINVAL;
	else if ((fd = open(buf, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0)
		fd = -errno;
	(void)close(pathfd); /* O_PATH: nothing to lose */
	return fd;
}

int open_regular_in_root(int rootfd, const char *path, struct stat *st)
{
	int pathfd = open_path_in_root(rootfd, path);

	return pathfd < 0 ? pathfd : reopen_regular(pathfd, st);
}

static int open_in_process_root(pid_t pid, const char *path, struct stat *st)
{
	char buf[64];
	int rootfd = open(proc_path(buf, pid, "root"), O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (rootfd < 0)
		return -errno;
	int fd = open_regular_in_root(rootfd, path, st);
	(void)close(rootfd);
	return fd;
}

/* The process's working directory as it names it itself into *inside (malloc()ed), or NULL when
 * that cannot be told (outside its root, deleted, unreadable). 0 or -ENOMEM. */
static int working_dir_inside(pid_t pid, char **inside)
{
	char buf[64];
	char *cwd = NULL, *prefix = NULL;
	int err = read_link(proc_path(buf, pid, "cwd"), &cwd);

	*inside = NULL;
	if (err == 0)
		err = process_root_prefix(pid, &prefix);
	if (err == 0 && cwd[0] == '/' && !ends_with(cwd, DELETED_SUFFIX)) {
		const char *in = NULL;
		if (prefix[0] == '\0')
			in = cwd;
		else if (strcmp(cwd, prefix) == 0)
			in = "/";
		else if (process_path_inside(prefix, cwd) != cwd)
			in = process_path_inside(prefix, cwd);
		if (in && !(*inside = strdup(in)))
			err = -ENOMEM;
	}
	free(cwd);
	free(prefix);
	return err == -ENOMEM ? err : 0;
}

/* Relative to /proc/PID/cwd without confinement: for a working directory outside the root. */
static int open_from_cwd(pid_t pid, const char *path, struct stat *st)
{
	char buf[64];
	int cwdfd = open(proc_path(buf, pid, "cwd"), O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (cwdfd < 0)
		return -errno;
	int pathfd = openat(cwdfd, path, O_PATH | O_CLOEXEC);
	int fd = pathfd < 0 ? -errno : reopen_regular(pathfd, st);
	(void)close(cwdfd);
	return fd;
}

int process_open_regular(pid_t pid, const char *path, struct stat *st)
{
	if (path[0] == '/')
		return open_in_process_root(pid, path, st);
	char *cwd;
	int err = working_dir_inside(pid, &cwd);
	if (err)
		return err;
	if (!cwd)
		return open_from_cwd(pid, path, st);
	char *joined;
	int fd = -ENOMEM;
	if (asprintf(&joined, "%s/%s", cwd, path) >= 0) {
		fd = open_in_process_root(pid, joined, st);
		free(joined);
	}
	free(cwd);
	return fd;
}
