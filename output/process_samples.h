/* SPDX-License-Identifier: MIT */
/* process_samples.h - sample counts by process (tgid), kept sorted by tgid: the profile's
 * processes, and each folded line's (so that the pprof output can label samples by process). */
#ifndef LUA_PERF_PROCESS_SAMPLES_H
#define LUA_PERF_PROCESS_SAMPLES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Samples of one process. comm: its name (TASK_COMM_LEN bytes at most, so never cut), read when
 * the process first appeared in the profile; "" when it could not be read. */
struct process_samples {
	pid_t tgid;
	uint64_t samples;
	char comm[16];
};

/* Add count samples of tgid to the array *items (count *n, room for *capacity, sorted by tgid);
 * a new tgid gets comm (NULL: read from /proc). *entry (may be NULL) is set to its element,
 * valid until the next add. 0 or -ENOMEM (nothing changed). */
int process_samples_add(struct process_samples **items, size_t *n, size_t *capacity, pid_t tgid,
			uint64_t count, const char *comm, struct process_samples **entry);

#endif
