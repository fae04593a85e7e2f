/* SPDX-License-Identifier: MIT */
/* session_sampling.c - a session while it samples: the BPF events handled, the samples drained
 * into the profile, the loop that runs until the end comes, and the dump's rounds. */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/clocks.h"
#include "lib/log.h"
#include "profiler/bpf_load.h"
#include "profiler/off_cpu.h"
#include "profiler/session_internal.h"

int on_event(void *ctx, void *data, size_t size)
{
	struct session *s = ctx;
	const struct profiler_event *event = data;
	struct target *t;

	if (size < sizeof(*event))
		return 0;
	switch (event->type) {
	case EVENT_NEW_LUA_STACK:
		aggregate_prefetch_lua_stack(&s->namer,
					     sample_drain_stacks_fd(&s->drain, event->generation),
					     (pid_t)event->tgid, event->addr);
		break;
	case EVENT_UNKNOWN_MAPPING:
		t = find_target(s, (pid_t)event->tgid);
		if (t)
			t->refresh_requested = true;
		break;
	case EVENT_PROCESS_FORKED:
		process_forked(s, (pid_t)event->tgid, (pid_t)event->addr);
		break;
	case EVENT_PROCESS_EXECED:
		process_execed(s, (pid_t)event->tgid);
		break;
	default:
		break;
	}
	return 0;
}

/* Take the samples out of the kernel into the profile, then say any loss that started. */
void drain_samples(struct session *s)
{
	uint64_t counters[CNT_COUNT];

	take_kernel_symbols(s); /* the samples' kernel frames are named as they are drained */
	int rc = sample_drain_run(&s->drain, s->opts->off_cpu ? aggregate_off_cpu : aggregate_sample,
				  &s->aggregation);

	s->last_drain = now_seconds();
	if (rc < 0 && !s->drain_failure_said) {
		lp_warn("cannot take samples out of the kernel: %s", strerror(-rc));
		s->drain_failure_said = true;
	}
	forget_gone(s);
	if (read_counters(s->skel, counters) == 0)
		loss_report_check(&s->losses, counters, &s->aggregation.profile);
}

/* Has the run's end come: the command exited, or every process of every tree? */
static bool targets_done(struct session *s)
{
	if (s->command.pid > 0) {
		if (!command_exited(&s->command))
			return false;
		lp_info("%s exited (status %d)", s->opts->command[0], command_exit_code(&s->command));
		return true;
	}
	if (s->tree.live_count > 0)
		return false;
	lp_info("all target processes exited");
	return true;
}

/* Wait for events at most timeout_ms, and handle them: those that woke it, and those BPF left
 * in the ring without a wake-up (epoll does not report them). The number handled, or -errno. */
static int consume_events(struct session *s, int timeout_ms)
{
	int woken = ring_buffer__poll(s->events, timeout_ms);

	if (woken < 0)
		return woken;
	int pending = ring_buffer__consume(s->events);
	return pending < 0 ? pending : woken + pending;
}

void run_loop(struct session *s)
{
	double last_rescan = now_seconds();
	int consumed = 0;

	while (!stop_requested) {
		/* while events come, some wait in the ring without a wake-up (new Lua stacks): look
		 * again after the interval BPF paces its wake-ups at */
		int rc = consume_events(s, consumed > 0 ? LUA_WAKEUP_INTERVAL_MS : POLL_INTERVAL_MS);
		consumed = rc;
		double now = now_seconds();

		if (rc < 0 && rc != -EINTR) {
			lp_warn("ring buffer poll failed: %s", strerror(-rc));
			break;
		}
		if (now - s->last_drain >= DRAIN_INTERVAL_S || sample_drain_due(&s->drain))
			drain_samples(s);
		bool periodic = now - last_rescan >= RESCAN_INTERVAL_S;
		if (periodic) {
			last_rescan = now;
			if (update_targets(s) < 0)
				break;
		}
		refresh_targets(s, periodic);
		if (targets_done(s))
			break;
		if (s->opts->duration > 0 && now - s->started >= s->opts->duration)
			break;
	}
}

/* lua-perf dump: task iterator rounds take the sleeping threads while the perf events take those
 * that run, until every thread has a stack or the wait (duration) is over. */
int run_dump(struct session *s)
{
	int missing;

	do {
		bool take_runnable = now_seconds() - s->started >= DUMP_RUNNABLE_GRACE_S;

		missing = thread_dump_round(s->dump, &s->tree, take_runnable);
		if (missing <= 0)
			break;
		if (load_deferred_sampler(s) < 0)
			return 1;
		int rc = consume_events(s, DUMP_ROUND_MS);
		if (rc < 0 && rc != -EINTR) {
			lp_warn("ring buffer poll failed: %s", strerror(-rc));
			break;
		}
		refresh_targets(s, false);
	} while (!stop_requested && now_seconds() - s->started < s->opts->duration);
	detach_perf_events(s);
	if (missing < 0) {
		lp_error("cannot run the BPF dump iterator: %s", strerror(-missing));
		return 1;
	}
	lp_debug("dump took %.3f s", now_seconds() - s->started);
	int rc = thread_dump_print(s->dump, &s->tree, &s->namer, stdout);
	if (rc < 0)
		lp_error("cannot write the dump: %s", strerror(-rc));
	return rc == 0 ? 0 : 1;
}
