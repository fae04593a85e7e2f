/* SPDX-License-Identifier: MIT */
#include "lib/log.h"

#include <stdio.h>

static enum log_level current_level = LOG_INFO;

void lp_set_log_level(enum log_level level) { current_level = level; }

int lp_library_message(const char *fmt, va_list ap)
{
	if (current_level < LOG_DEBUG)
		return 0;
	fputs("lua-perf: debug: ", stderr);
	return vfprintf(stderr, fmt, ap);
}

static void emit(const char *prefix, const char *fmt, va_list ap)
{
	fprintf(stderr, "lua-perf: %s", prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

#define DEFINE_LOG(name, prefix, min_level)                                                         \
	void name(const char *fmt, ...)                                                              \
	{                                                                                            \
		if (current_level < (min_level))                                                     \
			return;                                                                      \
		va_list ap;                                                                          \
		va_start(ap, fmt);                                                                   \
		emit(prefix, fmt, ap);                                                               \
		va_end(ap);                                                                          \
	}

DEFINE_LOG(lp_error, "error: ", LOG_QUIET)
DEFINE_LOG(lp_warn, "warning: ", LOG_QUIET)
DEFINE_LOG(lp_info, "", LOG_INFO)
DEFINE_LOG(lp_debug, "debug: ", LOG_DEBUG)
