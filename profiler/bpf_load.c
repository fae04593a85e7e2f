/* SPDX-License-Identifier: MIT */
#include "profiler/bpf_load.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "lib/log.h"

/* libbpf relocates the programs against the kernel's own BTF: without it the load fails with a
 * misleading errno (ESRCH), so say it first. */
#define KERNEL_BTF "/sys/kernel/btf/vmlinux"

bool kernel_has_btf(void)
{
	struct stat st;

	if (stat(KERNEL_BTF, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		return true;
	lp_error("this kernel exposes no BTF (%s): lua-perf needs a kernel built with "
		 "CONFIG_DEBUG_INFO_BTF", KERNEL_BTF);
	return false;
}

const char *bpf_failure_hint(int err)
{
	switch (err) {
	case ENOSYS:
		return "this kernel has no BPF system call: CONFIG_BPF_SYSCALL";
	case EPERM:
	case EACCES:
		return "needs CAP_BPF and CAP_PERFMON; a kernel lockdown or an LSM may also forbid BPF";
	default:
		return "-v shows libbpf's and the kernel's messages";
	}
}

/* Whether enum `enum_name` of the kernel's BTF has a value named `value`. */
static bool btf_has_enum_value(const struct btf *btf, const char *enum_name, const char *value)
{
	__s32 id = btf__find_by_name_kind(btf, enum_name, BTF_KIND_ENUM);
	const struct btf_type *t = id > 0 ? btf__type_by_id(btf, (__u32)id) : NULL;

	if (!t)
		return false;
	const struct btf_enum *e = btf_enum(t);
	for (__u16 i = 0; i < btf_vlen(t); i++) {
		const char *name = btf__name_by_offset(btf, e[i].name_off);
		if (name && strcmp(name, value) == 0)
			return true;
	}
	return false;
}

/* A feature, as the kernel's BTF shows it: a BPF helper (a value of enum bpf_func_id) or a
 * kfunc (a function of its own). */
struct kernel_feature {
	const char *helper;  /* BPF_FUNC_... */
	const char *kfunc;
	const char *name;    /* as messages say it */
	const char *since;   /* the first Linux version with it */
};

static const struct kernel_feature sampling_features[] = {
	{"BPF_FUNC_loop", NULL, "bpf_loop", "5.17"},
};

static const struct kernel_feature off_cpu_features[] = {
	{"BPF_FUNC_copy_from_user_task", NULL, "bpf_copy_from_user_task", "5.18"},
	{NULL, "bpf_task_from_pid", "the kfunc bpf_task_from_pid", "6.2"},
};

#define FEATURE_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool has_feature(const struct btf *btf, const struct kernel_feature *f)
{
	if (f->helper)
		return btf_has_enum_value(btf, "bpf_func_id", f->helper);
	return btf__find_by_name_kind(btf, f->kfunc, BTF_KIND_FUNC) > 0;
}

static const char *kernel_release(struct utsname *un)
{
	return uname(un) == 0 ? un->release : "(unknown)";
}

/* The first of count features the kernel lacks, or NULL; *btf_error when its BTF cannot be read
 * (said in an error line). */
static const struct kernel_feature *missing_feature(const struct kernel_feature *features,
						    size_t count, bool *btf_error)
{
	const struct kernel_feature *missing = NULL;
	struct btf *btf = btf__load_vmlinux_btf();

	*btf_error = btf == NULL;
	if (!btf) {
		lp_error("cannot read the kernel's BTF (%s): %s", KERNEL_BTF, strerror(errno));
		return NULL;
	}
	for (size_t i = 0; i < count && !missing; i++)
		if (!has_feature(btf, &features[i]))
			missing = &features[i];
	btf__free(btf);
	return missing;
}

bool kernel_supports_sampling(void)
{
	struct utsname un;
	bool btf_error;

	if (!kernel_has_btf())
		return false;
	const struct kernel_feature *missing =
		missing_feature(sampling_features, FEATURE_COUNT(sampling_features), &btf_error);
	if (missing)
		lp_error("this kernel (Linux %s) is too old: lua-perf needs %s (Linux %s or later)",
			 kernel_release(&un), missing->name, missing->since);
	return !missing && !btf_error;
}

bool kernel_supports_off_cpu_dump(void)
{
	struct utsname un;
	bool btf_error;
	const struct kernel_feature *missing =
		missing_feature(off_cpu_features, FEATURE_COUNT(off_cpu_features), &btf_error);

	if (missing)
		lp_warn("this kernel (Linux %s) cannot unwind threads that are off CPU: that needs %s "
			"(Linux %s or later); only threads that run during the dump get a stack",
			kernel_release(&un), missing->name, missing->since);
	return !missing && !btf_error;
}

/* Room for the verifier's statistics and any error it reports (log level BPF_LOG_STATS prints no
 * instruction trace). A log that does not fit fails the load (ENOSPC): before Linux 6.4 always,
 * and on 6.18 a program of 157,274 processed instructions failed with 64 KiB although its final
 * log was 200 bytes (what the verifier counts towards the log's size then is not known). The
 * buffer is only touched as far as the kernel writes it. */
#define VERIFIER_LOG_SIZE (1024 * 1024)
#define BPF_LOG_STATS 4

struct verifier_stats {
	struct bpf_object *obj;
	size_t count;
	char **logs; /* per program, in bpf_object__for_each_program order */
};

static size_t program_count(struct bpf_object *obj)
{
	struct bpf_program *prog;
	size_t n = 0;

	bpf_object__for_each_program(prog, obj)
		n++;
	return n;
}

struct verifier_stats *verifier_stats_collect(struct bpf_object *obj)
{
	struct verifier_stats *vs = calloc(1, sizeof(*vs));
	struct bpf_program *prog;
	size_t i = 0;

	if (!vs)
		return NULL;
	vs->obj = obj;
	vs->count = program_count(obj);
	vs->logs = calloc(vs->count ? vs->count : 1, sizeof(*vs->logs));
	if (!vs->logs) {
		free(vs);
		return NULL;
	}
	bpf_object__for_each_program(prog, obj) {
		char *log = calloc(1, VERIFIER_LOG_SIZE);

		if (!log || bpf_program__set_log_buf(prog, log, VERIFIER_LOG_SIZE) != 0 ||
		    bpf_program__set_log_level(prog, BPF_LOG_STATS) != 0) {
			free(log);
			lp_debug("cannot collect the verifier's statistics of BPF program %s",
				 bpf_program__name(prog));
			log = NULL;
		}
		vs->logs[i++] = log;
	}
	return vs;
}

/* The number after `key` in the verifier's log, e.g. "processed 1234 insns". */
static bool log_number(const char *log, const char *key, uint64_t *value)
{
	const char *at = log ? strstr(log, key) : NULL;

	if (!at)
		return false;
	return sscanf(at + strlen(key), "%" SCNu64, value) == 1;
}

/* The instructions the verifier processed: bpf_prog_info.verified_insns (Linux 5.16), else the
 * log's count. */
static bool verified_insns(struct bpf_program *prog, const char *log, uint64_t *insns)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd = bpf_program__fd(prog);

	memset(&info, 0, sizeof(info));
	if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.verified_insns) {
		*insns = info.verified_insns;
		return true;
	}
	return log_number(log, "processed ", insns);
}

static void report_loaded(struct bpf_program *prog, const char *log)
{
	uint64_t insns = 0, usec = 0;
	bool have_insns = verified_insns(prog, log, &insns);
	bool have_time = log_number(log, "verification time ", &usec);
	const char *name = bpf_program__name(prog);

	if (have_insns && have_time)
		lp_debug("BPF program %s: %" PRIu64 " instructions verified in %.1f ms", name, insns,
			 (double)usec / 1000.0);
	else if (have_insns)
		lp_debug("BPF program %s: %" PRIu64 " instructions verified", name, insns);
}

static void report_refused(struct bpf_program *prog, const char *log, int rc)
{
	uint64_t insns = 0;
	const char *name = bpf_program__name(prog);

	if (log_number(log, "processed ", &insns))
		lp_error("cannot load the BPF program %s: %s (the kernel's verifier refused it after "
			 "%" PRIu64 " instructions)", name, strerror(-rc), insns);
	else
		lp_error("cannot load the BPF program %s: %s (refused by the kernel)", name,
			 strerror(-rc));
	if (log && log[0])
		lp_debug("verifier log of BPF program %s:\n%s", name, log);
}

/* libbpf loads the programs in order and stops at the first the kernel refuses: the last one
 * with a log, if it has the verifier's count (else the failure was not the verifier's). */
static size_t refused_program(const struct verifier_stats *vs)
{
	size_t last = vs->count;

	for (size_t i = 0; i < vs->count; i++)
		if (vs->logs[i] && vs->logs[i][0])
			last = i;
	if (last < vs->count && !strstr(vs->logs[last], "processed "))
		return vs->count;
	return last;
}

void verifier_stats_free(struct verifier_stats *vs)
{
	if (!vs)
		return;
	for (size_t i = 0; i < vs->count; i++)
		free(vs->logs[i]);
	free(vs->logs);
	free(vs);
}

bool verifier_stats_report(struct verifier_stats *vs, int rc)
{
	struct bpf_program *prog;
	size_t i = 0, refused;

	if (!vs)
		return false;
	refused = rc != 0 ? refused_program(vs) : vs->count;
	bpf_object__for_each_program(prog, vs->obj) {
		if (i >= vs->count)
			break;
		if (i == refused)
			report_refused(prog, vs->logs[i], rc);
		else if (rc == 0)
			report_loaded(prog, vs->logs[i]);
		i++;
	}
	verifier_stats_free(vs);
	return refused < i;
}
