/* SPDX-License-Identifier: MIT */
/* log.h - messages on stderr. Library code returns negative errno values and says why with
 * lp_warn/lp_debug; only the CLI decides to exit. */
#ifndef LUA_PERF_LOG_H
#define LUA_PERF_LOG_H

#include <stdarg.h>

enum log_level { LOG_QUIET = 0, LOG_INFO = 1, LOG_DEBUG = 2 };

void lp_set_log_level(enum log_level level);
/* Messages of libraries (libbpf) that print on their own: shown with -v only, as they come
 * (newline included). */
int lp_library_message(const char *fmt, va_list ap);
/* "lua-perf: error: ..." / "lua-perf: warning: ..." / "lua-perf: ..." (info) / debug. */
void lp_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lp_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lp_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
