/* SPDX-License-Identifier: MIT */
/* lua-perf: mixed C/Lua CPU profiler. main() checks what can be checked before touching BPF:
 * capabilities, that /proc numbers processes as the kernel's BPF helpers do, then that every
 * PID is a live user-space process. */
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/log.h"
#include "lib/strbuf.h"
#include "proc/proc_maps.h"
#include "profiler/session.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38 /* include/uapi/linux/capability.h, Linux 5.8 */
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool has_capability(const struct __user_cap_data_struct data[2], int cap)
{
	return data[cap / 32].effective & (1u << (cap % 32));
}

/* What lua-perf does with each capability it needs (docs/privileges.md: each one was dropped
 * alone on Linux 6.18 to see what fails without it). CAP_SYS_ADMIN stands in for CAP_BPF and
 * CAP_PERFMON (kernel/bpf/syscall.c bpf_capable, include/linux/capability.h perfmon_capable). */
struct needed_capability {
	int cap;
	const char *name;
	const char *use;
	bool admin_covers;
	bool kernel_frames_only; /* not needed with --no-kernel */
};

static const struct needed_capability needed_capabilities[] = {
	{CAP_BPF, "CAP_BPF", "BPF programs and maps", true, false},
	{CAP_PERFMON, "CAP_PERFMON", "perf events, tracing BPF programs", true, false},
	{CAP_SYS_PTRACE, "CAP_SYS_PTRACE", "the targets' memory and files", false, false},
	{CAP_SYSLOG, "CAP_SYSLOG", "kernel symbols; or --no-kernel", false, true},
};

/* One line naming every capability missing, or true. */
static bool has_privileges(const struct session_options *opts)
{
	struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};
	struct strbuf missing = {0};
	size_t count = 0;

	if (syscall(SYS_capget, &header, data) != 0)
		return geteuid() == 0;
	bool admin = has_capability(data, CAP_SYS_ADMIN);
	for (size_t i = 0; i < sizeof(needed_capabilities) / sizeof(needed_capabilities[0]); i++) {
		const struct needed_capability *c = &needed_capabilities[i];

		if (has_capability(data, c->cap) || (c->admin_covers && admin) ||
		    (c->kernel_frames_only && !opts->kernel_stacks))
			continue;
		strbuf_appendf(&missing, "%s%s (%s)", count ? ", " : "", c->name, c->use);
		count++;
	}
	if (count == 0)
		return true;
	char *names = strbuf_take(&missing);
	lp_error("missing capabilit%s: %s; run as root or grant CAP_BPF, CAP_PERFMON, "
		 "CAP_SYS_PTRACE%s", count > 1 ? "ies" : "y", names ? names : "(out of memory)",
		 opts->kernel_stacks ? " and CAP_SYSLOG" : "");
	free(names);
	return false;
}

/* The initial PID namespace's fixed inode number (include/linux/proc_ns.h, PROC_PID_INIT_INO). */
#define PID_NS_INIT_INO 0xEFFFFFFCu

/* BPF identifies sampled tasks by their IDs in the initial PID namespace
 * (bpf_get_current_pid_tgid), lua-perf's -p and /proc by the namespace of the /proc mount - its
 * PID 1's. Inside a container with its own PID namespace the two differ and nothing would ever
 * be sampled. Unknown (no /proc/1/ns/pid access): assume they agree. Says so when they differ. */
static bool proc_in_initial_pid_namespace(void)
{
	struct stat st;

	if (stat("/proc/1/ns/pid", &st) != 0 || st.st_ino == PID_NS_INIT_INO)
		return true;
	lp_error("/proc shows a PID namespace other than the host's (lua-perf runs in a container): "
		 "run it in the host's PID namespace (docker run --pid=host, Kubernetes hostPID: true) "
		 "and give host PIDs");
	return false;
}

static int check_targets(const struct session_options *opts)
{
	for (size_t i = 0; i < opts->pid_count; i++) {
		pid_t pid = opts->pids[i];

		switch (proc_check(pid)) {
		case PROC_USER:
			break;
		case PROC_MISSING:
			lp_error("no such process: PID %d", (int)pid);
			return -1;
		case PROC_KERNEL_THREAD:
			lp_error("PID %d is a kernel thread: only user-space processes can be profiled", (int)pid);
			return -1;
		case PROC_NO_ACCESS:
			lp_error("PID %d: permission denied reading /proc/%d", (int)pid, (int)pid);
			return -1;
		}
		pid_t tgid = proc_tgid(pid);
		if (tgid > 0 && tgid != pid) {
			lp_error("PID %d is a thread of process %d: give the process ID", (int)pid, (int)tgid);
			return -1;
		}
	}
	return 0;
}

static int libbpf_message(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	return lp_library_message(fmt, ap);
}

int main(int argc, char **argv)
{
	struct session_options opts;
	int exit_code = 1;

	switch (cli_parse(argc, argv, &opts)) {
	case CLI_EXIT_OK:
		cli_options_free(&opts);
		return 0;
	case CLI_EXIT_ERROR:
		cli_options_free(&opts);
		return 2;
	case CLI_RUN:
		break;
	}
	libbpf_set_print(libbpf_message);
	if (has_privileges(&opts) && proc_in_initial_pid_namespace() && check_targets(&opts) == 0)
		exit_code = session_run(&opts);
	cli_options_free(&opts);
	return exit_code;
}
