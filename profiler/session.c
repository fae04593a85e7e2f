/* SPDX-License-Identifier: MIT */
/* session.c - one run from start to end (session.h): the outputs opened, the command spawned,
 * the BPF program loaded and the targets added, then the profile or the dump. */
#include "profiler/session.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clocks.h"
#include "lib/log.h"
#include "profiler/session_internal.h"

volatile sig_atomic_t stop_requested;
volatile sig_atomic_t stop_signals;       /* how many were received */
volatile sig_atomic_t stop_signal_forwardable; /* the last one was sent to lua-perf alone */
volatile sig_atomic_t stop_signal_number;

/* A terminal sends its signals (Ctrl-C) to the whole foreground process group, with si_code
 * SI_KERNEL (drivers/tty/tty_io.c, __kill_pgrp_info via isig()); kill(2) sends SI_USER. */
static void on_stop_signal(int sig, siginfo_t *info, void *context)
{
	(void)context;
	stop_requested = 1;
	stop_signals++;
	stop_signal_number = sig;
	stop_signal_forwardable = info && info->si_code != SI_KERNEL;
}

static void install_signal_handlers(void)
{
	struct sigaction sa = {.sa_sigaction = on_stop_signal, .sa_flags = SA_SIGINFO};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void print_table_summary(const struct session *s)
{
	struct table_store_stats st = table_store_stats(s->store);
	const struct table_cache *cache = &s->files.cache;

	lp_info("unwind tables: %u files (%u without table, %u from the table cache), %u rows "
		"(%.1f MiB), %u rules, built in %.3f s",
		st.files, st.files_without_table, cache->hits, st.rows_used,
		(double)st.rows_used * sizeof(struct unwind_row) / (1024.0 * 1024.0), st.rules_used,
		s->files.build_seconds);
	if (cache->dropped)
		lp_warn("table cache %s: %u damaged entries deleted (their tables were built "
			"again)", cache->dir, cache->dropped);
}

/* CMD's executable (a script's interpreter) gets its unwind table, and its Lua VM found, before
 * CMD runs: after the exec, its samples then wait only for its mappings to be read, not for a
 * table to be built. */
static void prepare_command(struct session *s)
{
	char *path = command_resolve(s->opts->command[0]);
	int rc = path ? mapped_files_prepare(&s->files, s->command.pid, path) : -ENOENT;

	if (rc == -ENOEXEC) {
		char *interpreter = command_script_interpreter(path);

		rc = interpreter ? mapped_files_prepare(&s->files, s->command.pid, interpreter)
				 : -ENOEXEC;
		free(interpreter);
	}
	if (rc < 0)
		lp_debug("%s: no table built ahead: %s", s->opts->command[0], strerror(-rc));
	free(path);
}

/* Release CMD, held since the fork. Its exit code when it cannot run: 127 not found, else 126
 * (the shell's convention). */
static int start_command(struct session *s)
{
	prepare_command(s);
	int rc = command_start(&s->command, s->opts->command[0]);

	if (rc == 0)
		return 0;
	command_exited(&s->command); /* reaps it */
	return rc == -ENOENT ? 127 : 126;
}

static int profile(struct session *s, struct outputs *outputs)
{
	if (s->opts->off_cpu)
		lp_info("profiling %zu process%s off CPU (blocks from %u us)%s", s->target_count,
			s->target_count == 1 ? "" : "es", s->opts->min_block_us,
			s->opts->duration > 0 ? "" : "; Ctrl-C to stop");
	else
		lp_info("profiling %zu process%s at %u Hz%s", s->target_count,
			s->target_count == 1 ? "" : "es", s->opts->frequency,
			s->opts->duration > 0 ? "" : "; Ctrl-C to stop");
	start_kernel_symbols(s);
	run_loop(s);
	stop_command(s);
	int exit_code = finish_profile(s, outputs);
	return s->command.pid > 0 ? command_result(s, exit_code) : exit_code;
}

int session_run(const struct session_options *opts)
{
	struct session s = {.opts = opts, .command.release_fd = -1, .command.status_fd = -1};
	int exit_code = 1;

	/* Before any BPF work: an unwritable output must not cost a whole profiling run. */
	struct outputs outputs = {0};
	struct output_targets targets = {opts->command, opts->pids, opts->pid_count};
	if (!opts->dump && outputs_open(&outputs, opts->outputs, opts->output_count, &targets) < 0)
		return 1;
	bool outputs_pending = !opts->dump;
	s.scratch_mappings = calloc(1, sizeof(*s.scratch_mappings));
	if (!s.scratch_mappings) {
		lp_error("out of memory");
		goto out;
	}
	if (opts->command && command_spawn(&s.command, opts->command) < 0)
		goto out;
	install_signal_handlers();
	if (load_program(&s) < 0 || open_table_store(&s) < 0 || add_targets(&s) < 0)
		goto out;
	if (opts->dump)
		start_dump_sampler(&s);
	if (finish_loading(&s) < 0)
		goto out;
	print_table_summary(&s);
	s.started = now_seconds();
	s.cpu_at_start = own_cpu_seconds();
	s.last_drain = s.started;
	if (attach_perf_events(&s) < 0 || (!opts->dump && attach_process_followers(&s) < 0))
		goto out;
	if (s.command.pid > 0 && (exit_code = start_command(&s)) != 0)
		goto out;
	exit_code = 1;
	/* Targets that exit while the tables are built end the run here, as they would have before */
	if (update_targets(&s) < 0)
		goto out;
	if (s.tree.live_count == 0 && s.command.pid <= 0) {
		report_gone_before_start(&s);
		goto out;
	}
	if (opts->dump) {
		exit_code = run_dump(&s);
		goto out;
	}
	exit_code = profile(&s, &outputs);
	outputs_pending = false; /* closed by outputs_write */
out:
	if (outputs_pending)
		outputs_discard(&outputs);
	command_abandon(&s.command);
	session_free(&s);
	return exit_code;
}
