/* SPDX-License-Identifier: MIT */
/* proc_maps.h - what lua-perf reads about a target process from /proc: existence, kernel threads,
 * executable mappings. */
#ifndef LUA_PERF_PROC_MAPS_H
#define LUA_PERF_PROC_MAPS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct proc_exec_map {
	uint64_t start;
	uint64_t end;
	uint64_t offset;   /* file offset of start */
	char *path;        /* as the process sees it: "/usr/lib/...", "[vdso]", "" for anonymous */
	int deleted;       /* the path ended in " (deleted)" (stripped from path) */
};

struct proc_exec_maps {
	struct proc_exec_map *maps;  /* sorted by start (the kernel lists them in order) */
	size_t count;
	uint64_t content_hash;       /* of the executable lines: cheap change detection */
};

enum proc_state { PROC_USER = 0, PROC_MISSING = -1, PROC_KERNEL_THREAD = -2, PROC_NO_ACCESS = -3 };

/* Whether pid names a live user-space process (its thread-group leader). */
enum proc_state proc_check(pid_t pid);
/* The thread-group id of a thread id, or -1. */
pid_t proc_tgid(pid_t tid);
/* The command name of thread tid of process pid (tid = pid: the process's) into out (size >= 16,
 * TASK_COMM_LEN), "" when it cannot be read. */
void proc_thread_comm(pid_t pid, pid_t tid, char *out, size_t size);
/* The state letter of thread tid of process pid (proc(5): R, S, D, T, t, Z, X...), or '\0' when
 * it cannot be read (it is gone). */
char proc_thread_state(pid_t pid, pid_t tid);
/* Executable mappings of pid. Returns 0 or a negative errno (-ESRCH when it has exited). */
int proc_read_exec_maps(pid_t pid, struct proc_exec_maps *out);
/* The executable mappings of a maps file read from f (the kernel writes the numbers; the paths
 * are what the process named its files). 0, or -EINVAL (a line not in the maps format) or
 * -ENOMEM with *out empty. */
int proc_parse_exec_maps(FILE *f, struct proc_exec_maps *out);
void proc_exec_maps_free(struct proc_exec_maps *maps);

#endif
