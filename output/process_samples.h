/* SPDX-License-Identifier: MIT */
/* process_samples.h - sample counts by process (tgid) or by thread (tgid, tid), kept sorted: the
 * profile's processes, and each folded line's threads (so that the pprof output can label
 * samples by process and thread). */
#ifndef LUA_PERF_PROCESS_SAMPLES_H
#define LUA_PERF_PROCESS_SAMPLES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Samples of one process. comm: its name (TASK_COMM_LEN bytes at most, so never cut), read when
 * the process first appeared in the profile; "" when it could not be read. */
struct process_samples {
	pid_t tgid;
	pid_t tid;          /* 0: the samples of the whole process */
	uint64_t samples;
	char comm[16];
};

/* Add count samples of thread tid of process tgid (tid 0: of the process) to the array *items
 * (count *n, room for *capacity, sorted by tgid then tid); a new element gets comm, the
 * process's name (NULL: read from /proc). *entry (may be NULL) is set to its element, valid
 * until the next add. 0 or -ENOMEM (nothing changed). */
int process_samples_add(struct process_samples **items, size_t *n, size_t *capacity, pid_t tgid,
			pid_t tid, uint64_t count, const char *comm,
			struct process_samples **entry);

#endif
