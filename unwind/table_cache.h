/* SPDX-License-Identifier: MIT */
/* table_cache.h - compiled unwind tables kept on disk between runs: the libdwarf work of a file
 * (most of start-up and of a dump) is done once per file, not once per run. An entry is named by
 * the hash of everything the compiled table depends on: the build of lua-perf that compiled it,
 * the file's ELF header fields and loadable segments, and the bytes of its call frame sections.
 * Another library with the same build-id, a file rewritten in place, a new lua-perf: each is a
 * different key, so nothing is ever invalidated by hand. Tables built from damaged CFI are not
 * kept (their warning is said again by each run that builds them).
 *
 * The directory must belong to lua-perf's user and be writable by nobody else; an entry is
 * written to a temporary file and renamed, and checked whole on reading (size, checksum, sorted
 * rows, rule fields): a bad entry is deleted and the table built again. At most
 * TABLE_CACHE_MAX_FILES entries and TABLE_CACHE_MAX_BYTES: the least recently used go first. */
#ifndef LUA_PERF_TABLE_CACHE_H
#define LUA_PERF_TABLE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/content_hash.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

#define TABLE_CACHE_MAX_FILES 1024
#define TABLE_CACHE_MAX_BYTES (512ull << 20)
#define TABLE_CACHE_DEFAULT_DIR "/var/cache/lua-perf"

/* An entry on disk: this header, then row_count struct cfi_row, then function_count uint64_t
 * function starts. Written and read whole by the same build of lua-perf (the key says which), so
 * in its own layout; row_size guards against reading another layout all the same. */
struct table_cache_entry {
	char magic[8];
	uint8_t key[CONTENT_HASH_SIZE];
	uint8_t checksum[CONTENT_HASH_SIZE]; /* content_hash of everything after the header */
	uint32_t row_size;
	uint32_t reserved;
	uint64_t row_count;
	uint64_t function_count;
	uint64_t fdes, unsupported_rows, debug_frame_fdes;
};

struct table_cache {
	int dir_fd;                      /* -1: no cache */
	char *dir;                       /* for messages */
	uint8_t builder[CONTENT_HASH_SIZE]; /* identity of the lua-perf that compiles */
	uint32_t max_files;              /* TABLE_CACHE_MAX_FILES (smaller in tests) */
	uint64_t max_bytes;
	uint32_t hits, stored, dropped;  /* dropped: bad entries deleted */
	uint32_t failed;                 /* tables that could not be kept */
	bool held_known;                 /* the directory was scanned by this run: */
	uint64_t held_files, held_bytes; /* what it held then, plus what was written since */
};

/* Use dir (created if missing, mode 0700) for tables compiled by the program whose identity is
 * builder (e.g. the hash of /proc/self/exe's build-id). dir NULL or unusable: c works as an
 * always empty cache; an unusable dir is said with lp_warn when `say` (asked for by the user),
 * with lp_debug otherwise. */
void table_cache_open(struct table_cache *c, const char *dir, const uint8_t *builder,
		      size_t builder_len, bool say);
void table_cache_close(struct table_cache *c);
bool table_cache_usable(const struct table_cache *c);

/* The key of img's table. 0, or -errno when it cannot be computed (the table is then built and
 * not kept). */
int table_cache_key(const struct table_cache *c, const struct elf_image *img,
		    uint8_t key[CONTENT_HASH_SIZE]);
/* 0 with *out filled (to free with cfi_table_free), or -ENOENT when there is no good entry. */
int table_cache_load(struct table_cache *c, const uint8_t key[CONTENT_HASH_SIZE],
		     struct cfi_table *out);
#define TABLE_CACHE_SUFFIX ".table"
#define TABLE_CACHE_NAME_SIZE (2 * CONTENT_HASH_SIZE + sizeof(TABLE_CACHE_SUFFIX))
/* The file name of key's entry in the directory: its hex, then ".table". */
void table_cache_entry_name(const uint8_t key[CONTENT_HASH_SIZE],
			    char name[TABLE_CACHE_NAME_SIZE]);
/* Keep table under key (not when it is partial). 0 or -errno; failing to keep is not an error
 * for the caller, only a slower next run. */
int table_cache_store(struct table_cache *c, const uint8_t key[CONTENT_HASH_SIZE],
		      const struct cfi_table *table);

#endif
