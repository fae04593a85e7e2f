/* SPDX-License-Identifier: MIT */
/* unwind_table_store.h - the unwind tables of every file in use, in the BPF maps that the unwinder
 * reads (bpf/abi/unwind_abi.h). A file is identified by its build-id (or content hash), so every
 * process mapping the same library shares one copy of its rows; rules are deduplicated over all
 * files. Rows, page index and rules are appended into mmap()ed BPF arrays; the file's entry in
 * `unwind_files` is written last, which publishes the table to the BPF program. */
#ifndef LUA_PERF_UNWIND_TABLE_STORE_H
#define LUA_PERF_UNWIND_TABLE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/abi/unwind_abi.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

struct table_store_maps {
	int files_fd;                /* BPF array of struct unwind_file, MAX_FILES entries */
	struct unwind_row *rows;     /* mmap of the rows array */
	uint32_t max_rows;
	struct unwind_page *pages;   /* mmap of the page index array */
	uint32_t max_pages;
	struct unwind_rule *rules;   /* mmap of the rules array */
	uint32_t max_rules;
};

struct table_store_stats {
	uint32_t files;              /* distinct files registered */
	uint32_t files_without_table;/* no CFI, or the table did not fit: see warnings */
	uint32_t rows_used;
	uint32_t pages_used;
	uint32_t rules_used;
};

struct table_store;

struct table_store *table_store_new(const struct table_store_maps *maps);
void table_store_free(struct table_store *store);

/* The id of a file already registered with img's identity (build-id or content hash), or -1. */
int table_store_find(const struct table_store *store, const struct elf_image *img);
/* Register img with its compiled table (NULL when it could not be built) and publish the table.
 * name is used in messages. Returns 0 or a negative errno (-ENOSPC: MAX_FILES reached). A file
 * whose table is missing or does not fit still gets an id (for symbolization);
 * table_store_has_table() is then false. */
int table_store_add(struct table_store *store, const struct elf_image *img,
		    const struct cfi_table *table, const char *name, uint32_t *file_id);
bool table_store_has_table(const struct table_store *store, uint32_t file_id);
struct table_store_stats table_store_stats(const struct table_store *store);

#endif
