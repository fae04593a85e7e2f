/* SPDX-License-Identifier: MIT */
/* cli.h - command line of lua-perf (see `lua-perf --help` and README.md). */
#ifndef LUA_PERF_CLI_H
#define LUA_PERF_CLI_H

#include "profiler/session.h"

enum cli_result { CLI_RUN = 0, CLI_EXIT_OK = 1, CLI_EXIT_ERROR = 2 };

/* Parse argv into opts (free it with cli_options_free, whatever the result). Messages go to
 * stdout/stderr. */
enum cli_result cli_parse(int argc, char **argv, struct session_options *opts);
void cli_options_free(struct session_options *opts);

#endif
