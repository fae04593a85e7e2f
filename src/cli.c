/* SPDX-License-Identifier: MIT */
#include "src/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/log.h"

#define LUA_PERF_VERSION "0.1.0"
#define MAX_FREQUENCY 100000

static const char usage_text[] =
	"Usage: lua-perf -p PID [-p PID ...] [options]\n"
	"Sample the CPU stacks of running processes (mixed C/Lua) without frame pointers and write\n"
	"folded stacks for flamegraph.pl.\n"
	"\n"
	"  -p, --pid PID         process to profile with all its threads and descendants, also\n"
	"                        those it starts while profiling; repeat for several\n"
	"  -f, --frequency HZ    samples per second per CPU (default 1000)\n"
	"  -d, --duration SEC    stop after SEC seconds (default: at Ctrl-C / SIGTERM)\n"
	"  -o, --output FILE     folded output (default perf.fold)\n"
	"      --no-kernel       leave out kernel frames\n"
	"      --stats           count samples by how their user stack ended\n"
	"      --lines           Lua frames show the current line instead of the line defined\n"
	"  -v, --verbose         debug messages\n"
	"  -q, --quiet           only errors and the final summary\n"
	"  -h, --help            this help\n"
	"      --version         print the version\n";

enum { OPT_NO_KERNEL = 256, OPT_STATS, OPT_LINES, OPT_VERSION };

static const struct option long_options[] = {
	{"pid", required_argument, NULL, 'p'},
	{"frequency", required_argument, NULL, 'f'},
	{"duration", required_argument, NULL, 'd'},
	{"output", required_argument, NULL, 'o'},
	{"no-kernel", no_argument, NULL, OPT_NO_KERNEL},
	{"stats", no_argument, NULL, OPT_STATS},
	{"lines", no_argument, NULL, OPT_LINES},
	{"verbose", no_argument, NULL, 'v'},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

static int parse_long(const char *text, long min, long max, long *out)
{
	char *end;

	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno || end == text || *end || value < min || value > max)
		return -1;
	*out = value;
	return 0;
}

static int parse_seconds(const char *text, double *out)
{
	char *end;

	errno = 0;
	double value = strtod(text, &end);
	if (errno || end == text || *end || !(value > 0) || value > 1e7)
		return -1;
	*out = value;
	return 0;
}

static int add_pid(struct session_options *opts, const char *text)
{
	long pid;

	if (parse_long(text, 1, INT_MAX, &pid) < 0) {
		lp_error("invalid PID '%s'", text);
		return -1;
	}
	pid_t *grown = realloc(opts->pids, (opts->pid_count + 1) * sizeof(*grown));
	if (!grown) {
		lp_error("out of memory");
		return -1;
	}
	opts->pids = grown;
	opts->pids[opts->pid_count++] = (pid_t)pid;
	return 0;
}

static int handle_option(int opt, struct session_options *opts)
{
	long value;

	switch (opt) {
	case 'p':
		return add_pid(opts, optarg);
	case 'f':
		if (parse_long(optarg, 1, MAX_FREQUENCY, &value) < 0) {
			lp_error("invalid frequency '%s' (1 to %d Hz)", optarg, MAX_FREQUENCY);
			return -1;
		}
		opts->frequency = (unsigned)value;
		return 0;
	case 'd':
		if (parse_seconds(optarg, &opts->duration) < 0) {
			lp_error("invalid duration '%s' (seconds, > 0)", optarg);
			return -1;
		}
		return 0;
	case 'o':
		opts->output = optarg;
		return 0;
	case OPT_NO_KERNEL:
		opts->kernel_stacks = false;
		return 0;
	case OPT_STATS:
		opts->stats = true;
		return 0;
	case OPT_LINES:
		opts->lua_lines = true;
		return 0;
	case 'v':
		lp_set_log_level(LOG_DEBUG);
		return 0;
	case 'q':
		lp_set_log_level(LOG_QUIET);
		return 0;
	default:
		fprintf(stderr, "Try 'lua-perf --help'.\n");
		return -1;
	}
}

enum cli_result cli_parse(int argc, char **argv, struct session_options *opts)
{
	int opt;

	*opts = (struct session_options){
		.frequency = 1000,
		.output = "perf.fold",
		.kernel_stacks = true,
	};
	while ((opt = getopt_long(argc, argv, "p:f:d:o:vqh", long_options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (opt == OPT_VERSION) {
			puts("lua-perf " LUA_PERF_VERSION);
			return CLI_EXIT_OK;
		}
		if (handle_option(opt, opts) < 0)
			return CLI_EXIT_ERROR;
	}
	if (optind < argc) {
		lp_error("unexpected argument '%s'; try 'lua-perf --help'", argv[optind]);
		return CLI_EXIT_ERROR;
	}
	if (opts->pid_count == 0) {
		lp_error("no process given: use -p PID (try 'lua-perf --help')");
		return CLI_EXIT_ERROR;
	}
	return CLI_RUN;
}
