/* SPDX-License-Identifier: MIT */
#include "profiler/sample_drain.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clocks.h"
#include "lib/log.h"
#include "sample.skel.h"

/* The map of maps whose updates wait for the running BPF programs: kernel/bpf/syscall.c,
 * maybe_wait_bpf_programs() calls synchronize_rcu() after an update of an ARRAY_OF_MAPS, and a
 * perf_event program runs inside rcu_read_lock() (kernel/events/core.c, bpf_overflow_handler).
 * The kernel's own selftests wait this way (prog_tests/btf_map_in_map.c, kern_sync_rcu). */
static int open_sync_maps(struct sample_drain *d)
{
	d->sync_inner_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lp_sync_inner", 4, 4, 1, NULL);
	if (d->sync_inner_fd < 0)
		return d->sync_inner_fd;
	LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = (__u32)d->sync_inner_fd);
	d->sync_outer_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "lp_sync", 4, 4, 1, &opts);
	return d->sync_outer_fd < 0 ? d->sync_outer_fd : 0;
}

static int wait_for_running_programs(struct sample_drain *d)
{
	__u32 zero = 0, inner = (__u32)d->sync_inner_fd;
	double started = now_seconds();
	int rc = bpf_map_update_elem(d->sync_outer_fd, &zero, &inner, BPF_ANY);
	double took = now_seconds() - started;

	if (took > d->longest_sync)
		d->longest_sync = took;
	return rc;
}

int sample_drain_init(struct sample_drain *d, struct sample_bpf *skel)
{
	*d = (struct sample_drain){.skel = skel, .sync_outer_fd = -1, .sync_inner_fd = -1};
	d->keys = calloc(MAX_SAMPLE_KEYS, sizeof(*d->keys));
	d->counts = calloc(MAX_SAMPLE_KEYS, sizeof(*d->counts));
	d->stack_ids = calloc(MAX_STACKS, sizeof(*d->stack_ids));
	d->traces = calloc(MAX_STACKS, sizeof(*d->traces)); /* pages used as stacks come */
	d->stacks = calloc(MAX_STACKS, sizeof(*d->stacks));
	if (!d->keys || !d->counts || !d->stack_ids || !d->traces || !d->stacks) {
		lp_error("out of memory");
		return -ENOMEM;
	}
	int rc = open_sync_maps(d);
	if (rc < 0)
		lp_error("cannot create the BPF map that synchronizes draining: %s", strerror(-rc));
	return rc;
}

void sample_drain_free(struct sample_drain *d)
{
	if (d->sync_outer_fd >= 0)
		close(d->sync_outer_fd);
	if (d->sync_inner_fd >= 0)
		close(d->sync_inner_fd);
	free(d->keys);
	free(d->counts);
	free(d->stack_ids);
	free(d->traces);
	free(d->stacks);
	*d = (struct sample_drain){.sync_outer_fd = -1, .sync_inner_fd = -1};
}

static uint32_t active_generation(const struct sample_drain *d)
{
	return __atomic_load_n(&d->skel->bss->active_generation, __ATOMIC_RELAXED) & 1;
}

bool sample_drain_due(const struct sample_drain *d)
{
	uint32_t g = active_generation(d);
	uint64_t stacks = __atomic_load_n(&d->skel->bss->generation_stacks[g], __ATOMIC_RELAXED);
	uint64_t keys = __atomic_load_n(&d->skel->bss->generation_keys[g], __ATOMIC_RELAXED);

	return stacks >= MAX_STACKS / 2 || keys >= MAX_SAMPLE_KEYS / 2;
}

int sample_drain_stacks_fd(const struct sample_drain *d, uint32_t generation)
{
	return bpf_map__fd(generation & 1 ? d->skel->maps.stacks_1 : d->skel->maps.stacks_0);
}

static int counts_fd(const struct sample_drain *d, uint32_t generation)
{
	return bpf_map__fd(generation & 1 ? d->skel->maps.sample_counts_1
					  : d->skel->maps.sample_counts_0);
}

/* Read and delete every entry of a hash map into keys/values (arrays of key_size and value_size
 * bytes, room for capacity: the map's size). Returns the number read or -errno. */
static long take_all(int fd, void *keys, size_t key_size, void *values, size_t value_size,
		     size_t capacity)
{
	size_t total = 0;
	uint64_t token = 0; /* where the kernel stopped: a bucket index (kernel/bpf/hashtab.c) */
	void *in = NULL;

	while (total < capacity) {
		__u32 n = (__u32)(capacity - total);
		int rc = bpf_map_lookup_and_delete_batch(fd, in, &token, (char *)keys + total * key_size,
							 (char *)values + total * value_size, &n, NULL);

		total += n;
		if (rc == -ENOENT)
			break; /* the whole map was read */
		if (rc < 0)
			return rc;
		in = &token;
	}
	return (long)total;
}

static int compare_stack_entries(const void *a, const void *b)
{
	uint64_t x = ((const struct stack_entry *)a)->id, y = ((const struct stack_entry *)b)->id;

	return (x > y) - (x < y);
}

static const struct stack_trace *find_trace(const struct sample_drain *d, size_t count,
					    uint64_t id)
{
	struct stack_entry key = {.id = id};
	const struct stack_entry *e = bsearch(&key, d->stacks, count, sizeof(*d->stacks),
					      compare_stack_entries);

	return e ? e->trace : NULL;
}

/* The stacks of a generation, taken out of the kernel and indexed by id. */
static long take_stacks(struct sample_drain *d, uint32_t generation)
{
	long n = take_all(sample_drain_stacks_fd(d, generation), d->stack_ids, sizeof(*d->stack_ids),
			  d->traces, sizeof(*d->traces), MAX_STACKS);

	for (long i = 0; i < n; i++)
		d->stacks[i] = (struct stack_entry){d->stack_ids[i], &d->traces[i]};
	if (n > 0)
		qsort(d->stacks, (size_t)n, sizeof(*d->stacks), compare_stack_entries);
	return n;
}

static void reset_fill(struct sample_drain *d, uint32_t generation)
{
	__atomic_store_n(&d->skel->bss->generation_stacks[generation], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&d->skel->bss->generation_keys[generation], 0, __ATOMIC_RELAXED);
}

int sample_drain_run(struct sample_drain *d, sample_fn fn, void *ctx)
{
	uint32_t old = active_generation(d);

	__atomic_store_n(&d->skel->bss->active_generation, old ^ 1, __ATOMIC_SEQ_CST);
	int rc = wait_for_running_programs(d);
	if (rc < 0)
		return rc; /* cannot know when the old generation is quiet: leave it for later */
	long keys = take_all(counts_fd(d, old), d->keys, sizeof(*d->keys), d->counts,
			     sizeof(*d->counts), MAX_SAMPLE_KEYS);
	long stacks = take_stacks(d, old);
	reset_fill(d, old);
	d->drained++;
	if (keys < 0)
		return (int)keys;
	if (stacks < 0)
		return (int)stacks;
	for (long i = 0; i < keys; i++) {
		const struct stack_trace *trace =
			d->keys[i].stack_id ? find_trace(d, (size_t)stacks, d->keys[i].stack_id) : NULL;
		int one = fn(ctx, &d->keys[i], d->counts[i], trace);

		d->amount_taken += d->counts[i];

		if (rc == 0)
			rc = one;
	}
	return rc;
}
