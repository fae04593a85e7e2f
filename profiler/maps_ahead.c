/* SPDX-License-Identifier: MIT */
#include "profiler/maps_ahead.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "profiler/bpf_load.h"

/* The kernel's limit for an object's name, with its NUL (include/uapi/linux/bpf.h). */
#define KERNEL_NAME_MAX 16

/* As libbpf would create it at load (bpf_object__create_map in libbpf.c): none of lua-perf's
 * maps needs its BTF (no spin lock, timer or kptr in a value). */
static int create_map(struct bpf_map *map)
{
	const char *name = bpf_map__name(map);

	if (strlen(name) >= KERNEL_NAME_MAX) {
		lp_error("BPF map %s: name longer than %d characters", name, KERNEL_NAME_MAX - 1);
		return -1;
	}
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = bpf_map__map_flags(map),
		    .numa_node = bpf_map__numa_node(map), .map_extra = bpf_map__map_extra(map));
	int fd = bpf_map_create(bpf_map__type(map), name, bpf_map__key_size(map),
				bpf_map__value_size(map), bpf_map__max_entries(map), &opts);
	if (fd < 0) {
		int err = errno;
		lp_error("cannot create the BPF map %s: %s (%s)", name, strerror(err),
			 bpf_failure_hint(err));
		return -1;
	}
	int rc = bpf_map__reuse_fd(map, fd); /* it keeps a duplicate */
	int err = errno;
	close(fd);
	if (rc != 0) {
		lp_error("cannot hand the BPF map %s to libbpf: %s", name, strerror(err));
		return -1;
	}
	return 0;
}

int create_maps_ahead(struct bpf_object *obj)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map) || !bpf_map__autocreate(map))
			continue;
		if (create_map(map) < 0)
			return -1;
	}
	return 0;
}

int share_maps(struct bpf_object *to, struct bpf_object *from, const char *except,
	       const char *user)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, to) {
		const char *name = bpf_map__name(map);

		if (bpf_map__is_internal(map) || (except && strcmp(name, except) == 0))
			continue;
		struct bpf_map *same = bpf_object__find_map_by_name(from, name);
		if (!same) {
			lp_error("BPF map %s of %s has no counterpart", name, user);
			return -1;
		}
		if (bpf_map__reuse_fd(map, bpf_map__fd(same)) != 0) {
			lp_error("cannot share BPF map %s with %s: %s", name, user,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}
