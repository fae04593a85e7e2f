/* SPDX-License-Identifier: MIT */
/* thread_dump.h - `lua-perf dump`: the current stack of every thread of the target processes,
 * once, like a debugger's backtrace, without stopping them. The stacks come from the BPF
 * unwinder: threads off CPU are unwound by a task iterator (bpf/thread_dump.bpf.c), threads on
 * a CPU by the sampling program in its dump mode; both keep the first stack of each thread in
 * the map thread_stacks. docs/output-format.md describes the output. */
#ifndef LUA_PERF_THREAD_DUMP_H
#define LUA_PERF_THREAD_DUMP_H

#include <stdbool.h>
#include <stdio.h>

struct sample_bpf;
struct process_tree;
struct frame_namer;
struct thread_dump;

/* Open the task iterator with the maps of the sampling object (created, not necessarily loaded
 * yet). Errors are reported (one line); returns 0 or -1. */
int thread_dump_open(struct thread_dump **out, struct sample_bpf *sampler, bool kernel_stacks);
/* Load and attach it (the kernel verifies it: it may run beside the sampler's load, on another
 * thread); on a kernel that cannot unwind threads off CPU (said in a warning), only the threads
 * that run get a stack. Errors are reported (one line); returns 0 or -1. */
int thread_dump_load(struct thread_dump *d);
/* Whether the task iterator was loaded (threads off CPU get a stack). */
bool thread_dump_has_iterator(const struct thread_dump *d);
void thread_dump_close(struct thread_dump *d);

/* Whether a thread of the live processes of the tree is running or waiting for a CPU (proc(5):
 * state R): only such a thread needs the sampling program (threads off CPU are the task
 * iterator's). */
bool thread_dump_any_running(const struct process_tree *tree);

/* One round: unwind the threads that sleep (and, with take_runnable, those waiting for a CPU) and
 * have no stack yet, then list the threads of the live processes of the tree. Returns how many
 * of them still have no stack, or -errno. */
int thread_dump_round(struct thread_dump *d, const struct process_tree *tree, bool take_runnable);

/* Print one block per process of the tree and, in it, one per thread (threads of the last
 * round without a stack included). Returns 0 or -errno (write error). */
int thread_dump_print(struct thread_dump *d, const struct process_tree *tree,
		      struct frame_namer *namer, FILE *out);

#endif
