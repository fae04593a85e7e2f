// SPDX-License-Identifier: GPL-2.0
/* placeholder until the unwinder lands */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
SEC("perf_event") int on_sample(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
