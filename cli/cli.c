/* SPDX-License-Identifier: MIT */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "unwind/table_cache.h"

#define LUA_PERF_VERSION "0.1.0"
#define MAX_FREQUENCY 100000
#define DUMP_DEFAULT_WAIT 2.0 /* seconds */
#define MAX_MIN_BLOCK_US 60000000L /* a minute */

static const char usage_text[] =
	"Usage: lua-perf -p PID [-p PID ...] [options]\n"
	"       lua-perf [options] -- CMD [ARGS...]\n"
	"       lua-perf dump -p PID [-p PID ...] [-d SEC] [--no-kernel] [-v|-q]\n"
	"Sample the CPU stacks of running processes (mixed C/Lua) without frame pointers and write\n"
	"folded stacks (for flamegraph.pl), an interactive SVG flame graph and/or a pprof profile.\n"
	"With -- CMD: start CMD, profile it and its descendants from its first instruction until\n"
	"it exits, and exit with its exit status.\n"
	"\n"
	"  -p, --pid PID         process to profile with all its threads and descendants, also\n"
	"                        those it starts while profiling; repeat for several\n"
	"  -f, --frequency HZ    samples per second per CPU (default 1000)\n"
	"  -d, --duration SEC    stop after SEC seconds (default: at Ctrl-C / SIGTERM)\n"
	"  -o, --output FILE     output file; repeat for several, all written by one run\n"
	"                        (default perf.fold). Format from the name: *.svg is a flame\n"
	"                        graph, *.pb.gz and *.pprof a gzipped pprof profile (go tool\n"
	"                        pprof, Pyroscope, Parca), anything else folded stacks\n"
	"      --format FMT      svg, pprof, folded or auto (by name, the default) for every -o\n"
	"                        after it; without -o: the default output in that format\n"
	"                        (perf.svg, profile.pb.gz)\n"
	"      --no-kernel       leave out kernel frames\n"
	"      --stats           count samples by how their user stack ended\n"
	"      --lines           Lua frames show the current line instead of the line defined\n"
	"      --off-cpu         where threads wait instead of where they run: each stack\n"
	"                        weighted by the time (microseconds) its thread was off CPU\n"
	"                        after leaving it there, the leaf saying why ([preempted],\n"
	"                        [blocked: SYSCALL]); no sampling, -f does not apply\n"
	"      --min-block-us N  with --off-cpu: leave out (count only) shorter times off CPU\n"
	"                        (default 1)\n"
	"  -v, --verbose         debug messages\n"
	"  -q, --quiet           only errors and the final summary\n"
	"  -h, --help            this help\n"
	"      --version         print the version\n"
	"\n"
	"lua-perf dump prints the current stack of every thread of the processes (and their\n"
	"descendants) once on stdout, leaf first, Lua frames with their current line, and leaves\n"
	"them running. -d: how long to wait at most for a stack of every thread (default 2).\n"
	"\n"
	"Environment: LUA_PERF_TABLE_CACHE, the directory where compiled unwind tables are kept\n"
	"for later runs (default " TABLE_CACHE_DEFAULT_DIR "); empty or \"off\": none.\n";

enum { OPT_NO_KERNEL = 256, OPT_STATS, OPT_LINES, OPT_VERSION, OPT_FORMAT, OPT_OFF_CPU,
       OPT_MIN_BLOCK };

static const struct option long_options[] = {
	{"pid", required_argument, NULL, 'p'},
	{"frequency", required_argument, NULL, 'f'},
	{"duration", required_argument, NULL, 'd'},
	{"output", required_argument, NULL, 'o'},
	{"format", required_argument, NULL, OPT_FORMAT},
	{"no-kernel", no_argument, NULL, OPT_NO_KERNEL},
	{"stats", no_argument, NULL, OPT_STATS},
	{"lines", no_argument, NULL, OPT_LINES},
	{"off-cpu", no_argument, NULL, OPT_OFF_CPU},
	{"min-block-us", required_argument, NULL, OPT_MIN_BLOCK},
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

/* --format: AUTO picks by the file name. It applies to the -o options that follow it. */
enum format_choice { FORMAT_AUTO, FORMAT_FOLDED, FORMAT_SVG, FORMAT_PPROF };

/* What the parse remembers beyond the options' values. */
struct output_parse {
	enum format_choice format;
	bool format_unused; /* a --format that no -o followed yet */
	bool frequency_given;
	bool min_block_given;
};

static int parse_format(const char *text, enum format_choice *out)
{
	if (strcmp(text, "auto") == 0)
		*out = FORMAT_AUTO;
	else if (strcmp(text, "folded") == 0)
		*out = FORMAT_FOLDED;
	else if (strcmp(text, "svg") == 0)
		*out = FORMAT_SVG;
	else if (strcmp(text, "pprof") == 0)
		*out = FORMAT_PPROF;
	else
		return -1;
	return 0;
}

static bool ends_with_nocase(const char *path, const char *suffix)
{
	size_t len = strlen(path), n = strlen(suffix);

	return len >= n && strcasecmp(path + len - n, suffix) == 0;
}

static enum output_format format_for(enum format_choice choice, const char *path)
{
	switch (choice) {
	case FORMAT_FOLDED:
		return OUTPUT_FOLDED;
	case FORMAT_SVG:
		return OUTPUT_SVG;
	case FORMAT_PPROF:
		return OUTPUT_PPROF;
	case FORMAT_AUTO:
		break;
	}
	if (ends_with_nocase(path, ".svg"))
		return OUTPUT_SVG;
	if (ends_with_nocase(path, ".pb.gz") || ends_with_nocase(path, ".pprof"))
		return OUTPUT_PPROF;
	return OUTPUT_FOLDED;
}

/* The output without -o: perf.fold, or in the format --format chose. */
static const char *default_output(enum format_choice choice)
{
	switch (choice) {
	case FORMAT_SVG:
		return "perf.svg";
	case FORMAT_PPROF:
		return "profile.pb.gz";
	case FORMAT_AUTO:
	case FORMAT_FOLDED:
		break;
	}
	return "perf.fold";
}

static int add_output(struct session_options *opts, struct output_parse *parse, const char *path)
{
	for (size_t i = 0; i < opts->output_count; i++)
		if (strcmp(opts->outputs[i].path, path) == 0) {
			lp_error("output %s given twice", path);
			return -1;
		}
	struct output_spec *grown =
		realloc(opts->outputs, (opts->output_count + 1) * sizeof(*grown));
	if (!grown) {
		lp_error("out of memory");
		return -1;
	}
	opts->outputs = grown;
	opts->outputs[opts->output_count++] = (struct output_spec){
		.path = path,
		.format = format_for(parse->format, path),
	};
	parse->format_unused = false;
	return 0;
}

/* No -o: the default output (perf.fold, or as default_output() says after --format). A --format after the
 * last -o would apply to nothing: say so rather than ignore it. */
static int finish_outputs(struct session_options *opts, const struct output_parse *parse)
{
	if (opts->output_count == 0)
		return add_output(opts, &(struct output_parse){.format = parse->format},
				  default_output(parse->format));
	if (parse->format_unused) {
		lp_error("--format after the last -o applies to no output: put it before the -o it is "
			 "for");
		return -1;
	}
	return 0;
}

/* lua-perf dump prints on stdout: options about output files have nothing to apply to. */
static int check_dump_option(int opt)
{
	const char *name = opt == 'o'		  ? "-o"
			   : opt == OPT_FORMAT	  ? "--format"
			   : opt == OPT_STATS	  ? "--stats"
			   : opt == OPT_OFF_CPU	  ? "--off-cpu"
			   : opt == OPT_MIN_BLOCK ? "--min-block-us"
						  : NULL;

	if (name) {
		lp_error("%s does not apply to lua-perf dump (it prints on stdout)", name);
		return -1;
	}
	return 0;
}

static int handle_option(int opt, struct session_options *opts, struct output_parse *parse)
{
	long value;

	if (opts->dump && check_dump_option(opt) < 0)
		return -1;
	switch (opt) {
	case 'p':
		return add_pid(opts, optarg);
	case 'f':
		if (parse_long(optarg, 1, MAX_FREQUENCY, &value) < 0) {
			lp_error("invalid frequency '%s' (1 to %d Hz)", optarg, MAX_FREQUENCY);
			return -1;
		}
		opts->frequency = (unsigned)value;
		parse->frequency_given = true;
		return 0;
	case 'd':
		if (parse_seconds(optarg, &opts->duration) < 0) {
			lp_error("invalid duration '%s' (seconds, > 0)", optarg);
			return -1;
		}
		return 0;
	case 'o':
		return add_output(opts, parse, optarg);
	case OPT_FORMAT:
		if (parse_format(optarg, &parse->format) < 0) {
			lp_error("invalid format '%s' (svg, pprof, folded or auto)", optarg);
			return -1;
		}
		parse->format_unused = true;
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
	case OPT_OFF_CPU:
		opts->off_cpu = true;
		return 0;
	case OPT_MIN_BLOCK:
		if (parse_long(optarg, 0, MAX_MIN_BLOCK_US, &value) < 0) {
			lp_error("invalid --min-block-us '%s' (0 to %ld microseconds)", optarg,
				 MAX_MIN_BLOCK_US);
			return -1;
		}
		opts->min_block_us = (unsigned)value;
		parse->min_block_given = true;
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

/* What follows "--" is the command to start and profile. */
static int take_command(int argc, char **argv, struct session_options *opts)
{
	bool after_separator = optind > 1 && strcmp(argv[optind - 1], "--") == 0;

	if (optind < argc && !after_separator) {
		lp_error("unexpected argument '%s'; try 'lua-perf --help'", argv[optind]);
		return -1;
	}
	if (after_separator && optind == argc) {
		lp_error("no command after --");
		return -1;
	}
	if (after_separator)
		opts->command = &argv[optind];
	return 0;
}

static int check_targets_given(const struct session_options *opts)
{
	if (opts->command && opts->dump) {
		lp_error("lua-perf dump takes running processes (-p PID), not a command to start");
		return -1;
	}
	if (opts->command && opts->pid_count) {
		lp_error("give either -p PID or a command after --, not both");
		return -1;
	}
	if (!opts->command && opts->pid_count == 0) {
		lp_error("no process given: use -p PID or -- CMD (try 'lua-perf --help')");
		return -1;
	}
	return 0;
}

/* -f is the sampling rate: off CPU nothing is sampled; --min-block-us is about off-CPU time. */
static int check_off_cpu_options(const struct session_options *opts,
				 const struct output_parse *parse)
{
	if (opts->off_cpu && parse->frequency_given) {
		lp_error("-f does not apply to --off-cpu (it follows every switch, it does not sample)");
		return -1;
	}
	if (!opts->off_cpu && parse->min_block_given) {
		lp_error("--min-block-us applies to --off-cpu only");
		return -1;
	}
	return 0;
}

/* LUA_PERF_TABLE_CACHE: a directory, or "" / "off" for none; unset: the default. */
static void choose_table_cache(struct session_options *opts)
{
	const char *dir = getenv("LUA_PERF_TABLE_CACHE");

	opts->table_cache_chosen = dir != NULL;
	if (!dir)
		opts->table_cache = TABLE_CACHE_DEFAULT_DIR;
	else if (dir[0] != '\0' && strcmp(dir, "off") != 0)
		opts->table_cache = dir;
}

enum cli_result cli_parse(int argc, char **argv, struct session_options *opts)
{
	struct output_parse parse = {.format = FORMAT_AUTO};
	int opt;

	*opts = (struct session_options){
		.frequency = 1000,
		.kernel_stacks = true,
		.min_block_us = 1,
	};
	choose_table_cache(opts);
	if (argc > 1 && strcmp(argv[1], "dump") == 0) {
		/* the options after "dump": getopt takes "dump" for the program name */
		opts->dump = true;
		opts->lua_lines = true;
		argc--;
		argv++;
	}
	/* '+': options end at the first argument that is not one (or at "--": the command) */
	while ((opt = getopt_long(argc, argv, "+p:f:d:o:vqh", long_options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (opt == OPT_VERSION) {
			puts("lua-perf " LUA_PERF_VERSION);
			return CLI_EXIT_OK;
		}
		if (handle_option(opt, opts, &parse) < 0)
			return CLI_EXIT_ERROR;
	}
	if (take_command(argc, argv, opts) < 0 || check_targets_given(opts) < 0 ||
	    check_off_cpu_options(opts, &parse) < 0)
		return CLI_EXIT_ERROR;
	if (opts->dump) {
		if (opts->duration == 0)
			opts->duration = DUMP_DEFAULT_WAIT;
		return CLI_RUN;
	}
	if (finish_outputs(opts, &parse) < 0)
		return CLI_EXIT_ERROR;
	return CLI_RUN;
}

void cli_options_free(struct session_options *opts)
{
	free(opts->pids);
	free(opts->outputs);
	opts->pids = NULL;
	opts->outputs = NULL;
	opts->pid_count = opts->output_count = 0;
}
