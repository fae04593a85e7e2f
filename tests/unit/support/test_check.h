/* SPDX-License-Identifier: MIT */
/* test_check.h - CHECK() for the C test programs: a condition that does not hold is counted in
 * check_failures and reported on stderr as "FAIL line N: CONDITION: MESSAGE" (the first
 * CHECK_MAX_REPORTED of them; the count goes on), and the test goes on. */
#ifndef LUA_PERF_TEST_CHECK_H
#define LUA_PERF_TEST_CHECK_H

#define CHECK_MAX_REPORTED 40

extern int check_failures;

#define CHECK(cond, ...)                                                                            \
	do {                                                                                        \
		if (!(cond))                                                                        \
			check_failed(__LINE__, #cond, __VA_ARGS__);                                 \
	} while (0)

__attribute__((format(printf, 3, 4))) void check_failed(int line, const char *cond,
							 const char *fmt, ...);

/* The verdict of a test program: "MODE: ok" on stdout and 0 when no check failed, else
 * "MODE: N failure(s)" on stderr and 1. */
int check_finish(const char *mode);

#endif
