/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kernel_types.h - the few kernel types and constants the BPF programs use, instead of a
 * vmlinux.h dumped from the build machine's kernel: the BPF objects are then the same from any
 * build host, and run on every kernel lua-perf supports.
 *
 * Kernel structures whose layout changes between versions (task_struct, pt_regs) carry
 * preserve_access_index: clang records each field access as a CO-RE relocation, and libbpf
 * rewrites the offset against the running kernel's BTF at load time. Only the fields read are
 * declared. The UAPI values (map types, flags) and context layouts are kernel ABI: fixed.
 */
#ifndef LUA_PERF_KERNEL_TYPES_H
#define LUA_PERF_KERNEL_TYPES_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

/* include/uapi/linux/bpf.h */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

/* bpf_ringbuf_submit flags (include/uapi/linux/bpf.h) */
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};

enum {
	BPF_F_MMAPABLE = 1U << 10,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct mm_struct;

/* arch/x86/include/asm/ptrace.h: the registers saved at kernel entry. */
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
};

/* include/linux/sched.h: __state is `state` before Linux 5.14, older than lua-perf supports. */
struct task_struct {
	unsigned int __state;
	int on_cpu;
	struct mm_struct *mm;
	int pid;
	int tgid;
	unsigned long nvcsw;
	unsigned long nivcsw;
	char comm[16];
};

#pragma clang attribute pop

/* include/uapi/linux/bpf_perf_event.h: the perf_event program context (x86: the user-visible
 * pt_regs layout is the kernel's); accessed by offset, rewritten by the verifier. */
struct bpf_perf_event_data {
	struct pt_regs regs;
	__u64 sample_period;
	__u64 addr;
};

/* kernel/bpf/task_iter.c: the context of a task iterator program. */
struct bpf_iter_meta;
struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

#endif
