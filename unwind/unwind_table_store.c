/* SPDX-License-Identifier: MIT */
#include "unwind/unwind_table_store.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

struct stored_file {
	uint8_t id[ELF_ID_MAX];
	size_t id_len;
	bool has_table;
};

struct table_store {
	struct table_store_maps maps;
	struct stored_file *files;   /* index = file id */
	uint32_t file_count;
	uint32_t *rule_slots;        /* open addressing: rule id + 1, 0 = empty; 2 * max_rules slots */
	size_t rule_slot_count;
	struct table_store_stats stats;
	bool warned_full;
};

struct table_store *table_store_new(const struct table_store_maps *maps)
{
	struct table_store *store = calloc(1, sizeof(*store));

	if (!store)
		return NULL;
	store->maps = *maps;
	store->files = calloc(MAX_FILES, sizeof(*store->files));
	store->rule_slot_count = (size_t)maps->max_rules * 2;
	store->rule_slots = calloc(store->rule_slot_count, sizeof(*store->rule_slots));
	if (!store->files || !store->rule_slots || maps->max_rules == 0) {
		table_store_free(store);
		return NULL;
	}
	/* Rule 0 is the gap rule: rows with rule_id 0 mean "no unwind information here". */
	memset(&store->maps.rules[UNWIND_RULE_GAP], 0, sizeof(struct unwind_rule));
	store->maps.rules[UNWIND_RULE_GAP].cfa_type = CFA_GAP;
	store->stats.rules_used = 1;
	return store;
}

void table_store_free(struct table_store *store)
{
	if (!store)
		return;
	free(store->files);
	free(store->rule_slots);
	free(store);
}

static uint64_t hash_rule(const struct unwind_rule *rule)
{
	const unsigned char *bytes = (const unsigned char *)rule;
	uint64_t hash = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < sizeof(*rule); i++)
		hash = (hash ^ bytes[i]) * 0x100000001b3ull;
	return hash;
}

/* The callee-saved registers a rule changes in the caller (struct unwind_rule, saved_regs). */
static uint8_t saved_regs_of(const struct unwind_rule *rule)
{
	uint8_t bits = 0;

	for (unsigned i = 0; i < SREG_RA; i++)
		if (rule->reg_off[i] != REG_SAME || (rule->rbp_based & (1u << i)))
			bits |= (uint8_t)(1u << i);
	return bits;
}

/* The id of rule in the shared rules array, adding it if new; -ENOSPC when the array is full. */
static int64_t intern_rule(struct table_store *store, const struct unwind_rule *rule)
{
	struct unwind_rule clean = *rule; /* padding zeroed so equal rules compare and hash equal */

	clean.saved_regs = saved_regs_of(rule);
	clean.pad2 = 0;
	if (clean.cfa_type == CFA_GAP)
		return UNWIND_RULE_GAP;
	size_t slot = hash_rule(&clean) % store->rule_slot_count;
	for (size_t probes = 0; probes < store->rule_slot_count; probes++) {
		uint32_t entry = store->rule_slots[slot];

		if (entry == 0) {
			if (store->stats.rules_used >= store->maps.max_rules)
				return -ENOSPC;
			uint32_t id = store->stats.rules_used++;
			store->maps.rules[id] = clean;
			store->rule_slots[slot] = id + 1;
			return id;
		}
		if (memcmp(&store->maps.rules[entry - 1], &clean, sizeof(clean)) == 0)
			return entry - 1;
		slot = (slot + 1) % store->rule_slot_count;
	}
	return -ENOSPC;
}

static size_t table_page_count(const struct cfi_table *table)
{
	if (table->count == 0)
		return 0;
	uint64_t span = table->rows[table->count - 1].pc - table->rows[0].pc;
	return (size_t)(span >> UNWIND_PAGE_SHIFT) + 1;
}

/* The index of the row in effect at pc, moving forward from `row`. */
static size_t row_at(const struct cfi_table *table, size_t row, uint64_t pc)
{
	while (row + 1 < table->count && table->rows[row + 1].pc <= pc)
		row++;
	return row;
}

/* The page index of a sorted table, as the BPF side uses it: fills index[0..pages); returns the
 * number of pages, or 0 when empty or more than max_entries. */
static size_t table_page_index(const struct cfi_table *table, struct unwind_page *index,
			       size_t max_entries)
{
	size_t pages = table_page_count(table);
	size_t row = 0;

	if (pages == 0 || pages > max_entries)
		return 0;
	uint64_t base = table->rows[0].pc;
	for (size_t page = 0; page < pages; page++) {
		uint64_t page_pc = base + ((uint64_t)page << UNWIND_PAGE_SHIFT);

		row = row_at(table, row, page_pc);
		index[page].first = (uint32_t)row;
		index[page].last = (uint32_t)row_at(table, row, page_pc + (1u << UNWIND_PAGE_SHIFT) - 1);
	}
	return pages;
}

static void warn_full_once(struct table_store *store, const char *what, const char *name)
{
	if (store->warned_full)
		return;
	store->warned_full = true;
	lp_warn("unwind %s full: no table for %s and later files (their stacks end there)", what, name);
}

/* Copy a compiled table into the shared arrays and publish it in unwind_files. */
static int upload_table(struct table_store *store, const struct cfi_table *table, uint32_t file_id,
			const char *name)
{
	uint32_t row_start = store->stats.rows_used, page_start = store->stats.pages_used;
	size_t page_entries = table_page_count(table);

	if (table->rows[table->count - 1].pc - table->rows[0].pc > UINT32_MAX) {
		lp_warn("%s: text larger than 4 GiB, no unwind table", name);
		return -EFBIG;
	}
	if (table->count > store->maps.max_rows - row_start) {
		warn_full_once(store, "row table", name);
		return -ENOSPC;
	}
	if (page_entries > store->maps.max_pages - page_start) {
		warn_full_once(store, "page index", name);
		return -ENOSPC;
	}
	for (size_t i = 0; i < table->count; i++) {
		int64_t rule_id = intern_rule(store, &table->rows[i].rule);

		if (rule_id < 0) {
			warn_full_once(store, "rule table", name);
			return (int)rule_id;
		}
		store->maps.rows[row_start + i] = (struct unwind_row){
			.pc_off = (uint32_t)(table->rows[i].pc - table->rows[0].pc),
			.rule_id = (uint32_t)rule_id,
		};
	}
	table_page_index(table, store->maps.pages + page_start, page_entries);

	struct unwind_file entry = {
		.text_start = table->rows[0].pc,
		.text_end = table->rows[table->count - 1].pc,
		.row_start = row_start,
		.row_count = (uint32_t)table->count,
		.page_start = page_start,
		.page_count = (uint32_t)page_entries,
		.flags = FILE_LOADED,
	};
	/* Rows and pages are in place before the entry that makes the BPF side look at them. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (bpf_map_update_elem(store->maps.files_fd, &file_id, &entry, BPF_ANY) != 0) {
		int err = -errno;
		lp_warn("%s: cannot publish unwind table: %s", name, strerror(-err));
		return err;
	}
	store->stats.rows_used += (uint32_t)table->count;
	store->stats.pages_used += (uint32_t)page_entries;
	return 0;
}

int table_store_find(const struct table_store *store, const struct elf_image *img)
{
	for (uint32_t i = 0; i < store->file_count; i++) {
		const struct stored_file *f = &store->files[i];

		if (f->id_len == img->id_len && memcmp(f->id, img->id, img->id_len) == 0)
			return (int)i;
	}
	return -1;
}

int table_store_add(struct table_store *store, const struct elf_image *img,
		    const struct cfi_table *table, const char *name, uint32_t *file_id)
{
	if (store->file_count >= MAX_FILES)
		return -ENOSPC;

	uint32_t id = store->file_count++;
	struct stored_file *f = &store->files[id];

	memcpy(f->id, img->id, img->id_len);
	f->id_len = img->id_len;
	f->has_table = table && table->count > 0 && upload_table(store, table, id, name) == 0;
	store->stats.files++;
	if (!f->has_table)
		store->stats.files_without_table++;
	*file_id = id;
	return 0;
}

bool table_store_has_table(const struct table_store *store, uint32_t file_id)
{
	return file_id < store->file_count && store->files[file_id].has_table;
}

struct table_store_stats table_store_stats(const struct table_store *store)
{
	return store->stats;
}
