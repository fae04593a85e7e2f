/* SPDX-License-Identifier: MIT */
/* proc_stat.h - the one reader of stat files (/proc/PID/stat, /proc/PID/task/TID/stat). */
#ifndef LUA_PERF_PROC_STAT_H
#define LUA_PERF_PROC_STAT_H

#include <stdint.h>
#include <sys/types.h>

/* The fields of a stat file lua-perf uses (proc(5)). */
struct proc_stat {
	char state;           /* field 3: R, S, D, T, t, Z, X... */
	pid_t ppid;           /* field 4 */
	unsigned long flags;  /* field 9: PF_* of include/linux/sched.h */
	uint64_t start_time;  /* field 22: clock ticks after boot */
	char *comm;           /* field 2, unprintable bytes as '?'; owned (free) */
};

/* The stat file of thread tid of process pid, or of process pid when tid is 0. 0, -EINVAL when
 * it is not in that format (empty: the task is gone), or a negative errno of reading it
 * (-ENOENT: no such task, -EACCES...). */
int proc_stat_read(pid_t pid, pid_t tid, struct proc_stat *out);

#endif
