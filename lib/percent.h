/* SPDX-License-Identifier: MIT */
/* percent.h - shares of a whole, as printed in the summary and the flame graph. */
#ifndef LUA_PERF_PERCENT_H
#define LUA_PERF_PERCENT_H

#include <stdint.h>

/* part as a percentage of whole; 0 when whole is 0. */
static inline double percent(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

#endif
