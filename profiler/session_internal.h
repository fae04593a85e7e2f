/* SPDX-License-Identifier: MIT */
/* session_internal.h - what the files of a session (profiler/session*.c) share: the session's
 * state, the stop signals received, and the functions one file offers the others. Not a public
 * header: only profiler/session*.c include it. */
#ifndef LUA_PERF_SESSION_INTERNAL_H
#define LUA_PERF_SESSION_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "output/loss_report.h"
#include "output/output_files.h"
#include "proc/process_tree.h"
#include "profiler/command.h"
#include "profiler/frame_names.h"
#include "profiler/mapped_files.h"
#include "profiler/sample_drain.h"
#include "profiler/sample_folding.h"
#include "profiler/session.h"
#include "profiler/thread_dump.h"
#include "sample.skel.h"

#define POLL_INTERVAL_MS 100
#define RESCAN_INTERVAL_S 1.0
#define DRAIN_INTERVAL_S 1.0 /* or sooner, when a generation is half full */
#define DUMP_ROUND_MS 20 /* lua-perf dump: between two task iterator rounds */
#define DUMP_RUNNABLE_GRACE_S 0.3 /* lua-perf dump: runnable threads are sampled as they run
				   * until then, then unwound where they wait for a CPU */

/* A process being sampled: in the BPF `targets` map, its mappings in `proc_mappings`. */
struct target {
	pid_t pid;
	uint64_t maps_hash;
	bool refresh_requested;
	const struct mapped_file *lua_file; /* the file with its Lua VM (or VM problem) announced */
};

/* Work done on a thread of its own (or inline when no thread could be made). */
struct background {
	pthread_t thread;
	bool running; /* the thread runs, or ended and is not joined yet */
	int rc;       /* its result: 0 or -1 (said) */
};

struct session {
	const struct session_options *opts;
	struct sample_bpf *map_owner;   /* holds the maps, created ahead; never loaded */
	struct sample_bpf *skel;        /* the programs and their .bss; map_owner's maps */
	struct table_store *store;
	struct mapped_files files;
	struct frame_namer namer;
	struct sample_drain drain;
	struct aggregation aggregation;  /* the profile, built at every drain */
	struct loss_report losses;
	double last_drain;
	bool drain_failure_said;
	pid_t *gone;                     /* exited since the last drain: forgotten after the next */
	size_t gone_count;
	size_t gone_capacity;
	struct command command;          /* lua-perf -- CMD */
	struct process_tree tree;        /* the -p processes and their descendants */
	struct target *targets;          /* the live processes of the tree, MAX_TARGET_PROCS at most */
	size_t target_count;
	struct bpf_link **links;         /* on_sample, per CPU */
	struct bpf_link *switch_link;    /* --off-cpu: on_switch */
	struct bpf_link *follow_links[2]; /* fork, exec */
	int *perf_fds;
	int cpu_count;
	struct ring_buffer *events;
	void *rows_mem, *pages_mem, *rules_mem;
	size_t rows_len, pages_len, rules_len;
	struct proc_mappings *scratch_mappings;
	double started;
	double cpu_at_start; /* own CPU seconds when sampling started */
	bool limit_warned;               /* MAX_TARGET_PROCS reached: said once */
	struct thread_dump *dump;        /* lua-perf dump only */
	struct background sampler_load;  /* verifies the sampler while the tables are built */
	struct background dump_load;     /* lua-perf dump: the iterator, then kernel_symbols */
	bool sampler_deferred;           /* lua-perf dump: not loaded, no target thread ran */
	struct background kernel_load;   /* profiling: kernel_symbols, read while sampling starts */
	struct symbol_table kernel_symbols; /* /proc/kallsyms, read on a thread */
	int kernel_symbols_rc;
	bool kernel_symbols_read;        /* kernel_symbols is for the namer to take */
};

/* session.c: the stop signals (SIGINT, SIGTERM, SIGHUP) received. */
extern volatile sig_atomic_t stop_requested;
extern volatile sig_atomic_t stop_signals;            /* how many were received */
extern volatile sig_atomic_t stop_signal_forwardable; /* the last one was sent to lua-perf alone */
extern volatile sig_atomic_t stop_signal_number;

/* session_start.c: loading, the table store, the perf events (or, off CPU, the switches). */
int load_program(struct session *s);
int open_table_store(struct session *s);
int attach_perf_events(struct session *s);
int attach_process_followers(struct session *s);
void detach_perf_events(struct session *s);
/* Wait for the programs that load_program started loading (and, for lua-perf dump, the task
 * iterator and the kernel's symbols); 0 or -1 (said). */
int finish_loading(struct session *s);
/* Profiling, once it samples: read the kernel's symbols on a thread. */
void start_kernel_symbols(struct session *s);
/* Hand the kernel's symbols to the namer, once read (waits for the thread). */
void take_kernel_symbols(struct session *s);
/* lua-perf dump, after add_targets: start loading the sampling program if a target thread runs;
 * else defer it. */
void start_dump_sampler(struct session *s);
/* lua-perf dump: load and attach the sampling program if it was deferred. 0 or -1 (said). */
int load_deferred_sampler(struct session *s);

/* session_targets.c: the processes sampled. */
int add_targets(struct session *s);
int update_targets(struct session *s);
void refresh_targets(struct session *s, bool periodic);
struct target *find_target(struct session *s, pid_t pid);
void process_forked(struct session *s, pid_t child, pid_t parent);
void process_execed(struct session *s, pid_t pid);
void forget_gone(struct session *s);

/* session_sampling.c: events, drains, the loop, the dump. */
int on_event(void *ctx, void *data, size_t size);
void drain_samples(struct session *s);
void run_loop(struct session *s);
int run_dump(struct session *s);

/* session_end.c: the end and the outputs. */
int finish_profile(struct session *s, struct outputs *outputs);
void stop_command(struct session *s);
int command_result(struct session *s, int profile_exit_code);
void report_gone_before_start(const struct session *s);
void session_free(struct session *s);

#endif
