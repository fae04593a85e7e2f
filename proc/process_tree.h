/* SPDX-License-Identifier: MIT */
/* process_tree.h - the processes one run profiles: every -p PID (a root) and all its descendants,
 * found at start and again on every scan while the run lasts (new children join, exited processes
 * leave). Once joined, a process is followed until it exits, also when its parent exits before it
 * (it is then reparented outside the tree). A process is identified by (PID, start time), so a PID
 * reused after an exit is never mistaken for the process that had it. */
#ifndef LUA_PERF_PROCESS_TREE_H
#define LUA_PERF_PROCESS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/u64_set.h"

struct tree_process {
	pid_t pid;
	pid_t ppid;           /* the followed parent it was found under; 0 for a root */
	uint64_t start_time;  /* clock ticks after boot: proc(5), /proc/PID/stat field 22 */
	char *comm;           /* command name, non-printable bytes replaced by '?' */
	bool live;
};

/* How children are found. */
enum tree_discovery {
	TREE_BY_CHILDREN,  /* /proc/PID/task/TID/children of each followed process (per thread) */
	TREE_BY_PROC_SCAN, /* the ppid of every /proc/N/stat: kernels without CONFIG_PROC_CHILDREN */
};

struct process_tree {
	enum tree_discovery discovery;
	pid_t *roots;               /* join at the first scan */
	size_t root_count;
	bool roots_joined;
	size_t max_live;            /* processes followed at once */
	struct tree_process *procs; /* every process that ever joined, in joining order */
	size_t count;
	size_t capacity;
	size_t *live;               /* indices into procs of the processes still running */
	size_t live_count;
	size_t *left;               /* indices of the processes that left in the last scan */
	size_t left_count;
	struct u64_set refused;     /* (PID, start time) of processes beyond max_live */
	size_t refused_count;       /* distinct processes not followed because of max_live */
};

/* What the last process_tree_scan changed. */
struct tree_changes {
	size_t first_joined;        /* procs[first_joined, count) joined */
	const size_t *left;         /* indices into procs of the processes that exited */
	size_t left_count;
};

/* TREE_BY_CHILDREN when this kernel has the children files, else TREE_BY_PROC_SCAN. */
enum tree_discovery process_tree_default_discovery(void);

/* An empty tree; roots and descendants join at the first process_tree_scan. Roots that are
 * already gone then, or duplicates, are left out (see process_tree_find). */
int process_tree_init(struct process_tree *tree, const pid_t *roots, size_t root_count,
		      size_t max_live, enum tree_discovery discovery);
void process_tree_free(struct process_tree *tree);

/* Notice exited processes and let new descendants join (at most max_live followed at once; the
 * others are counted in refused_count and their own descendants are not looked for).
 * Returns 0 or a negative errno (the tree is then still consistent; changes are valid). */
int process_tree_scan(struct process_tree *tree, struct tree_changes *changes);

/* Process pid joins at once, as a child of parent (which the kernel reported: no check), unless
 * it is followed already, gone, or beyond max_live (refused_count). Returns 1 when it joined (the
 * last of procs), 0 when not, or a negative errno. The next scan looks for its children. */
int process_tree_add(struct process_tree *tree, pid_t pid, pid_t parent);
/* A followed process exec'd: read its command name again. */
void process_tree_update_comm(struct process_tree *tree, pid_t pid);

/* The latest process that had pid (live or not), or NULL. */
const struct tree_process *process_tree_find(const struct process_tree *tree, pid_t pid);

#endif
