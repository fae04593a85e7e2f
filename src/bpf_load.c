/* SPDX-License-Identifier: MIT */
#include "src/bpf_load.h"

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

#include "src/log.h"

/* libbpf relocates the programs against the kernel's own BTF: without it the load fails with a
 * misleading errno (ESRCH), so say it first. */
#define KERNEL_BTF "/sys/kernel/btf/vmlinux"

static bool has_kernel_btf(void)
{
	struct stat st;

	if (stat(KERNEL_BTF, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		return true;
	lp_error("this kernel exposes no BTF (%s): lua-perf needs a kernel built with "
		 "CONFIG_DEBUG_INFO_BTF", KERNEL_BTF);
	return false;
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
	const char *name;    /* as the message says it */
	const char *since;   /* the first Linux version with it */
	const char *needed_for;
};

static const struct kernel_feature profile_features[] = {
	{"BPF_FUNC_loop", NULL, "bpf_loop", "5.17", "lua-perf"},
};

static const struct kernel_feature dump_features[] = {
	{"BPF_FUNC_loop", NULL, "bpf_loop", "5.17", "lua-perf"},
	{"BPF_FUNC_copy_from_user_task", NULL, "bpf_copy_from_user_task", "5.18", "lua-perf dump"},
	{NULL, "bpf_task_from_pid", "the kfunc bpf_task_from_pid", "6.2", "lua-perf dump"},
};

static bool has_feature(const struct btf *btf, const struct kernel_feature *f)
{
	if (f->helper)
		return btf_has_enum_value(btf, "bpf_func_id", f->helper);
	return btf__find_by_name_kind(btf, f->kfunc, BTF_KIND_FUNC) > 0;
}

bool kernel_supports(enum kernel_need need)
{
	const struct kernel_feature *features = need == NEED_DUMP ? dump_features : profile_features;
	size_t count = need == NEED_DUMP ? sizeof(dump_features) / sizeof(dump_features[0])
					 : sizeof(profile_features) / sizeof(profile_features[0]);

	if (!has_kernel_btf())
		return false;
	struct btf *btf = btf__load_vmlinux_btf();
	if (!btf) {
		lp_error("cannot read the kernel's BTF (%s): %s", KERNEL_BTF, strerror(errno));
		return false;
	}
	bool ok = true;
	for (size_t i = 0; i < count && ok; i++) {
		if (has_feature(btf, &features[i]))
			continue;
		struct utsname un;
		const char *release = uname(&un) == 0 ? un.release : "(unknown)";
		lp_error("this kernel (Linux %s) is too old: %s needs %s (Linux %s or later)", release,
			 features[i].needed_for, features[i].name, features[i].since);
		ok = false;
	}
	btf__free(btf);
	return ok;
}

/* Room for the verifier's statistics and any error it reports (log level BPF_LOG_STATS prints no
 * instruction trace). Before Linux 6.4 a log that does not fit fails the load (ENOSPC). */
#define VERIFIER_LOG_SIZE (64 * 1024)
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

static void report_program(struct bpf_program *prog, const char *log, bool refused)
{
	uint64_t insns = 0, usec = 0;
	bool have_insns = verified_insns(prog, log, &insns);
	bool have_time = log_number(log, "verification time ", &usec);
	const char *name = bpf_program__name(prog);

	if (refused && have_insns)
		lp_error("the kernel's verifier refused BPF program %s after %" PRIu64 " instructions",
			 name, insns);
	else if (refused)
		lp_error("the kernel refused BPF program %s", name);
	else if (have_insns && have_time)
		lp_debug("BPF program %s: %" PRIu64 " instructions verified in %.1f ms", name, insns,
			 (double)usec / 1000.0);
	else if (have_insns)
		lp_debug("BPF program %s: %" PRIu64 " instructions verified", name, insns);
}

/* libbpf loads the programs in order and stops at the first the kernel refuses: the last one
 * with a log. */
static size_t refused_program(const struct verifier_stats *vs)
{
	size_t last = vs->count;

	for (size_t i = 0; i < vs->count; i++)
		if (vs->logs[i] && vs->logs[i][0])
			last = i;
	return last;
}

void verifier_stats_report(struct verifier_stats *vs, int rc)
{
	struct bpf_program *prog;
	size_t i = 0, refused;

	if (!vs)
		return;
	refused = rc != 0 ? refused_program(vs) : vs->count;
	bpf_object__for_each_program(prog, vs->obj) {
		if (i >= vs->count)
			break;
		report_program(prog, vs->logs[i], i == refused);
		if (i == refused && vs->logs[i])
			lp_debug("verifier log of BPF program %s:\n%s", bpf_program__name(prog),
				 vs->logs[i]);
		free(vs->logs[i]);
		i++;
	}
	free(vs->logs);
	free(vs);
}
