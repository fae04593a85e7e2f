/* SPDX-License-Identifier: MIT */
/* cfi_problem.h - what is wrong with a file's call frame information, gathered while its unwind
 * table is compiled, so that a damaged file gets one warning that says what is wrong and what
 * follows from it (cfi_table_build) instead of one line per layer that noticed. The first
 * problem is kept for that warning; later ones only go to the debug log. */
#ifndef LUA_PERF_CFI_PROBLEM_H
#define LUA_PERF_CFI_PROBLEM_H

#include <stdbool.h>

#define CFI_PROBLEM_MAX 192

struct cfi_problem {
	char text[CFI_PROBLEM_MAX]; /* the first problem, "" while there is none */
	const char *file;           /* names the file in the debug lines of later problems */
};

void cfi_problem_init(struct cfi_problem *p, const char *file);
/* Record a problem ("<section>: what", no trailing period). */
void cfi_problem_note(struct cfi_problem *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cfi_problem_found(const struct cfi_problem *p);

#endif
