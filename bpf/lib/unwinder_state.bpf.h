/* SPDX-License-Identifier: GPL-2.0 */
/*
 * unwinder_state.bpf.h - what every part of the unwinder shares: the maps (the layout contract
 * with userspace is bpf/abi/unwind_abi.h and bpf/abi/lua_abi.h), the per-CPU state of the stack being
 * unwound, and the recording of frames into it.
 *
 * Both BPF objects (sample.bpf.c, thread_dump.bpf.c) define these maps; userspace makes the
 * dump's object reuse the sampling object's maps, all but `scratch`.
 */
#ifndef LUA_PERF_UNWINDER_STATE_BPF_H
#define LUA_PERF_UNWINDER_STATE_BPF_H

#include "lib/kernel_types.h"
#include <bpf/bpf_helpers.h>

#include "abi/lua_abi.h"
#include "abi/unwind_abi.h"

/* Set by userspace before load. */
const volatile bool collect_kernel_stacks = true;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TARGET_PROCS);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TARGET_PROCS);
	__type(key, __u32);
	__type(value, struct proc_mappings);
} proc_mappings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_FILES);
	__type(key, __u32);
	__type(value, struct unwind_file);
} unwind_files SEC(".maps");

/* The three table arrays are mmap()ed by userspace, which writes rows in bulk. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, DEFAULT_MAX_ROWS);
	__type(key, __u32);
	__type(value, struct unwind_row);
} unwind_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, DEFAULT_MAX_PAGES);
	__type(key, __u32);
	__type(value, struct unwind_page);
} unwind_pages SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct unwind_rule);
} unwind_rules SEC(".maps");

/* Lua VMs by file id (bpf/abi/lua_abi.h), written by userspace when it registers a file. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_FILES);
	__type(key, __u32);
	__type(value, struct lua_interp);
} lua_interps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Processes with a mapping refresh already requested: one notification until userspace has
 * reread /proc/PID/maps and deleted the entry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TARGET_PROCS);
	__type(key, __u32);
	__type(value, __u8);
} refresh_pending SEC(".maps");

/* Events for userspace. Wake-ups: a record submitted with flags 0 wakes the reader only if
 * it has consumed every record before it (kernel/bpf/ringbuf.c, bpf_ringbuf_commit), so behind
 * a new-Lua-stack record left without a wake-up (lib/stack_record.bpf.h) it would not: the
 * events userspace must act on at once (forks, execs, unknown mappings, all rare) force it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

/* struct sigcontext_64 (arch/x86/include/uapi/asm/sigcontext.h): r8 ... ip, 17 registers. */
#define SIGCONTEXT_REGS 17

/* Bytes of the user stack the native unwinder copies at a time (lib/stack_window.bpf.h). */
#define STACK_WINDOW 512

/* One native lookup remembered across samples (lib/frame_rules.bpf.h, remembered_lookup): a pc,
 * the process mapping that held it, and the rule in effect there. */
struct lookup_memo {
	__u64 pc;
	__u64 bias;
	__u32 file_id;
	__u32 map_index;
	__u32 rule_id;
	__u32 pad;
};

#define LOOKUP_MEMO_BITS 8
#define LOOKUP_MEMO_SLOTS (1u << LOOKUP_MEMO_BITS)

/* A LuaJIT walk of one lua_State's frames (walk/luajit_walk.bpf.h). */
struct luajit_walk_state {
	__u64 L;
	__u64 bot;         /* lj_debug_frame: frames above stack + LJ_FR2 slots are real */
	__u64 frame;       /* the link slot of the frame under examination */
	__u64 pending_pc;  /* a PC inside the frame under examination (its current instruction + 1),
			    * from the frame above it or the interpreter's PC register; 0: unknown */
	__u64 trace_pc;    /* for a JIT top frame: the trace's first instruction; 0: none */
	__u32 file_id;
	__u32 jit_top;     /* the frame under examination is the one running the trace */
	__u32 pushed_any;
	__u32 done;        /* this lua_State has no frames left */
};

/* Per-CPU working state of one unwind: too large for the 512-byte BPF stack. The parts of the
 * unwinder (the native loop, the Lua walkers, which the verifier checks separately) pass nothing
 * else to each other. */
struct unwinder_state {
	__u64 regs[DW_REG_COUNT]; /* indexed by DWARF register number */
	__u32 valid;              /* bit n: regs[n] is known */
	__u32 exact_pc;           /* regs[DW_RIP] is the interrupted pc, not a return address */
	__u32 end_reason;
	__u32 tgid;
	__u64 hash;
	__u64 proto_hash;         /* of the Lua frames' Protos only (not their bytecode positions) */
	__u64 lua_L;              /* the lua_State of the last Lua activation walked */
	__u64 lua_ci;             /* where its next activation starts (0: none left) */
	__u64 lua_top_ci;         /* its L->ci (5.1: the CallInfo whose pc is L->savedpc) */
	__u32 lua_frames;         /* Lua frames pushed in this sample */
	__u32 generation;         /* of the maps this sample is recorded in (generations.bpf.h) */
	__u32 lua_end;            /* set by a Lua walker: the stack ends at the interpreter frame
				   * being unwound, with this enum unwind_end; 0 none */
	__u32 pad;
	__u64 kernel_ips[MAX_KERNEL_FRAMES];
	__u64 sigcontext[SIGCONTEXT_REGS]; /* a signal frame's saved registers, as read */
	/* Map keys and values built per sample: here, not on the BPF stack, which is full (see
	 * on_sample in bpf/sample.bpf.c) */
	struct sample_key key;    /* the sample's counter */
	__u64 amount;             /* added to it: 1 sample, or nanoseconds off CPU */
	__u64 announced_key;      /* announced_sets (lib/stack_record.bpf.h) */
	__u64 announced_value;
	struct stack_trace trace;
	/* The PUC walker's last lookups in this sample (walk/lua_puc_walk.bpf.h): a recursion or a
	 * loop of calls repeats them frame after frame. Reset by begin_stack. */
	__u64 memo_closure;       /* a Lua closure, 0: none */
	__u64 memo_proto;         /* its Proto */
	__u64 memo_code_proto;    /* a Proto, 0: none */
	__u64 memo_code;          /* its code */
	__u64 tvalue[2];          /* a Lua stack slot as read: the value, then the tag */
	struct luajit_walk_state luajit;
	__u64 window_start;       /* user address of window[0] (lib/stack_window.bpf.h) */
	__u32 window_len;         /* bytes of window copied; 0: none (begin_stack) */
	__u32 window_pad;
	__u8 window[STACK_WINDOW];
	/* Not reset by begin_stack: valid across samples and processes (remembered_lookup). */
	struct lookup_memo lookups[LOOKUP_MEMO_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unwinder_state);
} scratch SEC(".maps");

static __always_inline struct unwinder_state *unwinder_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

/* Hide a value's known range from clang so that the bounds check the verifier needs is kept. */
#define opaque(var) asm volatile("" : "+r"(var))

#define REG_BIT(r) (1u << (r))

static __always_inline void count_add(__u32 which, __u64 amount)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &which);

	if (value)
		*value += amount;
}

static __always_inline void count(__u32 which)
{
	count_add(which, 1);
}

static __always_inline void push_frame(struct unwinder_state *st, __u64 frame)
{
	__u32 len = st->trace.len;

	if (len >= MAX_STACK_FRAMES)
		return;
	st->trace.frames[len & (MAX_STACK_FRAMES - 1)] = frame;
	st->trace.len = len + 1;
	st->hash = (st->hash ^ frame) * 0x9e3779b97f4a7c15ull;
	st->hash ^= st->hash >> 29;
}

/* A Lua frame: also into the hash of the stack's Protos, which tells whether the stack has
 * Protos userspace was not told of (lib/stack_record.bpf.h): a new bytecode position is a new
 * stack but names no new function. */
static __always_inline void push_lua_frame(struct unwinder_state *st, __u64 frame)
{
	push_frame(st, frame);
	st->proto_hash = (st->proto_hash ^ (frame & LUA_PROTO_MASK)) * 0x9e3779b97f4a7c15ull;
}

static __always_inline __u64 native_frame(__u32 file_id, __u64 vaddr, bool retaddr)
{
	return (FRAME_NATIVE << FRAME_KIND_SHIFT) | (retaddr ? FRAME_RETADDR : 0) |
	       (((__u64)file_id & FRAME_FILE_MASK) << FRAME_FILE_SHIFT) | (vaddr & FRAME_ADDR_MASK);
}

static __always_inline __u64 anon_frame(__u64 pc, bool retaddr)
{
	return (FRAME_ANON << FRAME_KIND_SHIFT) | (retaddr ? FRAME_RETADDR : 0) | (pc & FRAME_ANON_MASK);
}

static __always_inline __u64 lua_frame_of_kind(__u64 kind, __u64 proto, __u64 pc_index)
{
	if (pc_index > LUA_PC_UNKNOWN)
		pc_index = LUA_PC_UNKNOWN;
	return (kind << FRAME_KIND_SHIFT) | (pc_index << LUA_PC_SHIFT) | ((proto >> 3) & LUA_PROTO_MASK);
}

static __always_inline __u64 lua_frame(__u64 proto, __u64 pc_index)
{
	return lua_frame_of_kind(FRAME_LUA, proto, pc_index);
}

#endif
