/* SPDX-License-Identifier: MIT */
/*
 * bpf_load.h - loading lua-perf's BPF objects: what the running kernel must offer, checked in its
 * BTF when a load fails (one error line naming the kernel and the missing feature; not before:
 * reading the kernel's BTF costs 40-50 ms of start-up, as much again as libbpf's own read), and
 * what the verifier spent on each program (instructions processed, time), shown with -v and
 * named when a program is refused.
 */
#ifndef LUA_PERF_BPF_LOAD_H
#define LUA_PERF_BPF_LOAD_H

#include <stdbool.h>

struct bpf_object;

/* Whether the running kernel exposes its BTF (/sys/kernel/btf/vmlinux); if not, says so in one
 * error line. A stat, before anything is loaded. */
bool kernel_has_btf(void);

/* Whether the running kernel has what the sampling program needs (BTF, bpf_loop: Linux 5.17);
 * if not, says so in one error line. */
bool kernel_supports_sampling(void);

/* Whether it can unwind threads that are off CPU for `lua-perf dump` (the task iterator:
 * bpf_copy_from_user_task, Linux 5.18, and the kfunc bpf_task_from_pid, 6.2); if not, says so in
 * one warning line. */
bool kernel_supports_off_cpu_dump(void);

/* What a bpf() failure with errno err may mean, for an error line: a lacking kernel, missing
 * privileges, or where to look (-v). */
const char *bpf_failure_hint(int err);

struct verifier_stats;

/* Before obj is loaded: have the kernel report its verifier statistics for each program. NULL
 * when out of memory (the load then goes on without them). */
struct verifier_stats *verifier_stats_collect(struct bpf_object *obj);

/* After the load (rc: its result): with -v, one line per program, "BPF program NAME: N
 * instructions verified in T ms"; when the load failed, the error line naming the program the
 * kernel refused (and with -v its verifier log). Frees vs. Returns whether that error line was
 * said (the caller then says nothing more). */
bool verifier_stats_report(struct verifier_stats *vs, int rc);
/* Free vs without a word (the failure was explained otherwise). */
void verifier_stats_free(struct verifier_stats *vs);

#endif
