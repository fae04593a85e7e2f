/* SPDX-License-Identifier: MIT */
#include "proc/proc_stat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/whole_file.h"

/* A stat file is one line of about 50 numbers: anything this long is not one. */
#define STAT_FILE_LIMIT 4096

/* comm may hold any byte but NUL (prctl(PR_SET_NAME)): keep it printable for stderr. */
static char *printable_copy(const char *s, size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return NULL;
	for (size_t i = 0; i < len; i++)
		copy[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	copy[len] = '\0';
	return copy;
}

/* "pid (comm) state ppid pgrp session tty_nr tpgid flags ... starttime(22) ...". comm may itself
 * contain spaces and parentheses: the fields start after the last ')'. */
static int parse_stat(const char *text, size_t len, struct proc_stat *out)
{
	const char *open = memchr(text, '(', len);
	const char *close = memrchr(text, ')', len);
	unsigned long long start_time;
	unsigned long flags;
	char state;
	int ppid;

	if (!open || !close || close < open ||
	    sscanf(close + 1,
		   " %c %d %*d %*d %*d %*d %lu %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
		   &state, &ppid, &flags, &start_time) != 4)
		return -EINVAL;
	out->comm = printable_copy(open + 1, (size_t)(close - open - 1));
	if (!out->comm)
		return -ENOMEM;
	out->state = state;
	out->ppid = ppid;
	out->flags = flags;
	out->start_time = start_time;
	return 0;
}

int proc_stat_read(pid_t pid, pid_t tid, struct proc_stat *out)
{
	char path[64]; /* "/proc/" + 2 * 10 digits + "/task/" + "/stat": always fits */
	char *text;
	size_t len;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int rc = read_whole_file(path, STAT_FILE_LIMIT, &text, &len);
	if (rc < 0)
		return rc;
	rc = parse_stat(text, len, out);
	free(text);
	return rc;
}
