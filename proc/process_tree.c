/* SPDX-License-Identifier: MIT */
#include "proc/process_tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/grow_array.h"
#include "lib/whole_file.h"
#include "proc/proc_stat.h"

/* Larger /proc files than this are not what we expect to read: a children file lists at most
 * every PID of the system ("N " each, PID_MAX_LIMIT = 4 Mi in include/linux/threads.h). */
#define PROC_FILE_LIMIT (64u << 20)

struct pid_list {
	pid_t *pids;
	size_t count;
	size_t capacity;
};

/* (pid, ppid) of every process, for TREE_BY_PROC_SCAN. */
struct process_table {
	struct pid_list pids;
	struct pid_list ppids;
};

static int pid_list_push(struct pid_list *list, pid_t pid)
{
	return grow_array_append(list->pids, list->count, list->capacity, 16, &pid);
}

static void pid_list_free(struct pid_list *list)
{
	free(list->pids);
	*list = (struct pid_list){0};
}

/* -ESRCH when the process is gone (or a zombie: it runs no code any more). */
static int read_stat(pid_t pid, struct proc_stat *out)
{
	int rc = proc_stat_read(pid, 0, out);

	if (rc == -ENOENT)
		return -ESRCH;
	if (rc == 0 && (out->state == 'Z' || out->state == 'X')) {
		free(out->comm);
		return -ESRCH;
	}
	return rc;
}

/* "1234 1240 " (a children file) onto list. */
static int parse_pid_list(const char *text, struct pid_list *list)
{
	const char *p = text;

	while (*p) {
		if (*p == ' ' || *p == '\n') {
			p++;
			continue;
		}
		char *end;
		errno = 0;
		long pid = strtol(p, &end, 10);
		if (end == p || errno || pid <= 0 || pid > INT_MAX)
			return -EINVAL;
		if (pid_list_push(list, (pid_t)pid) < 0)
			return -ENOMEM;
		p = end;
	}
	return 0;
}

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static int append_thread_children(pid_t pid, const char *tid, struct pid_list *kids)
{
	char path[64]; /* "/proc/" + 10 digits + "/task/" + 10 digits + "/children" */
	char *text;
	size_t len;

	if (snprintf(path, sizeof(path), "/proc/%d/task/%s/children", (int)pid, tid) >=
	    (int)sizeof(path))
		return 0; /* not a thread ID: those have at most 10 digits */
	int rc = read_whole_file(path, PROC_FILE_LIMIT, &text, &len);
	if (rc == -ENOENT || rc == -ESRCH)
		return 0; /* the thread exited */
	if (rc < 0)
		return rc;
	rc = parse_pid_list(text, kids);
	free(text);
	return rc;
}

/* Children are listed per thread, the one that forked them (kernel fs/proc/array.c,
 * get_children_pid); when a thread exits its children move to another thread of the process
 * (kernel/exit.c, find_new_reaper). The list can miss a child forked or reparented while it is
 * read: the next scan finds it. */
static int children_by_tasks(pid_t pid, struct pid_list *kids)
{
	char path[32];
	DIR *dir;
	struct dirent *entry;
	int rc = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return 0; /* the process exited: the next scan notices */
	while (rc == 0 && (entry = readdir(dir)) != NULL)
		if (is_number(entry->d_name))
			rc = append_thread_children(pid, entry->d_name, kids);
	closedir(dir);
	return rc;
}

static void process_table_free(struct process_table *table)
{
	pid_list_free(&table->pids);
	pid_list_free(&table->ppids);
}

static int read_process_table(struct process_table *table)
{
	DIR *dir = opendir("/proc");
	struct dirent *entry;
	int rc = 0;

	if (!dir)
		return -errno;
	while (rc == 0 && (entry = readdir(dir)) != NULL) {
		struct proc_stat st;
		long pid;

		if (!is_number(entry->d_name) || (pid = strtol(entry->d_name, NULL, 10)) > INT_MAX)
			continue;
		if (read_stat((pid_t)pid, &st) < 0)
			continue; /* exited, or unreadable: not ours to follow */
		free(st.comm);
		if (pid_list_push(&table->pids, (pid_t)pid) < 0 ||
		    pid_list_push(&table->ppids, st.ppid) < 0)
			rc = -ENOMEM;
	}
	closedir(dir);
	return rc;
}

static int children_in_table(const struct process_table *table, pid_t pid, struct pid_list *kids)
{
	for (size_t i = 0; i < table->pids.count; i++)
		if (table->ppids.pids[i] == pid && pid_list_push(kids, table->pids.pids[i]) < 0)
			return -ENOMEM;
	return 0;
}

enum tree_discovery process_tree_default_discovery(void)
{
	/* CONFIG_PROC_CHILDREN (selected by CHECKPOINT_RESTORE, which distributions enable) */
	return access("/proc/thread-self/children", R_OK) == 0 ? TREE_BY_CHILDREN : TREE_BY_PROC_SCAN;
}

int process_tree_init(struct process_tree *tree, const pid_t *roots, size_t root_count,
		      size_t max_live, enum tree_discovery discovery)
{
	*tree = (struct process_tree){.discovery = discovery, .max_live = max_live};
	if (max_live == 0)
		return -EINVAL;
	tree->roots = calloc(root_count ? root_count : 1, sizeof(*tree->roots));
	tree->live = calloc(max_live, sizeof(*tree->live));
	tree->left = calloc(max_live, sizeof(*tree->left));
	if (!tree->roots || !tree->live || !tree->left) {
		process_tree_free(tree);
		return -ENOMEM;
	}
	if (root_count)
		memcpy(tree->roots, roots, root_count * sizeof(*roots));
	tree->root_count = root_count;
	return 0;
}

void process_tree_free(struct process_tree *tree)
{
	for (size_t i = 0; i < tree->count; i++)
		free(tree->procs[i].comm);
	free(tree->procs);
	free(tree->roots);
	free(tree->live);
	free(tree->left);
	u64_set_free(&tree->refused);
	*tree = (struct process_tree){0};
}

static bool is_live(const struct process_tree *tree, pid_t pid)
{
	for (size_t i = 0; i < tree->live_count; i++)
		if (tree->procs[tree->live[i]].pid == pid)
			return true;
	return false;
}

/* PIDs are below 2^22 (PID_MAX_LIMIT) and start times (clock ticks) below 2^42 for centuries:
 * the pair fits in 64 bits, never 0. */
static uint64_t identity_key(pid_t pid, uint64_t start_time)
{
	return (uint64_t)(uint32_t)pid << 42 ^ (start_time & ((1ull << 42) - 1));
}

/* Count a process that cannot be followed (max_live reached) once, and never follow it later:
 * its samples would be partial. Returns true when it was refused. */
static bool refuse(struct process_tree *tree, pid_t pid, uint64_t start_time)
{
	uint64_t key = identity_key(pid, start_time);

	if (u64_set_contains(&tree->refused, key))
		return true;
	if (tree->live_count < tree->max_live)
		return false;
	if (u64_set_add(&tree->refused, key) == 1)
		tree->refused_count++;
	return true;
}

static int append_process(struct process_tree *tree, pid_t pid, pid_t ppid, struct proc_stat *st)
{
	size_t index = tree->count;
	struct tree_process *slot = grow_array_push(tree->procs, tree->count, tree->capacity, 16);

	if (!slot)
		return -ENOMEM;
	*slot = (struct tree_process){
		.pid = pid, .ppid = ppid, .start_time = st->start_time, .comm = st->comm, .live = true};
	st->comm = NULL;
	tree->live[tree->live_count++] = index;
	return 0;
}

/* pid joins if it is still there and (for a child) still the child of parent: between the
 * listing and now it may have exited, and its PID even been reused. */
static int try_join(struct process_tree *tree, pid_t pid, pid_t parent)
{
	struct proc_stat st;

	if (is_live(tree, pid) || read_stat(pid, &st) < 0)
		return 0;
	int rc = 0;
	if ((parent == 0 || st.ppid == parent) && !refuse(tree, pid, st.start_time))
		rc = append_process(tree, pid, parent, &st);
	free(st.comm);
	return rc;
}

static void join_roots(struct process_tree *tree)
{
	for (size_t i = 0; i < tree->root_count; i++)
		if (try_join(tree, tree->roots[i], 0) < 0)
			break; /* out of memory: the caller finds the root missing */
}

static int join_children(struct process_tree *tree, size_t index, const struct process_table *table)
{
	struct pid_list kids = {0};
	pid_t pid = tree->procs[index].pid;
	int rc = tree->discovery == TREE_BY_CHILDREN ? children_by_tasks(pid, &kids)
						      : children_in_table(table, pid, &kids);

	for (size_t i = 0; rc == 0 && i < kids.count; i++)
		rc = try_join(tree, kids.pids[i], pid);
	pid_list_free(&kids);
	return rc;
}

/* Still the same process (same start time), and not a zombie? Also follows a changed comm
 * (execve). Unreadable for another reason: assume it still runs. */
static bool still_running(struct tree_process *p)
{
	struct proc_stat st;
	int rc = read_stat(p->pid, &st);

	if (rc == -ESRCH)
		return false;
	if (rc < 0)
		return true;
	bool same = st.start_time == p->start_time;
	if (same && strcmp(st.comm, p->comm) != 0) {
		free(p->comm);
		p->comm = st.comm;
		st.comm = NULL;
	}
	free(st.comm);
	return same;
}

static void drop_exited(struct process_tree *tree)
{
	size_t kept = 0;

	for (size_t i = 0; i < tree->live_count; i++) {
		size_t index = tree->live[i];

		if (still_running(&tree->procs[index])) {
			tree->live[kept++] = index;
			continue;
		}
		tree->procs[index].live = false;
		tree->left[tree->left_count++] = index;
	}
	tree->live_count = kept;
}

int process_tree_scan(struct process_tree *tree, struct tree_changes *changes)
{
	struct process_table table = {0};
	int rc = 0;

	changes->first_joined = tree->count;
	tree->left_count = 0;
	drop_exited(tree);
	if (!tree->roots_joined) {
		join_roots(tree);
		tree->roots_joined = true;
	}
	if (tree->discovery == TREE_BY_PROC_SCAN)
		rc = read_process_table(&table);
	/* live grows while this runs: the children of new processes are looked for too */
	for (size_t i = 0; rc == 0 && i < tree->live_count; i++)
		rc = join_children(tree, tree->live[i], &table);
	process_table_free(&table);
	changes->left = tree->left;
	changes->left_count = tree->left_count;
	return rc;
}

int process_tree_add(struct process_tree *tree, pid_t pid, pid_t parent)
{
	struct proc_stat st;

	if (is_live(tree, pid))
		return 0;
	int rc = read_stat(pid, &st);
	if (rc < 0)
		return rc == -ESRCH || rc == -ENOENT ? 0 : rc;
	rc = 0;
	if (!refuse(tree, pid, st.start_time))
		rc = append_process(tree, pid, parent, &st) == 0 ? 1 : -ENOMEM;
	free(st.comm);
	return rc;
}

void process_tree_update_comm(struct process_tree *tree, pid_t pid)
{
	for (size_t i = 0; i < tree->live_count; i++) {
		struct tree_process *p = &tree->procs[tree->live[i]];

		if (p->pid == pid) {
			still_running(p);
			return;
		}
	}
}

const struct tree_process *process_tree_find(const struct process_tree *tree, pid_t pid)
{
	for (size_t i = tree->count; i-- > 0;)
		if (tree->procs[i].pid == pid)
			return &tree->procs[i];
	return NULL;
}
