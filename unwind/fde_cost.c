/* SPDX-License-Identifier: MIT */
#include "unwind/fde_cost.h"

uint64_t cfa_program_steps(size_t bytes, const struct cfa_scan *scan)
{
	/* bytes <= 256 MiB (a section) and remember_count <= bytes: no overflow. */
	return (uint64_t)bytes + (uint64_t)scan->remember_count * (REMEMBER_STEPS - 1);
}

uint64_t fde_steps(uint64_t steps, size_t rows)
{
	if (steps != 0 && (uint64_t)rows > UINT64_MAX / steps)
		return UINT64_MAX;
	return steps * (uint64_t)rows;
}

void fde_budget_init(struct fde_budget *b, uint64_t steps) { b->left = steps; }

bool fde_budget_take(struct fde_budget *b, uint64_t steps)
{
	if (steps > b->left)
		return false;
	b->left -= steps;
	return true;
}
