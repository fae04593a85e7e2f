/* SPDX-License-Identifier: MIT */
/* mapped_files.h - every file the targets map executable: its identity and unwind table (through
 * the table store), its load segments (to turn a mapping into a load bias), its display name and
 * its symbols. Turns a process's /proc/PID/maps into the BPF `proc_mappings` value. */
#ifndef LUA_PERF_MAPPED_FILES_H
#define LUA_PERF_MAPPED_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpf/abi/unwind_abi.h"
#include "proc/proc_maps.h"
#include "runtime/lua_runtime.h"
#include "symbolize/symbolize.h"
#include "unwind/table_cache.h"
#include "unwind/unwind_table_store.h"

struct mapped_file {
	char *name;                 /* path as the process sees it, or "[vdso]" */
	const char *basename;       /* into name */
	struct elf_segment *loads;
	size_t load_count;
	uint8_t build_id[ELF_ID_MAX]; /* NT_GNU_BUILD_ID, for the pprof output's mappings */
	size_t build_id_len;        /* 0: the file has none */
	struct symbol_table symbols;
	uint64_t *function_starts;  /* from the CFI: names unnamed code by its function's start */
	size_t function_count;
	dev_t dev;                  /* for the open-file cache; 0 for the vdso */
	ino_t ino;
	bool has_table;
	struct lua_runtime *lua;    /* the Lua VM in this file, or NULL */
	const char *lua_problem;    /* why a Lua VM here cannot be profiled (static string), or NULL */
};

struct file_identity {
	dev_t dev;
	ino_t ino;
};

struct mapped_files {
	struct table_store *store;
	struct table_cache cache;   /* compiled tables of earlier runs (none until opened) */
	int lua_interps_fd;         /* BPF array of struct lua_interp by file id */
	double build_seconds;       /* compiling tables, loading symbols, detecting Lua VMs */
	struct mapped_file *files;  /* index = file id from the table store */
	uint32_t count;
	uint32_t mappings_dropped;  /* beyond MAX_PROC_MAPPINGS in one process */
	/* Files that are no usable ELF file (warned about once): not opened again */
	struct file_identity *refused;
	size_t refused_count, refused_capacity;
};

int mapped_files_init(struct mapped_files *mf, struct table_store *store, int lua_interps_fd);
/* Take compiled tables from the directory dir and keep new ones there (table_cache.h), for this
 * build of lua-perf; say: why an unusable dir is not used goes to a warning. */
void mapped_files_open_cache(struct mapped_files *mf, const char *dir, bool say);
void mapped_files_free(struct mapped_files *mf);
/* Build the table of the ELF file at path (as this process sees it) ahead of pid mapping it:
 * `lua-perf -- CMD` prepares CMD's executable before CMD runs. 0 or -errno (not an ELF file...). */
int mapped_files_prepare(struct mapped_files *mf, pid_t pid, const char *path);
/* Fill *out (sorted executable mappings of pid) from maps, registering new files under the names
 * the process itself uses (a chroot'ed process's paths without its root directory). known_only:
 * the mappings of files not seen before are left out, and counted in *deferred, instead of
 * waiting for their tables: what is known can be published at once. */
int mapped_files_build_process(struct mapped_files *mf, pid_t pid, const struct proc_exec_maps *maps,
			       bool known_only, struct proc_mappings *out, size_t *deferred);
const struct mapped_file *mapped_files_get(const struct mapped_files *mf, uint32_t file_id);
/* The start of the function (FDE) holding addr, or addr itself when no FDE starts below it. */
uint64_t mapped_file_function_start(const struct mapped_file *f, uint64_t addr);
/* The first file of a process's mappings with a Lua VM (f->lua) or a Lua VM problem
 * (f->lua_problem), or NULL when it has neither. */
const struct mapped_file *mapped_files_lua_of(const struct mapped_files *mf,
					      const struct proc_mappings *pm);

#endif
