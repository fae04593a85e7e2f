/* SPDX-License-Identifier: MIT */
/* fuzz_failed.c - a property a harness checks does not hold: say which, then abort. The fuzz
 * tests close the target's stderr (libFuzzer -close_fd_mask=2: lua-perf warns about hostile
 * files at every input), so the message also goes through the sanitizers' report channel,
 * which libFuzzer keeps open, when a sanitizer runtime is linked in. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/fuzz/fuzz_harness.h"

/* compiler-rt's sanitizer_common (sanitizer/common_interface_defs.h); absent without one */
void __sanitizer_report_error_summary(const char *error_summary) __attribute__((weak));

void fuzz_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;
	char *what = NULL, *message = NULL;

	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0)
		what = NULL;
	va_end(ap);
	if (asprintf(&message, "FUZZ FAIL %s:%d: %s: %s", file, line, cond, what ? what : fmt) < 0)
		message = NULL;
	fprintf(stderr, "%s\n", message ? message : cond);
	if (__sanitizer_report_error_summary)
		__sanitizer_report_error_summary(message ? message : cond);
	abort();
}
