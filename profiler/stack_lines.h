/* SPDX-License-Identifier: MIT */
/* stack_lines.h - the folded line each stack of a process was named to, so that a stack the
 * kernel keeps sampling is named once, not again at every drain (every second). A stack's id is
 * a hash of its recorded frames, and a frame's name does not change while its process lives:
 * the entries of a process go when the namer forgets it. Stacks with a Lua frame that could
 * not be named are not kept (a later drain may name it). Bounded: past STACK_LINES_MAX entries
 * the cache starts over. A zeroed struct is empty. */
#ifndef LUA_PERF_STACK_LINES_H
#define LUA_PERF_STACK_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STACK_LINES_MAX ((size_t)1 << 19) /* entries: 24 MiB of slots at most */

struct stack_line {
	uint64_t stack_id;
	pid_t tgid;       /* 0: an empty slot (no target is PID 0) */
	uint32_t pad;
	size_t line;      /* index into the folded profile's lines */
};

struct stack_lines {
	struct stack_line *slots; /* open addressing, at most half full */
	size_t slot_count;        /* a power of two, or 0 */
	size_t count;
	uint64_t hits, misses;
};

/* The line of (tgid, stack_id) into *line, if known. */
bool stack_lines_find(const struct stack_lines *c, pid_t tgid, uint64_t stack_id, size_t *line);
/* Remember it (tgid > 0). 0 or -ENOMEM (nothing remembered). */
int stack_lines_add(struct stack_lines *c, pid_t tgid, uint64_t stack_id, size_t line);
/* Forget the stacks of these processes. */
void stack_lines_forget(struct stack_lines *c, const pid_t *pids, size_t count);
void stack_lines_free(struct stack_lines *c);

#endif
