/* SPDX-License-Identifier: MIT */
/* lua_remote_read.c - reading the target's memory for the Lua symbolizer: bounds-checked
 * pread()s of /proc/PID/mem (one process kept open at a time) and the first bytes of a string. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/whole_file.h"
#include "symbolize/lua_symbolize_internal.h"

#define MIN_ADDRESS 4096ull

bool remote_range_ok(uint64_t addr, uint64_t len)
{
	return addr >= MIN_ADDRESS && len <= (uint64_t)INT64_MAX &&
	       addr <= (uint64_t)INT64_MAX - len;
}

bool remote_read(int fd, uint64_t addr, void *buf, size_t len)
{
	if (!remote_range_ok(addr, len))
		return false;
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread_retrying(fd, (char *)buf + done, len - done, (off_t)(addr + done));
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

void process_mem_close(struct lua_symbolizer *ls)
{
	/* A read-only descriptor: a failing close() loses nothing, it is gone anyway. */
	if (ls->mem_fd >= 0)
		(void)close(ls->mem_fd);
	ls->mem_fd = -1;
	ls->mem_pid = 0;
}

/* The /proc/PID/mem descriptor (one process kept open at a time), or -1. */
int process_mem_open(struct lua_symbolizer *ls, pid_t pid)
{
	if (ls->mem_pid == pid && ls->mem_fd >= 0)
		return ls->mem_fd;
	process_mem_close(ls);
	char path[64];
	int n = snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ls->mem_fd = fd;
	ls->mem_pid = pid;
	return fd;
}

/* *out for the string at addr of length len whose characters are at contents: its first
 * bytes, the '@' or '=' and MAX_CHUNK_BYTES of name. 0, -EFAULT, -ENOMEM. */
int read_string_head(int fd, uint64_t addr, uint64_t contents, uint64_t len,
		     struct source_str *out)
{
	size_t head_len = len < MAX_CHUNK_BYTES + 1 ? (size_t)len : MAX_CHUNK_BYTES + 1;
	char *head = malloc(head_len + 1);
	if (!head)
		return -ENOMEM;
	if (!remote_read(fd, contents, head, head_len)) {
		free(head);
		return -EFAULT;
	}
	head[head_len] = '\0';
	*out = (struct source_str){addr, contents, len, head, head_len};
	return 0;
}
