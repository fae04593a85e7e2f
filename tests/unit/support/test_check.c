/* SPDX-License-Identifier: MIT */
#include "tests/unit/support/test_check.h"

#include <stdarg.h>
#include <stdio.h>

int check_failures;

void check_failed(int line, const char *cond, const char *fmt, ...)
{
	if (++check_failures > CHECK_MAX_REPORTED)
		return;
	fprintf(stderr, "FAIL line %d: %s: ", line, cond);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int check_finish(const char *mode)
{
	if (check_failures)
		fprintf(stderr, "%s: %d failure(s)\n", mode, check_failures);
	else
		printf("%s: ok\n", mode);
	return check_failures ? 1 : 0;
}
