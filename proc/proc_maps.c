/* SPDX-License-Identifier: MIT */
#include "proc/proc_maps.h"

#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fnv1a.h"
#include "lib/grow_array.h"
#include "proc/proc_stat.h"

static FILE *open_proc_file(pid_t pid, const char *name)
{
	char path[64]; /* "/proc/" + 10 digits + "/" + short name: always fits */

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	return fopen(path, "re");
}

static FILE *open_thread_file(pid_t pid, pid_t tid, const char *name)
{
	char path[64]; /* "/proc/" + 2 * 10 digits + "/task/" + "/" + short name: always fits */

	snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)pid, (int)tid, name);
	return fopen(path, "re");
}

#define PF_KTHREAD 0x00200000 /* include/linux/sched.h */

enum proc_state proc_check(pid_t pid)
{
	struct proc_stat st;
	int rc;

	if (pid <= 0)
		return PROC_MISSING;
	rc = proc_stat_read(pid, 0, &st);
	if (rc == -EACCES)
		return PROC_NO_ACCESS;
	if (rc < 0)
		return PROC_MISSING;
	free(st.comm);
	return st.flags & PF_KTHREAD ? PROC_KERNEL_THREAD : PROC_USER;
}

pid_t proc_tgid(pid_t tid)
{
	FILE *f = open_proc_file(tid, "status");
	char *line = NULL;
	size_t cap = 0;
	pid_t tgid = -1;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		int value;

		if (sscanf(line, "Tgid: %d", &value) == 1) {
			tgid = value;
			break;
		}
	}
	free(line);
	fclose(f);
	return tgid;
}

void proc_thread_comm(pid_t pid, pid_t tid, char *out, size_t size)
{
	FILE *f = open_thread_file(pid, tid, "comm");

	if (!f || !fgets(out, (int)size, f))
		out[0] = '\0';
	if (f)
		fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

char proc_thread_state(pid_t pid, pid_t tid)
{
	struct proc_stat st;

	if (proc_stat_read(pid, tid, &st) < 0)
		return '\0';
	free(st.comm);
	return st.state;
}

/* One line of /proc/PID/maps: "start-end perms offset dev inode   path". */
static int parse_maps_line(const char *line, struct proc_exec_map *map, int *executable)
{
	uint64_t start, end, offset;
	char perms[5];
	int path_at = 0;

	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %*s %*s %n", &start, &end, perms,
		   &offset, &path_at) != 4 || path_at == 0)
		return -EINVAL;
	*executable = strlen(perms) >= 3 && perms[2] == 'x';
	if (!*executable)
		return 0;

	const char *path = line + path_at;
	size_t len = strcspn(path, "\n");
	static const char deleted_suffix[] = " (deleted)";
	size_t suffix_len = sizeof(deleted_suffix) - 1;

	map->deleted = len >= suffix_len && memcmp(path + len - suffix_len, deleted_suffix, suffix_len) == 0;
	if (map->deleted)
		len -= suffix_len;
	map->path = strndup(path, len);
	if (!map->path)
		return -ENOMEM;
	map->start = start;
	map->end = end;
	map->offset = offset;
	return 0;
}

static int append_map(struct proc_exec_maps *out, size_t *cap, const struct proc_exec_map *map)
{
	return grow_array_append(out->maps, out->count, *cap, 32, map);
}

int proc_parse_exec_maps(FILE *f, struct proc_exec_maps *out)
{
	char *line = NULL;
	size_t line_cap = 0, cap = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->content_hash = FNV1A_64_START;
	while (rc == 0 && getline(&line, &line_cap, f) > 0) {
		struct proc_exec_map map = {0};
		int executable = 0;

		rc = parse_maps_line(line, &map, &executable);
		if (rc < 0 || !executable)
			continue;
		out->content_hash = fnv1a_64(out->content_hash, line, strlen(line));
		rc = append_map(out, &cap, &map);
		if (rc < 0)
			free(map.path);
	}
	free(line);
	if (rc < 0)
		proc_exec_maps_free(out);
	return rc;
}

int proc_read_exec_maps(pid_t pid, struct proc_exec_maps *out)
{
	FILE *f = open_proc_file(pid, "maps");

	memset(out, 0, sizeof(*out));
	if (!f)
		return errno == EACCES ? -EACCES : -ESRCH;
	int rc = proc_parse_exec_maps(f, out);
	fclose(f);
	if (rc == 0 && out->count == 0 && kill(pid, 0) != 0)
		rc = -ESRCH; /* a process exiting has an empty maps file */
	return rc;
}

void proc_exec_maps_free(struct proc_exec_maps *maps)
{
	for (size_t i = 0; i < maps->count; i++)
		free(maps->maps[i].path);
	free(maps->maps);
	memset(maps, 0, sizeof(*maps));
}
