/* SPDX-License-Identifier: MIT */
/*
 * maps_ahead.h - a BPF object's maps created before its programs are loaded, so that the unwind
 * tables can be written into them while the kernel verifies the programs (a quarter of a second
 * of start-up on this machine, docs/benchmarks.md).
 */
#ifndef LUA_PERF_MAPS_AHEAD_H
#define LUA_PERF_MAPS_AHEAD_H

struct bpf_object;

/* Create every map of obj that libbpf would create at load (but its internal .rodata/.bss/.data
 * maps, which libbpf fills and freezes itself) and hand it to libbpf. A map keeps its name only
 * up to 15 characters (the kernel's BPF_OBJ_NAME_LEN, which bpf_map__reuse_fd adopts): a longer
 * name is refused here, so that finding a map by name keeps working. 0, or -1 (said). */
int create_maps_ahead(struct bpf_object *obj);

/* Every map of `to` but its internal ones and the one named `except` (NULL: none) becomes the
 * map of the same name in `from` (created). user names `to` in error lines. 0, or -1 (said). */
int share_maps(struct bpf_object *to, struct bpf_object *from, const char *except,
	       const char *user);

#endif
