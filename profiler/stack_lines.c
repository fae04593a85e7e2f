/* SPDX-License-Identifier: MIT */
#include "profiler/stack_lines.h"

#include <errno.h>
#include <stdlib.h>

#define INITIAL_SLOTS 1024

static size_t slot_of(uint64_t stack_id, pid_t tgid, size_t slot_count)
{
	/* the id is a hash already: mixing in the process is enough */
	uint64_t h = stack_id ^ ((uint64_t)(uint32_t)tgid * 0x9e3779b97f4a7c15ull);

	return (size_t)(h ^ (h >> 29)) & (slot_count - 1);
}

/* Where (tgid, stack_id) is, or the empty slot where it would go. */
static struct stack_line *probe(const struct stack_lines *c, pid_t tgid, uint64_t stack_id)
{
	size_t mask = c->slot_count - 1;

	for (size_t i = slot_of(stack_id, tgid, c->slot_count);; i = (i + 1) & mask) {
		struct stack_line *s = &c->slots[i];

		if (s->tgid == 0 || (s->tgid == tgid && s->stack_id == stack_id))
			return s;
	}
}

bool stack_lines_find(const struct stack_lines *c, pid_t tgid, uint64_t stack_id, size_t *line)
{
	if (c->slot_count == 0)
		return false;
	const struct stack_line *s = probe(c, tgid, stack_id);
	if (s->tgid == 0)
		return false;
	*line = s->line;
	return true;
}

/* Put the entries of old (old_count slots) into c's slots, but those of pids. */
static void insert_all(struct stack_lines *c, const struct stack_line *old, size_t old_count,
		       const pid_t *pids, size_t pid_count)
{
	for (size_t i = 0; i < old_count; i++) {
		bool dropped = old[i].tgid == 0;

		for (size_t p = 0; p < pid_count && !dropped; p++)
			dropped = old[i].tgid == pids[p];
		if (dropped)
			continue;
		*probe(c, old[i].tgid, old[i].stack_id) = old[i];
		c->count++;
	}
}

/* New slots (slot_count of them) holding what the old ones held but the entries of pids. */
static int rebuild(struct stack_lines *c, size_t slot_count, const pid_t *pids, size_t pid_count)
{
	struct stack_line *slots = calloc(slot_count, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	struct stack_line *old = c->slots;
	size_t old_count = c->slot_count;
	c->slots = slots;
	c->slot_count = slot_count;
	c->count = 0;
	insert_all(c, old, old_count, pids, pid_count);
	free(old);
	return 0;
}

int stack_lines_add(struct stack_lines *c, pid_t tgid, uint64_t stack_id, size_t line)
{
	if (c->count >= STACK_LINES_MAX)
		stack_lines_free(c); /* start over: the stacks that stay sampled come back */
	if ((c->count + 1) * 2 > c->slot_count &&
	    rebuild(c, c->slot_count ? c->slot_count * 2 : INITIAL_SLOTS, NULL, 0) < 0)
		return -ENOMEM;
	struct stack_line *s = probe(c, tgid, stack_id);
	if (s->tgid == 0)
		c->count++;
	*s = (struct stack_line){.stack_id = stack_id, .tgid = tgid, .line = line};
	return 0;
}

void stack_lines_forget(struct stack_lines *c, const pid_t *pids, size_t count)
{
	if (c->count == 0 || count == 0)
		return;
	if (rebuild(c, c->slot_count, pids, count) < 0)
		stack_lines_free(c); /* out of memory: forget everything rather than keep them */
}

void stack_lines_free(struct stack_lines *c)
{
	free(c->slots);
	*c = (struct stack_lines){.hits = c->hits, .misses = c->misses};
}
