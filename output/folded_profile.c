/* SPDX-License-Identifier: MIT */
#include "output/folded_profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fnv1a.h"
#include "lib/grow_array.h"

static uint64_t text_hash(const char *text)
{
	return fnv1a_64(FNV1A_64_START, text, strlen(text));
}

/* The slot of text: where its line's index is, or the empty slot where it would go. */
static size_t *find_slot(const struct folded_profile *p, const char *text)
{
	size_t mask = p->slot_count - 1;

	for (size_t i = (size_t)text_hash(text) & mask;; i = (i + 1) & mask) {
		size_t *slot = &p->slots[i];

		if (*slot == 0 || strcmp(p->lines[*slot - 1].text, text) == 0)
			return slot;
	}
}

/* Keep the table at most half full, so that find_slot always ends. */
static int grow_slots(struct folded_profile *p)
{
	if (p->slot_count && (p->count + 1) * 2 <= p->slot_count)
		return 0;
	size_t new_count = p->slot_count ? p->slot_count * 2 : 1024;
	size_t *old = p->slots;
	size_t old_count = p->slot_count;

	p->slots = calloc(new_count, sizeof(*p->slots));
	if (!p->slots) {
		p->slots = old;
		return -ENOMEM;
	}
	p->slot_count = new_count;
	for (size_t i = 0; i < old_count; i++)
		if (old[i])
			*find_slot(p, p->lines[old[i] - 1].text) = old[i];
	free(old);
	return 0;
}

/* The line of text, created when new (text is then taken); NULL when out of memory. */
static struct folded_line *line_of(struct folded_profile *p, char **text)
{
	if (grow_slots(p) < 0)
		return NULL;
	size_t *slot = find_slot(p, *text);
	if (*slot)
		return &p->lines[*slot - 1];
	struct folded_line *grown = grow_array(p->lines, &p->capacity, p->count + 1, sizeof(*grown),
					       256);
	if (!grown)
		return NULL;
	p->lines = grown;
	p->lines[p->count] = (struct folded_line){.text = *text};
	*text = NULL;
	*slot = ++p->count;
	return &p->lines[p->count - 1];
}

bool folded_profile_is_overflow(const struct folded_profile *p, size_t line_index)
{
	return line_index < p->count &&
	       strcmp(p->lines[line_index].text, FOLDED_PROFILE_OVERFLOW_LINE) == 0;
}

size_t folded_profile_bound(const struct folded_profile *p)
{
	return p->max_text_bytes ? p->max_text_bytes : FOLDED_PROFILE_MAX_BYTES;
}

/* Past the bound, new stacks share one line, which the bound does not count. */
static struct folded_line *bounded_line_of(struct folded_profile *p, char **text, uint64_t count)
{
	size_t len = strlen(*text) + 1;

	if (p->text_bytes + len > folded_profile_bound(p)) {
		size_t *slot = p->slots ? find_slot(p, *text) : NULL;

		if (slot && *slot)
			return &p->lines[*slot - 1];
		free(*text);
		*text = strdup(FOLDED_PROFILE_OVERFLOW_LINE);
		if (!*text)
			return NULL;
		p->overflow_samples += count;
		return line_of(p, text);
	}
	size_t before = p->count;
	struct folded_line *line = line_of(p, text);
	if (line && p->count > before)
		p->text_bytes += len;
	return line;
}

/* Count the samples in the totals, by process and (line: not NULL) in line. */
static int count_samples(struct folded_profile *p, struct folded_line *line, pid_t tgid,
			 pid_t tid, uint32_t end_reason, uint64_t count)
{
	p->samples += count;
	if (end_reason < END_REASON_COUNT)
		p->by_reason[end_reason] += count;
	struct process_samples *process = NULL;
	int rc = process_samples_add(&p->processes, &p->process_count, &p->process_capacity, tgid,
				     0, count, NULL, &process);
	if (line) {
		line->count += count;
		if (rc == 0)
			rc = process_samples_add(&line->processes, &line->process_count,
						 &line->process_capacity, tgid, tid, count,
						 process->comm, NULL);
	}
	return line && rc == 0 ? 0 : -ENOMEM;
}

int folded_profile_add(struct folded_profile *p, pid_t tgid, pid_t tid, uint32_t end_reason,
		       char *text, uint64_t count, size_t *line_index)
{
	struct folded_line *line = text ? bounded_line_of(p, &text, count) : NULL;

	free(text);
	if (line && line_index)
		*line_index = (size_t)(line - p->lines);
	return count_samples(p, line, tgid, tid, end_reason, count);
}

int folded_profile_add_to_line(struct folded_profile *p, size_t line_index, pid_t tgid,
			       pid_t tid, uint32_t end_reason, uint64_t count)
{
	struct folded_line *line = line_index < p->count ? &p->lines[line_index] : NULL;

	return count_samples(p, line, tgid, tid, end_reason, count);
}

static int compare_lines(const void *a, const void *b)
{
	return strcmp(((const struct folded_line *)a)->text, ((const struct folded_line *)b)->text);
}

void folded_profile_sort(struct folded_profile *p)
{
	free(p->slots); /* the indices no longer hold */
	p->slots = NULL;
	p->slot_count = 0;
	if (p->count)
		qsort(p->lines, p->count, sizeof(*p->lines), compare_lines);
}

/* Most samples first; equal counts by PID. */
static int compare_process_samples(const void *a, const void *b)
{
	const struct process_samples *x = a, *y = b;

	if (x->samples != y->samples)
		return x->samples < y->samples ? 1 : -1;
	return (x->tgid > y->tgid) - (x->tgid < y->tgid);
}

void folded_profile_sort_processes(struct folded_profile *p)
{
	if (p->process_count)
		qsort(p->processes, p->process_count, sizeof(*p->processes), compare_process_samples);
}

void folded_profile_free(struct folded_profile *p)
{
	for (size_t i = 0; i < p->count; i++) {
		free(p->lines[i].text);
		free(p->lines[i].processes);
	}
	free(p->lines);
	free(p->slots);
	free(p->processes);
	*p = (struct folded_profile){0};
}
