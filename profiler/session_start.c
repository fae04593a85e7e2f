/* SPDX-License-Identifier: MIT */
/* session_start.c - a session's start: the BPF maps created ahead and the programs (and the dump
 * iterator) verified on a thread of their own while the unwind tables are mapped into the table
 * store, the perf events attached on every CPU, and the programs that follow fork and exec. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/clocks.h"
#include "lib/log.h"
#include "profiler/bpf_load.h"
#include "profiler/maps_ahead.h"
#include "profiler/off_cpu.h"
#include "profiler/session_internal.h"

/* An mmap()ed BPF array: elements are value_size rounded up to 8 bytes (kernel/bpf/arraymap.c,
 * elem_size), which every table entry type already is. */
static void *mmap_map(struct bpf_map *map, size_t *len)
{
	if (bpf_map__value_size(map) % 8 != 0) {
		errno = EINVAL;
		return NULL;
	}
	*len = (size_t)bpf_map__value_size(map) * bpf_map__max_entries(map);
	void *mem = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	return mem == MAP_FAILED ? NULL : mem;
}

int open_table_store(struct session *s)
{
	struct sample_bpf *skel = s->map_owner;

	s->rows_mem = mmap_map(skel->maps.unwind_rows, &s->rows_len);
	s->pages_mem = mmap_map(skel->maps.unwind_pages, &s->pages_len);
	s->rules_mem = mmap_map(skel->maps.unwind_rules, &s->rules_len);
	if (!s->rows_mem || !s->pages_mem || !s->rules_mem) {
		lp_error("cannot map the unwind tables: %s", strerror(errno));
		return -1;
	}
	struct table_store_maps maps = {
		.files_fd = bpf_map__fd(skel->maps.unwind_files),
		.rows = s->rows_mem,
		.max_rows = bpf_map__max_entries(skel->maps.unwind_rows),
		.pages = s->pages_mem,
		.max_pages = bpf_map__max_entries(skel->maps.unwind_pages),
		.rules = s->rules_mem,
		.max_rules = bpf_map__max_entries(skel->maps.unwind_rules),
	};
	s->store = table_store_new(&maps);
	if (!s->store ||
	    mapped_files_init(&s->files, s->store, bpf_map__fd(skel->maps.lua_interps)) < 0 ||
	    frame_namer_init(&s->namer, &s->files, s->opts->lua_lines) < 0) {
		lp_error("out of memory");
		return -1;
	}
	mapped_files_open_cache(&s->files, s->opts->table_cache, s->opts->table_cache_chosen);
	s->aggregation.namer = &s->namer;
	for (size_t i = 0; i < s->opts->output_count; i++)
		if (s->opts->outputs[i].format == OUTPUT_PPROF)
			s->namer.origins = &s->aggregation.origins;
	return 0;
}

static int open_cpu_clock(int cpu, unsigned frequency)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.freq = 1,
		.sample_freq = frequency,
	};

	return (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

static const char *perf_failure_hint(int err)
{
	switch (err) {
	case EINVAL:
		return " (above kernel.perf_event_max_sample_rate?)";
	case ENOSYS:
		return " (this kernel has no perf events: CONFIG_PERF_EVENTS)";
	case ENOENT:
	case EOPNOTSUPP:
		return " (this kernel has no cpu-clock software event)";
	case EPERM:
	case EACCES:
		return " (needs CAP_PERFMON; see kernel.perf_event_paranoid)";
	default:
		return "";
	}
}

/* --off-cpu: the scheduler's switches instead of the perf events. */
static int attach_switches(struct session *s)
{
	s->switch_link = bpf_program__attach(s->skel->progs.on_switch);
	if (!s->switch_link) {
		lp_error("cannot attach the BPF program to the sched_switch tracepoint: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

int attach_perf_events(struct session *s)
{
	int attached = 0;

	if (s->opts->off_cpu)
		return attach_switches(s);
	if (s->sampler_deferred)
		return 0; /* load_deferred_sampler attaches it */

	s->cpu_count = libbpf_num_possible_cpus();
	if (s->cpu_count <= 0) {
		lp_error("cannot count CPUs: %s", strerror(-s->cpu_count));
		return -1;
	}
	s->perf_fds = calloc((size_t)s->cpu_count, sizeof(*s->perf_fds));
	s->links = calloc((size_t)s->cpu_count, sizeof(*s->links));
	if (!s->perf_fds || !s->links)
		return -ENOMEM;
	for (int cpu = 0; cpu < s->cpu_count; cpu++) {
		s->perf_fds[cpu] = open_cpu_clock(cpu, s->opts->frequency);
		if (s->perf_fds[cpu] < 0) {
			if (errno == ENODEV)
				continue; /* offline CPU */
			lp_error("perf_event_open(cpu-clock, %u Hz, CPU %d): %s%s", s->opts->frequency, cpu,
				 strerror(errno), perf_failure_hint(errno));
			return -1;
		}
		s->links[cpu] = bpf_program__attach_perf_event(s->skel->progs.on_sample, s->perf_fds[cpu]);
		if (!s->links[cpu]) {
			lp_error("cannot attach the BPF program to CPU %d: %s", cpu, strerror(errno));
			return -1;
		}
		attached++;
	}
	return attached > 0 ? 0 : -1;
}

/* Processes the targets fork and exec are followed in the kernel (bpf/lib/process_follow.bpf.h). */
int attach_process_followers(struct session *s)
{
	s->follow_links[0] = bpf_program__attach(s->skel->progs.on_fork);
	s->follow_links[1] = s->follow_links[0] ? bpf_program__attach(s->skel->progs.on_exec) : NULL;
	if (!s->follow_links[1]) {
		lp_error("cannot attach the BPF programs that follow fork and exec: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void detach_perf_events(struct session *s)
{
	bpf_link__destroy(s->switch_link);
	s->switch_link = NULL;
	for (int cpu = 0; s->links && cpu < s->cpu_count; cpu++) {
		bpf_link__destroy(s->links[cpu]);
		s->links[cpu] = NULL;
	}
	for (int cpu = 0; s->perf_fds && cpu < s->cpu_count; cpu++) {
		if (s->perf_fds[cpu] > 0)
			close(s->perf_fds[cpu]);
		s->perf_fds[cpu] = -1;
	}
}

/* The sampling programs verified: 0, or -1 (said). */
static int verify_sampler(struct session *s)
{
	double started = now_seconds();
	struct verifier_stats *stats = verifier_stats_collect(s->skel->obj);
	int rc = sample_bpf__load(s->skel);

	if (rc < 0 && !kernel_supports_sampling()) { /* an old kernel: said in its terms */
		verifier_stats_free(stats);
		return -1;
	}
	bool refusal_said = verifier_stats_report(stats, rc);
	if (rc < 0) {
		if (!refusal_said)
			lp_error("cannot load the BPF program: %s (%s)", strerror(-rc),
				 bpf_failure_hint(-rc));
		return -1;
	}
	lp_debug("BPF program loaded in %.2f s", now_seconds() - started);
	return 0;
}

/* The kernel's symbols, read on a thread: /proc/kallsyms (~120,000 lines, 30-60 ms to read and
 * sort here, 150 ms and more under ASan) would otherwise keep the main thread from the events
 * of the first moments, among them the exec of `lua-perf -- CMD`, whose samples have no stack
 * until its new mappings are published. */
static void load_kernel_symbols(struct session *s)
{
	s->kernel_symbols_rc = symbol_table_load_kallsyms(&s->kernel_symbols);
	s->kernel_symbols_read = true;
}

/* lua-perf dump: its task iterator verified, then the kernel's symbols, which the dump prints
 * with. */
static void *load_dump(void *arg)
{
	struct session *s = arg;
	double started = now_seconds();

	s->dump_load.rc = thread_dump_load(s->dump);
	if (s->dump_load.rc == 0 && thread_dump_has_iterator(s->dump))
		lp_debug("BPF dump iterator loaded in %.2f s (beside the tables)",
			 now_seconds() - started);
	if (s->dump_load.rc == 0 && s->opts->kernel_stacks)
		load_kernel_symbols(s);
	return NULL;
}

static void *load_sampler(void *arg)
{
	struct session *s = arg;

	s->sampler_load.rc = verify_sampler(s);
	return NULL;
}

/* fn on a thread of its own; here if no thread can be made. */
static void start_background(struct background *b, void *(*fn)(void *), struct session *s)
{
	b->running = pthread_create(&b->thread, NULL, fn, s) == 0;
	if (!b->running)
		fn(s);
}

static int join_background(struct background *b)
{
	if (b->running) {
		pthread_join(b->thread, NULL);
		b->running = false;
	}
	return b->rc;
}

static void *load_kernel_symbols_alone(void *arg)
{
	load_kernel_symbols(arg);
	return NULL;
}

/* Not on the way to the first sample: while the first ones are taken. */
void start_kernel_symbols(struct session *s)
{
	if (s->opts->kernel_stacks)
		start_background(&s->kernel_load, load_kernel_symbols_alone, s);
}

void take_kernel_symbols(struct session *s)
{
	join_background(&s->kernel_load);
	if (s->kernel_symbols_read) {
		frame_namer_take_kernel(&s->namer, &s->kernel_symbols, s->kernel_symbols_rc);
		s->kernel_symbols_read = false;
	}
}

/* The programs are verified on threads of their own (the sampler a quarter of a second, the
 * dump's iterator a third of a dump's CPU time: perf record) while the main thread builds the
 * unwind tables into the maps created ahead. The threads touch only their own object,
 * kernel_symbols and their rc; the main thread uses map_owner's maps until finish_loading. The
 * kernel verifies loads of privileged programs in parallel (kernel/bpf/verifier.c takes
 * bpf_verifier_lock for unprivileged ones only), and libbpf keeps its state per object. */
static int start_loading(struct session *s)
{
	if (!s->opts->dump) {
		start_background(&s->sampler_load, load_sampler, s);
		return 0;
	}
	if (thread_dump_open(&s->dump, s->map_owner, s->opts->kernel_stacks) < 0)
		return -1;
	start_background(&s->dump_load, load_dump, s);
	return 0;
}

/* lua-perf dump, its targets known: the sampling program takes the stacks of the threads that
 * run, the task iterator those of the others. When none runs, the sampler is not loaded (the
 * verifier would spend a quarter of a second on it, with the iterator and the tables already
 * sharing two CPUs) unless a round finds that it is needed after all (run_dump). */
void start_dump_sampler(struct session *s)
{
	if (thread_dump_any_running(&s->tree)) {
		start_background(&s->sampler_load, load_sampler, s);
		return;
	}
	lp_debug("no target thread runs: the sampling program is loaded only if one does");
	s->sampler_deferred = true;
}

int load_deferred_sampler(struct session *s)
{
	if (!s->sampler_deferred)
		return 0;
	s->sampler_deferred = false;
	if (verify_sampler(s) < 0)
		return -1;
	return attach_perf_events(s);
}

int finish_loading(struct session *s)
{
	int sampler_rc = join_background(&s->sampler_load);
	int dump_rc = join_background(&s->dump_load);

	take_kernel_symbols(s);
	return sampler_rc < 0 || dump_rc < 0 ? -1 : 0;
}

/* The sampling object opened and set for this run, or NULL (said). */
static struct sample_bpf *open_configured(const struct session_options *opts)
{
	struct sample_bpf *skel = sample_bpf__open();

	if (!skel) {
		lp_error("cannot open the BPF program: %s", strerror(errno));
		return NULL;
	}
	skel->rodata->collect_kernel_stacks = opts->kernel_stacks;
	skel->rodata->dump_threads = opts->dump;
	if (off_cpu_configure(skel, opts) < 0)
		goto fail;
	if (!opts->dump && bpf_map__set_max_entries(skel->maps.thread_stacks, 1) != 0) {
		lp_error("cannot size the BPF map thread_stacks: %s", strerror(errno)); /* unused */
		goto fail;
	}
	if (opts->dump && (bpf_program__set_autoload(skel->progs.on_fork, false) != 0 ||
			   bpf_program__set_autoload(skel->progs.on_exec, false) != 0)) {
		lp_error("cannot leave out the BPF process followers: %s", strerror(errno));
		goto fail;
	}
	return skel;
fail:
	sample_bpf__destroy(skel);
	return NULL;
}

/* The maps are created ahead in an object of their own, never loaded (map_owner), and shared
 * with the object whose programs load beside the tables (skel): a failed load closes the maps'
 * fds that its object holds (bpf_object__load), not the ones the main thread uses meanwhile. */
int load_program(struct session *s)
{
	if (!kernel_has_btf())
		return -1;
	s->map_owner = open_configured(s->opts);
	s->skel = s->map_owner ? open_configured(s->opts) : NULL;
	if (!s->skel || create_maps_ahead(s->map_owner->obj) < 0 ||
	    share_maps(s->skel->obj, s->map_owner->obj, NULL, "the sampling program") < 0)
		return -1;
	s->events = ring_buffer__new(bpf_map__fd(s->map_owner->maps.events), on_event, s, NULL);
	if (!s->events) {
		lp_error("cannot open the BPF ring buffer: %s", strerror(errno));
		return -1;
	}
	/* In dump mode too: it names the stacks that EVENT_NEW_LUA_STACK announces. It runs only
	 * once skel is loaded (or, in a dump, on skel's maps shared above, before the sampler's
	 * load: that load happens on this thread, and ends the dump if it fails). */
	if (sample_drain_init(&s->drain, s->skel) < 0)
		return -1;
	return start_loading(s);
}
