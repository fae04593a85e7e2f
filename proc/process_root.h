/* SPDX-License-Identifier: MIT */
/* process_root.h - files as a target process sees them, also when it runs in a container (its own
 * mount namespace, chroot or pivot_root).
 *
 * Two kernel facts shape this:
 *   - /proc/PID/maps (and the /proc/PID/root, /proc/PID/cwd links) print paths relative to the
 *     root of the process that READS them (fs/d_path.c, d_path), so a chroot'ed process's files
 *     read from the host start with the chroot directory; a process whose root is another mount
 *     namespace's root (pivot_root, as container engines do) gets its own paths;
 *   - walking /proc/PID/root/PATH enters the process's root, but absolute symlinks and ".." met
 *     on the way resolve against the reader's root: a container's /usr/lib/x -> /opt/x would be
 *     the HOST's /opt/x. openat2(RESOLVE_IN_ROOT) keeps the whole walk inside
 *     (fs/namei.c, nd_jump_root; Linux 5.6).
 * Every open below is of a regular file only: FIFOs and devices are never opened for reading (a
 * container controls what its paths name). */
#ifndef LUA_PERF_PROCESS_ROOT_H
#define LUA_PERF_PROCESS_ROOT_H

#include <sys/stat.h>
#include <sys/types.h>

/* The root directory of pid as this process's paths name it: "" when it is our own root, or when
 * it is not reachable from ours (another mount namespace's root: its paths are printed as the
 * process sees them already). 0 with *prefix malloc()ed, or -ENOMEM. A process that cannot be
 * asked (exited, no permission) gets "" too. */
int process_root_prefix(pid_t pid, char **prefix);

/* A path printed by /proc/PID/maps as the process itself names it: without `prefix` (from
 * process_root_prefix) when it starts with it, else unchanged. Points into path. */
const char *process_path_inside(const char *prefix, const char *path);

/* Opens the regular file `path` read-only, resolving it with directory rootfd as the root (an
 * absolute path starts there; ".." and absolute symlinks never leave it). A relative path is
 * taken from rootfd as well. Returns the descriptor (st filled), or a negative errno (-EINVAL for
 * something that is not a regular file). */
int open_regular_in_root(int rootfd, const char *path, struct stat *st);

/* Opens the regular file `path` as process pid sees it: an absolute path inside its root, a
 * relative one from its working directory (still inside its root). Returns the descriptor (st
 * filled), or a negative errno. */
int process_open_regular(pid_t pid, const char *path, struct stat *st);

#endif
