/* SPDX-License-Identifier: MIT */
/* test_off_cpu_frames.c - the reason frame that leads every --off-cpu stack (bpf/abi/unwind_abi.h
 * FRAME_OFF_CPU, named by profiler/frame_names.c): preempted, blocked interruptibly or not, with
 * the system call by name, by number when it has no name, or none. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/abi/unwind_abi.h"
#include "lib/strbuf.h"
#include "profiler/frame_names.h"
#include "tests/unit/support/test_check.h"

static uint64_t reason_frame(uint64_t reason, int syscall)
{
	return (FRAME_OFF_CPU << FRAME_KIND_SHIFT) | (reason << OFF_CPU_REASON_SHIFT) |
	       ((uint64_t)(syscall + 1) & OFF_CPU_SYSCALL_MASK);
}

static void check_name(uint64_t frame, const char *want)
{
	struct frame_namer namer = {0}; /* a reason frame needs nothing of the namer */
	struct strbuf sb = {0};

	frame_name(&namer, 1, frame, &sb);
	char *name = strbuf_take(&sb);
	CHECK(name && strcmp(name, want) == 0, "frame %#llx named '%s', want '%s'",
	      (unsigned long long)frame, name ? name : "(none)", want);
	free(name);
}

int main(void)
{
	/* x86_64 numbers: read 0, wait4 61, epoll_wait 232, clone3 435 (asm/unistd_64.h) */
	check_name(reason_frame(OFF_CPU_PREEMPTED, -1), "[preempted]");
	check_name(reason_frame(OFF_CPU_BLOCKED, 0), "[blocked: read]");
	check_name(reason_frame(OFF_CPU_BLOCKED, 61), "[blocked: wait4]");
	check_name(reason_frame(OFF_CPU_BLOCKED, 232), "[blocked: epoll_wait]");
	check_name(reason_frame(OFF_CPU_UNINTERRUPTIBLE, 435), "[blocked uninterruptible: clone3]");
	check_name(reason_frame(OFF_CPU_BLOCKED, -1), "[blocked]");
	check_name(reason_frame(OFF_CPU_UNINTERRUPTIBLE, -1), "[blocked uninterruptible]");
	check_name(reason_frame(OFF_CPU_BLOCKED, 4000), "[blocked: system call 4000]");
	return check_finish("off_cpu_frames");
}
