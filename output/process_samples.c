/* SPDX-License-Identifier: MIT */
#include "output/process_samples.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/grow_array.h"
#include "proc/proc_maps.h"

static bool is_before(const struct process_samples *item, pid_t tgid, pid_t tid)
{
	return item->tgid < tgid || (item->tgid == tgid && item->tid < tid);
}

/* The index of (tgid, tid) in items, or where it would go. */
static size_t lower_bound(const struct process_samples *items, size_t n, pid_t tgid, pid_t tid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (is_before(&items[mid], tgid, tid))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int process_samples_add(struct process_samples **items, size_t *n, size_t *capacity, pid_t tgid,
			pid_t tid, uint64_t count, const char *comm,
			struct process_samples **entry)
{
	size_t at = lower_bound(*items, *n, tgid, tid);

	if (at < *n && (*items)[at].tgid == tgid && (*items)[at].tid == tid) {
		(*items)[at].samples += count;
		if (entry)
			*entry = &(*items)[at];
		return 0;
	}
	struct process_samples *grown = grow_array(*items, capacity, *n + 1, sizeof(*grown), 4);
	if (!grown)
		return -ENOMEM;
	*items = grown;
	memmove(&grown[at + 1], &grown[at], (*n - at) * sizeof(*grown));
	grown[at] = (struct process_samples){.tgid = tgid, .tid = tid, .samples = count};
	if (comm)
		snprintf(grown[at].comm, sizeof(grown[at].comm), "%s", comm);
	else
		proc_thread_comm(tgid, tgid, grown[at].comm, sizeof(grown[at].comm));
	(*n)++;
	if (entry)
		*entry = &grown[at];
	return 0;
}
