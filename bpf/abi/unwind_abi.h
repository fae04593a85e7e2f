/* SPDX-License-Identifier: MIT */
/*
 * unwind_abi.h - the contract between the BPF programs (bpf/) and userspace (unwind/, profiler/,
 * output/).
 *
 * Everything here is shared verbatim by both sides: map value layouts, the compact unwind
 * table row format, the rule format, the encoding of a frame in a recorded stack, and the
 * reasons an unwind ends. docs/unwind-table-format.md explains the format in prose.
 *
 * Only fixed-width types: this header is included by clang -target bpf (with lib/kernel_types.h)
 * and by the C17 userspace (with <linux/types.h>).
 */
#ifndef LUA_PERF_UNWIND_ABI_H
#define LUA_PERF_UNWIND_ABI_H

#ifdef __bpf__
#include "lib/kernel_types.h"
#else
#include <linux/types.h>
#endif

/* ---- sizes (bounded memory; userspace may lower the table sizes with bpf_map__set_max_entries) */
#define MAX_STACK_FRAMES 256     /* frames recorded per stack (native + Lua, later) */
#define MAX_NATIVE_FRAMES 192    /* native frames unwound per sample (bpf_loop iterations) */
#define MAX_PROC_MAPPINGS 512    /* executable mappings tracked per process */
#define MAX_FILES 4096           /* distinct files (by build-id/content hash) with tables */
#define MAX_TARGET_PROCS 1024    /* processes profiled at once */
#define DEFAULT_MAX_ROWS (1u << 21)  /* unwind rows over all files: 2 Mi rows, 16 MiB (nginx + libs: 171 Ki) */
#define DEFAULT_MAX_PAGES (1u << 18) /* page index entries over all files */
#define MAX_RULES (1u << 16)     /* distinct (deduplicated) unwind rules over all files */
#define MAX_STACKS 8192          /* distinct stacks kept in the kernel per generation */
#define MAX_SAMPLE_KEYS 16384    /* distinct (thread, stack, end) counters per generation */
#define MAX_KERNEL_FRAMES 64     /* kernel frames recorded per sample (bpf_get_stack) */
#define MAX_DUMP_THREADS 4096    /* threads one `lua-perf dump` reports */
#define MAX_ANNOUNCED_STACKS 16384 /* Lua stacks userspace was told of (LRU, all generations) */
/* New Lua stacks wake userspace at once for the first LUA_WAKEUPS_AT_ONCE of a second, then at
 * most once per interval; it polls the ring at that interval while they come
 * (bpf/lib/stack_record.bpf.h, profiler/session_sampling.c). */
#define LUA_WAKEUPS_AT_ONCE 64
#define LUA_WAKEUP_INTERVAL_MS 25
#define LUA_WAKEUP_INTERVAL_NS (LUA_WAKEUP_INTERVAL_MS * 1000000ull)

/* Page index granularity: one entry per 4 KiB of a file's covered text (see lookup below). */
#define UNWIND_PAGE_SHIFT 12
/* Bounded binary search steps: 2^16 rows in one page is far beyond anything compilers emit. */
#define UNWIND_SEARCH_STEPS 16
/* Binary search over a process's sorted mappings: 2^10 > MAX_PROC_MAPPINGS. */
#define MAPPING_SEARCH_STEPS 10

/*
 * ---- Unwind table: one row per change of unwind rule inside a file.
 *
 * A file's rows are sorted by pc_off and stored contiguously in the global `unwind_rows`
 * array at [file.row_start, file.row_start + file.row_count). pc_off is relative to
 * file.text_start (an ELF virtual address). The row in effect for a pc is the last row
 * with pc_off <= pc - text_start. 8 bytes per row: the rule itself lives once in the
 * global `unwind_rules` array (compilers reuse a few hundred distinct rules per binary).
 * Rule id 0 is UNWIND_RULE_GAP: a pc there has no unwind information (a gap between FDEs,
 * or past the end of the last FDE): the unwinder stops with END_NO_ROW, never guesses.
 */
struct unwind_row {
	__u32 pc_off;
	__u32 rule_id;
};

#define UNWIND_RULE_GAP 0u

/* How the Canonical Frame Address (the caller's rsp) is computed. */
enum cfa_type {
	CFA_GAP = 0,          /* no unwind info: stop (END_NO_ROW) */
	CFA_REG_OFF = 1,      /* cfa = reg[cfa_reg] + cfa_off */
	CFA_DEREF_REG_OFF = 2,/* cfa = *(u64 *)(reg[cfa_reg] + cfa_off): realigned stacks
			       * (gcc: DW_CFA_def_cfa_expression DW_OP_breg6 -8; DW_OP_deref) */
	CFA_PLT = 3,          /* cfa = rsp + cfa_off + ((rip & 15) >= cfa_reg ? 8 : 0): the standard
			       * x86_64 PLT expression (binutils elf_x86_64_eh_frame_plt), cfa_reg
			       * holds the threshold (11 for lazy PLT0-style entries, 10 for others) */
	CFA_SIGNAL = 4,       /* signal trampoline (FDE augmentation 'S', __restore_rt): all
			       * registers come from the kernel's struct rt_sigframe at rsp */
	CFA_UNSUPPORTED = 5,  /* a DWARF expression or register rule we do not evaluate */
};

/* Indices into unwind_rule.reg_off: callee-saved registers and the return address. */
enum saved_reg {
	SREG_RBP = 0,
	SREG_RBX = 1,
	SREG_R12 = 2,
	SREG_R13 = 3,
	SREG_R14 = 4,
	SREG_R15 = 5,
	SREG_RA = 6,
	SREG_COUNT = 7,
};

/* reg_off values: 0 = register unchanged in the caller ("same value", also the default for
 * callee-saved registers with no rule); REG_UNDEFINED = value unknown in the caller (for the
 * return address: the outermost frame, the stack ends cleanly); anything else = the caller's
 * value is saved at memory address cfa + reg_off.
 * When bit i of rbp_based is set, register i is instead saved at this frame's rbp + reg_off (any
 * value, 0 included): gcc's stack-realigning prologues describe their saves that way
 * (DW_CFA_expression: DW_OP_breg6 N), since the CFA is then *(rbp - 8), not rbp + constant. */
#define REG_SAME 0
#define REG_UNDEFINED (-32768)

struct unwind_rule {
	__u8 cfa_type;  /* enum cfa_type */
	__u8 cfa_reg;   /* DWARF register number (x86_64: 6 rbp, 7 rsp, 10 r10...) or PLT threshold */
	__u8 rbp_based; /* bit i: reg_off[i] is relative to this frame's rbp, not to the CFA */
	__u8 saved_regs;/* bit i (i < SREG_RA): register i is not "same value" in the caller (saved
			 * or undefined); set by the table store, 0 in compiled tables. The unwinder
			 * looks at no other slot. */
	__s32 cfa_off;
	__s16 reg_off[SREG_COUNT];
	__u16 pad2;
};

/* DWARF register numbers, x86_64 psABI figure 3.36. */
enum dwarf_reg {
	DW_RAX = 0, DW_RDX = 1, DW_RCX = 2, DW_RBX = 3, DW_RSI = 4, DW_RDI = 5, DW_RBP = 6, DW_RSP = 7,
	DW_R8 = 8, DW_R9 = 9, DW_R10 = 10, DW_R11 = 11, DW_R12 = 12, DW_R13 = 13, DW_R14 = 14,
	DW_R15 = 15, DW_RIP = 16, DW_REG_COUNT = 17,
};

/* Page index entry: the rows to search for a pc in one 4 KiB page of a file's text are
 * [first, last] (indices relative to the file's row_start): `first` is the row in effect at the
 * start of the page, `last` the one in effect at its end. A lookup binary-searches only those:
 * bounded, never a linear scan. (8 bytes: BPF array elements are rounded up to 8 anyway.) */
struct unwind_page {
	__u32 first;
	__u32 last;
};

/* Per file (global `unwind_files` array, index = file id, shared by every process mapping the
 * file). Page p of the file is unwind_pages[page_start + p], covering
 * [text_start + (p << UNWIND_PAGE_SHIFT), text_start + ((p + 1) << UNWIND_PAGE_SHIFT)). */
struct unwind_file {
	__u64 text_start;
	__u64 text_end;     /* pcs in [text_start, text_end) are covered by rows */
	__u32 row_start;
	__u32 row_count;
	__u32 page_start;
	__u32 page_count;
	__u32 flags;        /* FILE_* */
	__u32 pad;
};

#define FILE_LOADED 1u   /* rows and page index are valid */

/* ---- Process mappings (hash `proc_mappings`, key = tgid): executable mappings sorted by start.
 * An ELF vaddr is pc - bias. */
struct exec_mapping {
	__u64 start;
	__u64 end;
	__u64 bias;
	__u32 file_id;      /* index into unwind_files; meaningful when kind == MAPPING_FILE */
	__u32 kind;         /* enum mapping_kind */
};

enum mapping_kind {
	MAPPING_FILE = 0,       /* file-backed (or the vdso), file_id names its table */
	MAPPING_ANON = 1,       /* executable anonymous memory (JIT code): no unwind info */
	MAPPING_NO_TABLE = 2,   /* a file userspace could not build a table for */
};

struct proc_mappings {
	__u32 count;
	__u32 generation;   /* bumped by userspace on every refresh */
	__u32 luajit_file;  /* file id + 1 of the LuaJIT VM this process maps, 0: none (for samples
			     * in JIT-compiled code, which is anonymous memory) */
	__u32 pad;
	struct exec_mapping maps[MAX_PROC_MAPPINGS];
};

/* ---- Recorded frames: one u64 each, process independent so that stacks from many workers of
 * the same binary aggregate and symbolize after the process has exited.
 *   bits 63..60 kind, bit 59 FRAME_RETADDR (the pc is a return address: symbolize pc - 1),
 *   FRAME_NATIVE: bits 58..44 file id, bits 43..0 ELF vaddr within that file;
 *   FRAME_ANON:   bits 47..0 the absolute address (no mapping or no file);
 *   FRAME_KERNEL: bits 59..0 the low bits of a kernel address (the top 4 bits are all ones). */
#define FRAME_KIND_SHIFT 60
#define FRAME_NATIVE 1ull
#define FRAME_ANON 2ull
#define FRAME_KERNEL 3ull
#define FRAME_KERNEL_MASK ((1ull << 60) - 1)
#define FRAME_RETADDR (1ull << 59)
#define FRAME_FILE_SHIFT 44
#define FRAME_FILE_MASK 0x7fffull
#define FRAME_ADDR_MASK ((1ull << 44) - 1)
#define FRAME_ANON_MASK ((1ull << 48) - 1)
/* FRAME_OFF_CPU (lua-perf --off-cpu): the leaf of every off-CPU stack, why the thread left the
 * CPU: bits 17..16 enum off_cpu_reason, bits 15..0 its system call (x86_64 number) + 1, 0 none. */
#define FRAME_OFF_CPU 7ull
#define OFF_CPU_REASON_SHIFT 16
#define OFF_CPU_SYSCALL_MASK 0xffffull

enum off_cpu_reason {
	OFF_CPU_PREEMPTED = 0,        /* runnable, its CPU given to another task */
	OFF_CPU_BLOCKED = 1,          /* asleep, interruptible (TASK_INTERRUPTIBLE) */
	OFF_CPU_UNINTERRUPTIBLE = 2,  /* asleep, uninterruptible (TASK_UNINTERRUPTIBLE: disk, locks) */
};

struct stack_trace {
	__u32 len;
	__u32 pad;
	__u64 frames[MAX_STACK_FRAMES];  /* frames[0] is the leaf: kernel frames, then user frames */
};

/* Why an unwind ended, and its name in the summary. END_COMPLETE is the only clean end
 * (outermost frame reached). X(enumerator, value, name): the one list of both. */
#define UNWIND_END_REASONS(X)                                                                     \
	/* return address undefined: _start, clone3, thread start */                              \
	X(END_COMPLETE, 0, "complete")                                                            \
	/* pc outside every executable mapping known for the process */                           \
	X(END_NO_MAPPING, 1, "pc outside known mappings")                                         \
	/* pc in a mapping whose file has no table (yet, or could not build) */                   \
	X(END_NO_TABLE, 2, "file without unwind table")                                           \
	/* pc in a gap between FDEs or outside the covered text */                                \
	X(END_NO_ROW, 3, "pc without unwind row (gap between FDEs)")                              \
	/* a CFA or register rule the unwinder does not evaluate */                               \
	X(END_UNSUPPORTED, 4, "unsupported CFA rule")                                             \
	/* the CFA needs a register whose value is not recoverable */                             \
	X(END_REG_UNKNOWN, 5, "CFA register unknown")                                             \
	/* reading the user stack failed (paged out, bad address) */                              \
	X(END_READ_FAILED, 6, "stack read failed")                                                \
	/* MAX_NATIVE_FRAMES / MAX_STACK_FRAMES / MAX_LUA_FRAMES_PER_ACTIVATION reached */                                        \
	X(END_DEPTH, 7, "depth limit")                                                            \
	/* return address 0 or the stack pointer did not move up */                               \
	X(END_BAD_FRAME, 8, "bad frame (return address 0 or stack not growing)")                  \
	/* pc in anonymous executable memory (JIT code, no unwind info) */                        \
	X(END_ANON_CODE, 9, "anonymous executable memory")                                        \
	/* no user registers (kernel thread) */                                                   \
	X(END_NO_USER_REGS, 10, "no user registers")                                              \
	/* the process has no mappings loaded yet */                                              \
	X(END_PROC_UNKNOWN, 11, "process mappings not loaded yet")                                \
	/* a Lua VM's frames could not be read, or contradict its own links (a corrupt or \
	 * hostile lua_State): the stack ends at the interpreter frame that runs them */          \
	X(END_LUA_BROKEN, 12, "Lua frames unreadable or inconsistent")

#define UNWIND_END_ENUMERATOR(name, value, text) name = value,
enum unwind_end {
	UNWIND_END_REASONS(UNWIND_END_ENUMERATOR)
	END_REASON_COUNT, /* one past the last reason */
};
#undef UNWIND_END_ENUMERATOR

#ifndef __bpf__
/* Userspace only: unwind_end_names[reason] is the reason's name in the summary. */
#define UNWIND_END_NAME(name, value, text) [name] = text,
static const char *const unwind_end_names[END_REASON_COUNT] = {
	UNWIND_END_REASONS(UNWIND_END_NAME)
};
#undef UNWIND_END_NAME
#endif

/* ---- Aggregation in the kernel: hashes `sample_counts_N` (one per generation), key -> u64
 * count. */
struct sample_key {
	__u32 tgid;
	__u32 tid;              /* the thread: the pprof output's `thread` label */
	__u64 stack_id;         /* 64-bit hash of the frames, key into the same generation's
				 * stacks map (bpf/lib/generations.bpf.h); 0 = no frames */
	__u32 end_reason;       /* enum unwind_end: how the user part of the stack ended */
	__u32 pad;              /* 0: a hash key is compared byte by byte */
};

/* ---- lua-perf dump: hash `thread_stacks`, thread ID -> the first stack taken of that thread,
 * either by the sampling program while it ran on a CPU or by the task iterator while it was off
 * CPU (bpf/thread_dump.bpf.c). The frames are in the stacks map of generation 0 (a dump never
 * switches generations). */
enum thread_capture {
	THREAD_ON_CPU = 1,     /* sampled while running */
	THREAD_OFF_CPU = 2,    /* unwound while it slept or waited for a CPU */
};

struct thread_stack {
	__u32 tgid;
	__u32 end_reason;       /* enum unwind_end */
	__u64 stack_id;         /* key into stacks_0; 0 = no frames (stack map full, or none) */
	__u32 capture;          /* enum thread_capture */
	__u32 state;            /* off CPU: the task's __state (TASK_INTERRUPTIBLE 1, ...) */
	__s32 syscall;          /* the system call it is in (x86_64 number), -1 none */
	__u32 pad;
	char comm[16];          /* TASK_COMM_LEN */
};

/* ---- lua-perf --off-cpu: hash `off_cpu_threads`, thread ID -> the stack a target thread left
 * the CPU with, and when (bpf_ktime_get_ns: CLOCK_MONOTONIC). When it runs again the time off
 * CPU, in nanoseconds, is added to its sample_counts entry (so counts are nanoseconds, not
 * samples); userspace counts the threads still off CPU when the run ends up to its end. The
 * trace is kept whole: a drain may empty the stacks map of its generation meanwhile. */
#define MAX_OFF_CPU_THREADS 4096
struct off_cpu_thread {
	__u64 start_ns;         /* 0: the thread is on a CPU (the entry lives until it exits) */
	__u64 hash;             /* the stack's id */
	__u64 proto_hash;       /* of its Lua frames' Protos (bpf/lib/stack_record.bpf.h) */
	__u32 tgid;
	__u32 end_reason;       /* enum unwind_end */
	__u32 lua_frames;
	__u32 pad;
	struct stack_trace trace;
};

/* ---- Global counters (per-CPU array `counters`): what never reaches sample_counts is counted
 * here, so that nothing is dropped silently. */
enum counter {
	CNT_SAMPLES = 0,            /* perf events that hit a target process */
	CNT_COUNTS_FULL = 1,        /* sample lost: the sample counts map full */
	CNT_STACKS_FULL = 2,        /* stack lost (sample counted without frames): stacks map full */
	CNT_KSTACK_FAILED = 3,      /* kernel stack not recorded (bpf_get_stack error) */
	CNT_REFRESH_REQUESTS = 4,   /* unknown-mapping notifications sent to userspace */
	CNT_REFRESH_LOST = 5,       /* notifications lost (ring buffer full) */
	CNT_LUA_NO_STATE = 6,       /* a luaV_execute frame whose lua_State could not be read */
	CNT_LUA_EMPTY_ACTIVATION = 7, /* a luaV_execute frame with no Lua frame found for it */
	CNT_LUA_EVENTS_LOST = 8,    /* new-Lua-stack events lost (ring buffer full): resolved later */
	CNT_FOLLOW_REFUSED = 9,     /* a target forked a process beyond MAX_TARGET_PROCS */
	CNT_FOLLOW_EVENTS_LOST = 10, /* fork/exec events lost (ring buffer full): the scan catches up */
	CNT_OFF_CPU_SWITCHES = 11,  /* --off-cpu: target threads switched out (blocks begun) */
	CNT_OFF_CPU_SHORT = 12,     /* --off-cpu: blocks shorter than --min-block-us, not counted */
	CNT_OFF_CPU_SHORT_NS = 13,  /* --off-cpu: their time, nanoseconds */
	CNT_OFF_CPU_UNTRACKED = 14, /* --off-cpu: switch-outs not followed (off_cpu_threads full) */
	CNT_OFF_CPU_NS = 15,        /* --off-cpu: nanoseconds added to sample_counts: the drains
				     * must take these (on CPU: CNT_SAMPLES - CNT_COUNTS_FULL) */
	CNT_COUNT = 16,
};

/* ---- Ring buffer events (rare, never per sample in the common path). */
enum event_type {
	EVENT_UNKNOWN_MAPPING = 1,  /* a pc fell outside every known mapping: reread the maps */
	EVENT_NEW_LUA_STACK = 2,    /* a stack with Lua frames seen for the first time (addr = its
				     * id): name its Protos now, while they are certainly alive */
	EVENT_PROCESS_FORKED = 3,   /* a target forked tgid (addr = the parent): it is a target */
	EVENT_PROCESS_EXECED = 4,   /* target tgid exec'd: its mappings are gone, publish the new */
};

struct profiler_event {
	__u32 type;
	__u32 tgid;
	__u64 addr;
	__u32 generation;   /* EVENT_NEW_LUA_STACK: of the stacks map that holds it */
	__u32 pad;
};

#endif
