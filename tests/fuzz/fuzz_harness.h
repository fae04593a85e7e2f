/* SPDX-License-Identifier: MIT */
/* fuzz_harness.h - what the harnesses of tests/fuzz/ share. Each defines libFuzzer's entry point
 * for one parser of what a profiled process controls; a property it checks that does not hold
 * aborts (libFuzzer and the replay driver both report an abort as a finding). */
#ifndef LUA_PERF_FUZZ_HARNESS_H
#define LUA_PERF_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, ...)                                                                      \
	do {                                                                                        \
		if (!(cond))                                                                        \
			fuzz_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);                        \
	} while (0)

_Noreturn __attribute__((format(printf, 4, 5))) void fuzz_failed(const char *file, int line,
								  const char *cond,
								  const char *fmt, ...);

#endif
