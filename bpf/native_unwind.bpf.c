// SPDX-License-Identifier: GPL-2.0
/*
 * native_unwind.bpf.c - the sampling program: on every cpu-clock tick that lands in a target
 * process, unwind the user stack from the precompiled .eh_frame tables (no frame pointers), record
 * the kernel stack, and count the (process, user stack, kernel stack) triple in a hash map.
 * Userspace reads the maps at the end: nothing per sample crosses to userspace.
 *
 * The unwinder recovers rip, rsp and the callee-saved registers rbp, rbx, r12-r15 frame by frame
 * (struct unwinder_state), so that a runtime walker (the Lua issues) can read, at the interpreter's
 * own frame, the register in which the VM keeps its state.
 *
 * Table lookup (bpf/unwind_abi.h): pc -> process mapping (binary search) -> file table -> page
 * index -> binary search among the rows of one page -> rule. Every loop is bounded.
 *
 * Needs Linux >= 5.17 (bpf_loop) and BTF (bpf_task_pt_regs, 5.15).
 *
 * `lua-perf dump` uses the same unwinder twice: this program, with dump_threads set, keeps the
 * first stack of each thread that runs on a CPU (thread_stacks, keyed by thread ID); and
 * bpf/thread_dump.bpf.c, a task iterator that compiles this file again with LUA_PERF_TASK_ITER,
 * unwinds the threads that are off CPU, reading their memory with bpf_copy_from_user_task.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "unwind_abi.h"
#include "lua_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by userspace before load. */
const volatile bool collect_kernel_stacks = true;
/* lua-perf dump: record each thread's first stack in thread_stacks instead of counting samples.
 * A read-only constant, so the verifier drops the branch not taken: profiling pays nothing. */
const volatile bool dump_threads = false;

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_STACKS);
	__type(key, __u64);
	__type(value, struct stack_trace);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SAMPLE_KEYS);
	__type(key, struct sample_key);
	__type(value, __u64);
} sample_counts SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

/* lua-perf dump: one stack per thread (userspace shrinks it to 1 entry when profiling). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_DUMP_THREADS);
	__type(key, __u32); /* thread ID */
	__type(value, struct thread_stack);
} thread_stacks SEC(".maps");

/* Per-CPU working state of one unwind: too large for the 512-byte BPF stack. */
struct unwinder_state {
	__u64 regs[DW_REG_COUNT]; /* indexed by DWARF register number */
	__u32 valid;              /* bit n: regs[n] is known */
	__u32 exact_pc;           /* regs[DW_RIP] is the interrupted pc, not a return address */
	__u32 end_reason;
	__u32 tgid;
	__u64 hash;
	__u64 lua_L;              /* the lua_State of the last Lua activation walked */
	__u64 lua_ci;             /* where its next activation starts (0: none left) */
	__u64 lua_top_ci;         /* its L->ci (5.1: the CallInfo whose pc is L->savedpc) */
	__u32 lua_frames;         /* Lua frames pushed in this sample */
	__u32 pad;
	__u64 kernel_ips[MAX_KERNEL_FRAMES];
	struct stack_trace trace;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unwinder_state);
} scratch SEC(".maps");

/* Lua VMs by file id (bpf/lua_abi.h), written by userspace when it registers a file. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_FILES);
	__type(key, __u32);
	__type(value, struct lua_interp);
} lua_interps SEC(".maps");

struct loop_ctx {
	struct unwinder_state *st;
	struct proc_mappings *pm;
};

/* Reading the target's memory: the sampling program runs in the sampled thread itself; the dump's
 * task iterator runs in lua-perf and reads the thread dump_tid with bpf_copy_from_user_task
 * (sleepable, Linux 5.18). The thread is looked up at every read: a trusted task pointer cannot
 * be kept in a map, and a dump is one unwind per thread, not a hot path. */
#ifdef LUA_PERF_TASK_ITER
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
__s32 dump_tid;

static __always_inline long read_user(void *dst, __u32 size, const void *src)
{
	struct task_struct *task = bpf_task_from_pid(dump_tid);
	long rc;

	if (!task)
		return -1;
	rc = bpf_copy_from_user_task(dst, size, src, task, 0);
	bpf_task_release(task);
	return rc;
}
#else
#define read_user bpf_probe_read_user
#endif

/* Hide a value's known range from clang so that the bounds check the verifier needs is kept. */
#define opaque(var) asm volatile("" : "+r"(var))

#define REG_BIT(r) (1u << (r))
#define CALLEE_SAVED_MASK                                                                           \
	(REG_BIT(DW_RBX) | REG_BIT(DW_RBP) | REG_BIT(DW_RSP) | REG_BIT(DW_R12) | REG_BIT(DW_R13) |   \
	 REG_BIT(DW_R14) | REG_BIT(DW_R15) | REG_BIT(DW_RIP))

/* DWARF number of each saved_reg slot of struct unwind_rule. */
static const __u8 saved_reg_dwarf[SREG_COUNT - 1] = {
	[SREG_RBP] = DW_RBP, [SREG_RBX] = DW_RBX, [SREG_R12] = DW_R12,
	[SREG_R13] = DW_R13, [SREG_R14] = DW_R14, [SREG_R15] = DW_R15,
};

static __always_inline void count(__u32 which)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &which);

	if (value)
		*value += 1;
}

static __always_inline void request_refresh(__u32 tgid, __u64 addr)
{
	__u8 one = 1;
	struct profiler_event *event;

	if (bpf_map_update_elem(&refresh_pending, &tgid, &one, BPF_NOEXIST) != 0)
		return; /* already requested */
	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count(CNT_REFRESH_LOST);
		bpf_map_delete_elem(&refresh_pending, &tgid);
		return;
	}
	event->type = EVENT_UNKNOWN_MAPPING;
	event->tgid = tgid;
	event->addr = addr;
	bpf_ringbuf_submit(event, 0);
	count(CNT_REFRESH_REQUESTS);
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

/* The executable mapping holding pc: last mapping with start <= pc, if pc < its end. */
static __always_inline struct exec_mapping *find_mapping(struct proc_mappings *pm, __u64 pc)
{
	__u32 lo = 0, hi = pm->count;

	if (hi > MAX_PROC_MAPPINGS)
		return NULL;
	/* invariant: answer in [lo, hi), i.e. maps[lo - 1].start <= pc < maps[hi].start */
	for (int i = 0; i < MAPPING_SEARCH_STEPS && lo < hi; i++) {
		__u32 mid = (lo + hi) / 2;

		opaque(mid);
		if (mid >= MAX_PROC_MAPPINGS)
			return NULL;
		if (pm->maps[mid].start <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	lo -= 1;
	opaque(lo);
	if (lo >= MAX_PROC_MAPPINGS)
		return NULL;
	struct exec_mapping *m = &pm->maps[lo];
	return pc < m->end ? m : NULL;
}

/* The rule in effect at vaddr in a file, or NULL with *reason set. */
static __always_inline struct unwind_rule *find_rule(__u32 file_id, __u64 vaddr, __u32 *reason)
{
	struct unwind_file *file = bpf_map_lookup_elem(&unwind_files, &file_id);

	*reason = END_NO_TABLE;
	if (!file || !(file->flags & FILE_LOADED))
		return NULL;
	*reason = END_NO_ROW;
	if (vaddr < file->text_start || vaddr >= file->text_end)
		return NULL;

	__u64 off = vaddr - file->text_start;
	__u64 page = off >> UNWIND_PAGE_SHIFT;
	if (page >= file->page_count)
		return NULL;
	__u32 page_key = file->page_start + (__u32)page;
	struct unwind_page *range = bpf_map_lookup_elem(&unwind_pages, &page_key);
	if (!range)
		return NULL;

	/* last row of [first, last] with pc_off <= off; rows[first].pc_off <= off by construction */
	__u32 lo = range->first, hi = range->last;
	for (int i = 0; i < UNWIND_SEARCH_STEPS && lo < hi; i++) {
		__u32 mid = lo + (hi - lo + 1) / 2;
		__u32 key = file->row_start + mid;
		struct unwind_row *row = bpf_map_lookup_elem(&unwind_rows, &key);

		if (!row)
			return NULL;
		if (row->pc_off <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (lo != hi || lo >= file->row_count)
		return NULL;
	__u32 key = file->row_start + lo;
	struct unwind_row *row = bpf_map_lookup_elem(&unwind_rows, &key);
	if (!row || row->rule_id == UNWIND_RULE_GAP)
		return NULL;
	return bpf_map_lookup_elem(&unwind_rules, &row->rule_id);
}

static __always_inline int reg_value(struct unwinder_state *st, __u32 reg, __u64 *value)
{
	if (reg >= DW_REG_COUNT || !(st->valid & REG_BIT(reg)))
		return -1;
	*value = st->regs[reg];
	return 0;
}

/* Signal trampoline (__restore_rt): rsp points at the kernel's struct ucontext, whose
 * uc_mcontext (struct sigcontext_64, arch/x86/include/uapi/asm/sigcontext.h) starts 40 bytes in:
 * r8 r9 r10 r11 r12 r13 r14 r15 di si bp bx dx ax cx sp ip. */
#define UCONTEXT_MCONTEXT_OFFSET 40
enum { SC_R8, SC_R9, SC_R10, SC_R11, SC_R12, SC_R13, SC_R14, SC_R15, SC_RDI, SC_RSI, SC_RBP,
       SC_RBX, SC_RDX, SC_RAX, SC_RCX, SC_RSP, SC_RIP, SC_COUNT };

static __always_inline __u32 unwind_signal_frame(struct unwinder_state *st)
{
	__u64 sc[SC_COUNT];
	__u64 addr = st->regs[DW_RSP] + UCONTEXT_MCONTEXT_OFFSET;

	if (read_user(sc, sizeof(sc), (void *)addr))
		return END_READ_FAILED;
	st->regs[DW_R8] = sc[SC_R8];
	st->regs[DW_R9] = sc[SC_R9];
	st->regs[DW_R10] = sc[SC_R10];
	st->regs[DW_R11] = sc[SC_R11];
	st->regs[DW_R12] = sc[SC_R12];
	st->regs[DW_R13] = sc[SC_R13];
	st->regs[DW_R14] = sc[SC_R14];
	st->regs[DW_R15] = sc[SC_R15];
	st->regs[DW_RDI] = sc[SC_RDI];
	st->regs[DW_RSI] = sc[SC_RSI];
	st->regs[DW_RBP] = sc[SC_RBP];
	st->regs[DW_RBX] = sc[SC_RBX];
	st->regs[DW_RDX] = sc[SC_RDX];
	st->regs[DW_RAX] = sc[SC_RAX];
	st->regs[DW_RCX] = sc[SC_RCX];
	st->regs[DW_RSP] = sc[SC_RSP];
	st->regs[DW_RIP] = sc[SC_RIP];
	st->valid = (1u << DW_REG_COUNT) - 1;
	st->exact_pc = 1; /* the interrupted instruction itself, not a return address */
	return st->regs[DW_RIP] ? END_REASON_COUNT : END_BAD_FRAME;
}

static __always_inline __u32 compute_cfa(struct unwinder_state *st, struct unwind_rule *rule,
					 __u64 *cfa)
{
	__u64 base;

	switch (rule->cfa_type) {
	case CFA_REG_OFF:
		if (reg_value(st, rule->cfa_reg, &base))
			return END_REG_UNKNOWN;
		*cfa = base + (__s64)rule->cfa_off;
		return END_REASON_COUNT;
	case CFA_DEREF_REG_OFF:
		if (reg_value(st, rule->cfa_reg, &base))
			return END_REG_UNKNOWN;
		if (read_user(cfa, sizeof(*cfa), (void *)(base + (__s64)rule->cfa_off)))
			return END_READ_FAILED;
		return END_REASON_COUNT;
	case CFA_PLT:
		if (reg_value(st, DW_RSP, &base))
			return END_REG_UNKNOWN;
		*cfa = base + (__s64)rule->cfa_off + ((st->regs[DW_RIP] & 15) >= rule->cfa_reg ? 8 : 0);
		return END_REASON_COUNT;
	case CFA_GAP:
		return END_NO_ROW;
	default:
		return END_UNSUPPORTED;
	}
}

/* Apply one rule: compute the caller's registers. Returns END_REASON_COUNT to continue. */
static __always_inline __u32 unwind_frame(struct unwinder_state *st, struct unwind_rule *rule)
{
	__u64 cfa, ra, saved;
	__u32 reason;
	__s16 ra_off = rule->reg_off[SREG_RA];

	if (rule->cfa_type == CFA_SIGNAL)
		return unwind_signal_frame(st);
	reason = compute_cfa(st, rule, &cfa);
	if (reason != END_REASON_COUNT)
		return reason;
	if (ra_off == REG_UNDEFINED)
		return END_COMPLETE;
	if (ra_off == REG_SAME)
		return END_UNSUPPORTED;
	if (read_user(&ra, sizeof(ra), (void *)(cfa + ra_off)))
		return END_READ_FAILED;

	/* Caller-saved registers are unknown in the caller; callee-saved ones follow their rule,
	 * with slots relative to the CFA or (rbp_based) to this frame's rbp, read before the loop
	 * replaces it with the caller's. */
	__u32 valid = st->valid & CALLEE_SAVED_MASK;
	__u64 frame_rbp = st->regs[DW_RBP];
	bool frame_rbp_known = st->valid & REG_BIT(DW_RBP);
	for (int i = 0; i < SREG_COUNT - 1; i++) {
		__s16 off = rule->reg_off[i];
		__u32 reg = saved_reg_dwarf[i];
		bool rbp_based = rule->rbp_based & (1u << i);
		__u64 base = rbp_based ? frame_rbp : cfa;

		if (off == REG_SAME && !rbp_based)
			continue;
		if ((off == REG_UNDEFINED && !rbp_based) || (rbp_based && !frame_rbp_known) ||
		    read_user(&saved, sizeof(saved), (void *)(base + off))) {
			valid &= ~REG_BIT(reg);
			continue;
		}
		if (reg < DW_REG_COUNT) {
			st->regs[reg] = saved;
			valid |= REG_BIT(reg);
		}
	}
	if (ra == 0 || cfa <= st->regs[DW_RSP])
		return END_BAD_FRAME;
	st->regs[DW_RSP] = cfa;
	st->regs[DW_RIP] = ra;
	st->valid = valid | REG_BIT(DW_RSP) | REG_BIT(DW_RIP);
	st->exact_pc = 0;
	return END_REASON_COUNT;
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

#include "lua_puc_walk.bpf.h"
#include "luajit_walk.bpf.h"

/* At an interpreter frame (luaV_execute, lj_vm), the Lua frames it runs go first (leaf side) of
 * the native frame. */
static __always_inline void walk_interpreter(struct unwinder_state *st, __u32 file_id, __u64 vaddr,
					     struct unwind_rule *rule)
{
	struct lua_interp *interp = bpf_map_lookup_elem(&lua_interps, &file_id);

	if (!interp || interp->kind == LUA_KIND_NONE || vaddr < interp->exec_start ||
	    vaddr >= interp->exec_end)
		return;
	if (interp->kind == LUA_KIND_LUAJIT)
		luajit_walk_activation(st, interp, file_id, rule);
	else
		lua_puc_walk_activation(st, interp, rule);
}

/* pc in anonymous code or no known mapping: a LuaJIT trace is spliced and unwinding goes on
 * (returns 0), anything else ends the stack there (returns 1). */
static __always_inline long unwind_unknown_code(struct loop_ctx *lc, __u64 pc, bool retaddr,
						bool mapped)
{
	struct unwinder_state *st = lc->st;

	switch (luajit_walk_trace(st, lc->pm)) {
	case LUAJIT_TRACE_CONTINUE:
		return st->trace.len >= MAX_STACK_FRAMES ? (st->end_reason = END_DEPTH, 1) : 0;
	case LUAJIT_TRACE_END:
		return 1;
	default:
		break;
	}
	push_frame(st, anon_frame(pc, retaddr));
	if (!mapped)
		request_refresh(st->tgid, pc);
	st->end_reason = mapped ? END_ANON_CODE : END_NO_MAPPING;
	return 1;
}

/* One native frame: record it, then compute its caller. Returns 1 to stop the loop. */
static long unwind_step(__u64 index, void *data)
{
	struct loop_ctx *lc = data;
	struct unwinder_state *st = lc->st;
	__u64 pc = st->regs[DW_RIP];
	bool retaddr = !st->exact_pc;
	/* A return address may sit just past a noreturn call at the end of a function: look up
	 * the call instruction itself. */
	__u64 lookup_pc = retaddr ? pc - 1 : pc;
	struct exec_mapping *m = find_mapping(lc->pm, lookup_pc);
	struct unwind_rule *rule;
	__u32 reason;

	if (!m || m->kind == MAPPING_ANON)
		return unwind_unknown_code(lc, pc, retaddr, m != NULL);
	if (m->kind != MAPPING_FILE) {
		push_frame(st, native_frame(m->file_id, pc - m->bias, retaddr));
		st->end_reason = END_NO_TABLE;
		return 1;
	}
	rule = find_rule(m->file_id, lookup_pc - m->bias, &reason);
	/* The kernel makes a signal handler "return" to the first instruction of the trampoline
	 * (__restore_rt): that pc is not after a call, name it as it is. */
	if (rule && rule->cfa_type == CFA_SIGNAL)
		retaddr = false;
	walk_interpreter(st, m->file_id, lookup_pc - m->bias, rule);
	push_frame(st, native_frame(m->file_id, pc - m->bias, retaddr));
	if (!rule) {
		st->end_reason = reason;
		return 1;
	}
	reason = unwind_frame(st, rule);
	if (reason != END_REASON_COUNT) {
		st->end_reason = reason;
		return 1;
	}
	if (st->trace.len >= MAX_STACK_FRAMES) {
		st->end_reason = END_DEPTH;
		return 1;
	}
	return 0;
}

/* bpf_task_pt_regs() gives a BTF pointer the verifier lets us load from directly. */
#define LOAD_USER_REGS(st, r)                                                                       \
	do {                                                                                       \
		(st)->regs[DW_RAX] = (r).ax;                                                       \
		(st)->regs[DW_RDX] = (r).dx;                                                       \
		(st)->regs[DW_RCX] = (r).cx;                                                       \
		(st)->regs[DW_RBX] = (r).bx;                                                       \
		(st)->regs[DW_RSI] = (r).si;                                                       \
		(st)->regs[DW_RDI] = (r).di;                                                       \
		(st)->regs[DW_RBP] = (r).bp;                                                       \
		(st)->regs[DW_RSP] = (r).sp;                                                       \
		(st)->regs[DW_R8] = (r).r8;                                                        \
		(st)->regs[DW_R9] = (r).r9;                                                        \
		(st)->regs[DW_R10] = (r).r10;                                                      \
		(st)->regs[DW_R11] = (r).r11;                                                      \
		(st)->regs[DW_R12] = (r).r12;                                                      \
		(st)->regs[DW_R13] = (r).r13;                                                      \
		(st)->regs[DW_R14] = (r).r14;                                                      \
		(st)->regs[DW_R15] = (r).r15;                                                      \
		(st)->regs[DW_RIP] = (r).ip;                                                       \
		(st)->valid = (1u << DW_REG_COUNT) - 1;                                            \
		(st)->exact_pc = 1;                                                                \
	} while (0)

/* Kernel frames first (leaf first), with bpf_get_stack / bpf_get_task_stack (bytes = their
 * result) rather than a STACK_TRACE map, whose buckets drop a stack when two hash alike
 * (kernel/bpf/stackmap.c: -EEXIST). */
static __always_inline void push_kernel_frames(struct unwinder_state *st, long bytes)
{
	if (bytes < 0) {
		count(CNT_KSTACK_FAILED);
		return;
	}
	for (int i = 0; i < MAX_KERNEL_FRAMES; i++) {
		if (i >= bytes / 8)
			break;
		push_frame(st, (FRAME_KERNEL << FRAME_KIND_SHIFT) | (st->kernel_ips[i] & FRAME_KERNEL_MASK));
	}
}

/* Once per distinct stack, never per sample: userspace names the Protos in it at once. */
static __always_inline void announce_lua_stack(__u32 tgid, __u64 stack_id)
{
	struct profiler_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);

	if (!event) {
		count(CNT_LUA_EVENTS_LOST);
		return;
	}
	event->type = EVENT_NEW_LUA_STACK;
	event->tgid = tgid;
	event->addr = stack_id;
	bpf_ringbuf_submit(event, 0);
}

static __always_inline __u64 store_stack(struct unwinder_state *st)
{
	__u64 id = st->hash ? st->hash : 1;

	if (st->trace.len == 0)
		return 0;
	if (bpf_map_lookup_elem(&stacks, &id))
		return id;
	if (bpf_map_update_elem(&stacks, &id, &st->trace, BPF_NOEXIST) == 0) {
		if (st->lua_frames)
			announce_lua_stack(st->tgid, id);
		return id;
	}
	if (bpf_map_lookup_elem(&stacks, &id)) /* another CPU inserted it meanwhile */
		return id;
	count(CNT_STACKS_FULL);
	return 0;
}

static __always_inline void count_sample(struct sample_key *key)
{
	__u64 one = 1, *value;

	value = bpf_map_lookup_elem(&sample_counts, key);
	if (value) {
		__sync_fetch_and_add(value, 1);
		return;
	}
	if (bpf_map_update_elem(&sample_counts, key, &one, BPF_NOEXIST) == 0)
		return;
	value = bpf_map_lookup_elem(&sample_counts, key);
	if (value)
		__sync_fetch_and_add(value, 1);
	else
		count(CNT_COUNTS_FULL);
}

static __always_inline void begin_stack(struct unwinder_state *st, __u32 tgid)
{
	st->trace.len = 0;
	st->hash = 0x243f6a8885a308d3ull;
	st->lua_L = 0;
	st->lua_ci = 0;
	st->lua_frames = 0;
	st->tgid = tgid;
	st->end_reason = END_DEPTH;
}

/* The user frames of task, from the user registers saved at its last kernel entry; when a tick
 * interrupted user mode these are the interrupted registers themselves (arch/x86/entry: the entry
 * code saves them at the top of the task's kernel stack, task_pt_regs). */
static __always_inline void unwind_user(struct unwinder_state *st, struct task_struct *task)
{
	struct proc_mappings *pm = bpf_map_lookup_elem(&proc_mappings, &st->tgid);

	if (!task->mm) {
		st->end_reason = END_NO_USER_REGS;
	} else if (!pm) {
		st->end_reason = END_PROC_UNKNOWN;
		request_refresh(st->tgid, 0);
	} else {
		struct loop_ctx lc = {.st = st, .pm = pm};
		struct pt_regs *uregs = (struct pt_regs *)bpf_task_pt_regs(task);

		LOAD_USER_REGS(st, *uregs);
		bpf_loop(MAX_NATIVE_FRAMES, unwind_step, &lc, 0);
	}
}

/* The system call task is in, or -1: syscall entry saves its number in orig_ax and leaves
 * -ENOSYS in ax until the call returns (arch/x86/entry/entry_64.S, entry_SYSCALL_64: "pushq
 * $-ENOSYS"); interrupts store a negative vector there instead. */
#define ENOSYS_ERRNO 38
static __always_inline __s32 syscall_of(struct task_struct *task)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	long orig_ax = (long)regs->orig_ax;

	if ((long)regs->ax != -ENOSYS_ERRNO || orig_ax < 0 || orig_ax > 0xffff)
		return -1;
	return (__s32)orig_ax;
}

/* lua-perf dump: the stack of thread tid, kept if it is the first one of that thread. Not
 * inlined: its locals would add to the stack frame the unwinder's bpf_loop callbacks nest in. */
static __noinline void record_thread(struct unwinder_state *st, struct task_struct *task,
					  __u32 tid, __u32 capture, __u32 state)
{
	struct thread_stack ts = {
		.tgid = st->tgid,
		.end_reason = st->end_reason,
		.capture = capture,
		.state = state,
		.syscall = syscall_of(task),
	};

	bpf_probe_read_kernel_str(ts.comm, sizeof(ts.comm), task->comm);
	ts.stack_id = store_stack(st);
	bpf_map_update_elem(&thread_stacks, &tid, &ts, BPF_NOEXIST);
}

#ifndef LUA_PERF_TASK_ITER
SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid, zero = 0;
	struct sample_key key = {.tgid = tgid};
	/* x86_64 kernel addresses have the top bit set (Documentation/arch/x86/x86_64/mm.rst);
	 * the ctx only allows 8-byte loads, so this is simpler than reading the 16-bit cs. */
	bool in_kernel = (__s64)ctx->regs.ip < 0;

	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	if (dump_threads && bpf_map_lookup_elem(&thread_stacks, &tid))
		return 0; /* this thread is dumped already */
	count(CNT_SAMPLES);

	struct unwinder_state *st = bpf_map_lookup_elem(&scratch, &zero);
	if (!st)
		return 0;
	begin_stack(st, tgid);
	if (collect_kernel_stacks && in_kernel)
		push_kernel_frames(st, bpf_get_stack(ctx, st->kernel_ips, sizeof(st->kernel_ips), 0));

	struct task_struct *task = bpf_get_current_task_btf();

	unwind_user(st, task);
	if (dump_threads) {
		record_thread(st, task, tid, THREAD_ON_CPU, 0);
		return 0;
	}
	key.end_reason = st->end_reason;
	key.stack_id = store_stack(st);
	count_sample(&key);
	return 0;
}
#endif
