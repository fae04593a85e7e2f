/* SPDX-License-Identifier: MIT */
/* fuzz_table_cache.c - reading an entry of the table cache (unwind/table_cache.c): the input is
 * the file found under an entry's name. Its key and checksum are set right first (an input that
 * is too short for a header is used as it is), so that what lies behind them is reached: the
 * header's counts against the file size, the rows' order, the rules' fields. Property: an entry is
 * refused and deleted, or gives a table whose rows are sorted by pc with known CFA types and whose
 * function starts are sorted. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_harness.h"
#include "tests/unit/support/test_files.h"
#include "unwind/table_cache.h"

static const uint8_t key[CONTENT_HASH_SIZE] = {0x5e, 0xed};
static struct table_cache cache;
static char entry[4200];

static void remove_cache(void)
{
	unlink(entry);
	if (cache.dir)
		rmdir(cache.dir);
	table_cache_close(&cache);
}

static void open_cache(void)
{
	char dir[] = "/tmp/lua-perf-fuzz-table-cache-XXXXXX";

	if (!mkdtemp(dir))
		abort();
	table_cache_open(&cache, dir, (const uint8_t *)"fuzz", 4, false);
	if (!table_cache_usable(&cache))
		abort();
	char name[TABLE_CACHE_NAME_SIZE];

	table_cache_entry_name(key, name);
	snprintf(entry, sizeof(entry), "%s/%s", dir, name);
	atexit(remove_cache);
}

static void check_table(const struct cfi_table *t)
{
	for (size_t i = 0; i < t->count; i++) {
		FUZZ_ASSERT(t->rows[i].rule.cfa_type <= CFA_UNSUPPORTED, "row %zu: CFA type %u", i,
			    t->rows[i].rule.cfa_type);
		FUZZ_ASSERT(i == 0 || t->rows[i].pc > t->rows[i - 1].pc, "row %zu out of order", i);
	}
	for (size_t i = 1; i < t->function_count; i++)
		FUZZ_ASSERT(t->function_starts[i] >= t->function_starts[i - 1],
			    "function start %zu out of order", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct table_cache_entry hd;
	struct cfi_table t;
	uint8_t *copy = malloc(size ? size : 1);

	if (!cache.dir)
		open_cache();
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (size >= sizeof(hd)) {
		struct content_hash h;

		content_hash_init(&h);
		content_hash_update(&h, copy + sizeof(hd), size - sizeof(hd));
		content_hash_final(&h, copy + offsetof(struct table_cache_entry, checksum));
		memcpy(copy + offsetof(struct table_cache_entry, key), key, sizeof(key));
	}
	if (blob_write_file(entry, copy, size) != 0)
		abort();
	free(copy);
	if (table_cache_load(&cache, key, &t) == 0) {
		check_table(&t);
		cfi_table_free(&t);
	} else {
		FUZZ_ASSERT(access(entry, F_OK) != 0, "a refused entry was left in the cache");
	}
	return 0;
}
