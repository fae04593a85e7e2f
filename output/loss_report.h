/* SPDX-License-Identifier: MIT */
/* loss_report.h - every kind of loss is said on stderr when it starts, not only in the final
 * summary: samples the kernel could not keep, stacks without frames, events the ring buffer
 * could not take, stacks beyond the profile's bound. */
#ifndef LUA_PERF_LOSS_REPORT_H
#define LUA_PERF_LOSS_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "bpf/abi/unwind_abi.h"
#include "output/folded_profile.h"

struct loss_report {
	bool said[CNT_COUNT];
	bool overflow_said;
};

/* Warn once for each kind of loss that the counters (summed, enum counter) or the profile show
 * for the first time. */
void loss_report_check(struct loss_report *r, const uint64_t counters[CNT_COUNT],
		       const struct folded_profile *profile);

#endif
