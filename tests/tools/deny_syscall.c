/* SPDX-License-Identifier: MIT */
/*
 * deny_syscall - run a command in which one system call fails with a given errno, as on a kernel
 * built without it (tests/failures_test.py: "no BPF", "no perf events").
 *
 *   deny_syscall bpf|perf_event_open ENOSYS|ENOENT|EPERM COMMAND [ARG...]
 *
 * A seccomp filter (Documentation/userspace-api/seccomp_filter.rst) returns the errno for that
 * system call (x86_64 numbers, <sys/syscall.h>) and allows everything else; it stays across
 * exec. Exits 2 on bad usage, 1 when the filter cannot be installed or the command not run.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int syscall_number(const char *name)
{
	if (strcmp(name, "bpf") == 0)
		return SYS_bpf;
	if (strcmp(name, "perf_event_open") == 0)
		return SYS_perf_event_open;
	return -1;
}

static int errno_value(const char *name)
{
	if (strcmp(name, "ENOSYS") == 0)
		return ENOSYS;
	if (strcmp(name, "ENOENT") == 0)
		return ENOENT;
	if (strcmp(name, "EPERM") == 0)
		return EPERM;
	return -1;
}

int main(int argc, char **argv)
{
	int nr = argc > 3 ? syscall_number(argv[1]) : -1;
	int err = argc > 3 ? errno_value(argv[2]) : -1;

	if (nr < 0 || err < 0) {
		fprintf(stderr, "usage: deny_syscall bpf|perf_event_open ENOSYS|ENOENT|EPERM COMMAND [ARG...]\n");
		return 2;
	}
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		perror("deny_syscall: seccomp");
		return 1;
	}
	execvp(argv[3], argv + 3);
	perror("deny_syscall: exec");
	return 1;
}
