/* SPDX-License-Identifier: MIT */
/* test_stack_lines.c - profiler/stack_lines.c, the folded line each (process, stack) was named
 * to: found after adding, through growth; one process's stack apart from another's with the same
 * id; forgetting processes keeps the others; the bound starts the cache over. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profiler/stack_lines.h"
#include "tests/unit/support/test_check.h"

static bool has(const struct stack_lines *c, pid_t tgid, uint64_t id, size_t want)
{
	size_t line = SIZE_MAX;

	return stack_lines_find(c, tgid, id, &line) && line == want;
}

static void add_find_forget(void)
{
	struct stack_lines c = {0};
	size_t line = 0;

	CHECK(!stack_lines_find(&c, 1, 42, &line), "empty");
	for (uint64_t i = 0; i < 5000; i++) /* grows the table several times */
		CHECK(stack_lines_add(&c, 100 + (pid_t)(i % 3), i * 0x10001, (size_t)i) == 0, "add");
	CHECK(c.count == 5000, "%zu entries", c.count);
	bool all = true;
	for (uint64_t i = 0; i < 5000; i++)
		all = all && has(&c, 100 + (pid_t)(i % 3), i * 0x10001, (size_t)i);
	CHECK(all, "every entry found after growing");
	CHECK(!stack_lines_find(&c, 101, 0, &line), "stack 0 is process 100's, not 101's");
	CHECK(stack_lines_add(&c, 101, 0, 7) == 0 && has(&c, 101, 0, 7) && has(&c, 100, 0, 0),
	      "one id in two processes: two lines");
	CHECK(stack_lines_add(&c, 101, 0, 8) == 0 && has(&c, 101, 0, 8) && c.count == 5001,
	      "replaced, not added");
	pid_t gone[] = {100, 102};
	stack_lines_forget(&c, gone, 2);
	bool kept = c.count == 1667 + 1;
	for (uint64_t i = 0; i < 5000; i++)
		kept = kept && has(&c, 100 + (pid_t)(i % 3), i * 0x10001, (size_t)i) == (i % 3 == 1);
	CHECK(kept, "forgetting 100 and 102 keeps 101's entries only (%zu)", c.count);
	stack_lines_free(&c);
	CHECK(!stack_lines_find(&c, 101, 0, &line) && c.count == 0, "freed");
}

static void bound(void)
{
	struct stack_lines c = {0};

	for (size_t i = 0; i < STACK_LINES_MAX; i++)
		if (stack_lines_add(&c, 1, (uint64_t)i, i) != 0)
			break;
	CHECK(c.count == STACK_LINES_MAX && has(&c, 1, 0, 0), "full: %zu", c.count);
	CHECK(stack_lines_add(&c, 1, UINT64_MAX, 3) == 0 && c.count == 1 && !has(&c, 1, 0, 0) &&
		      has(&c, 1, UINT64_MAX, 3), "past the bound it starts over (%zu)", c.count);
	stack_lines_free(&c);
}

int main(void)
{
	add_find_forget();
	bound();
	return check_finish("stack_lines");
}
