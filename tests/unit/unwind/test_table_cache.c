/* SPDX-License-Identifier: MIT */
/* test_table_cache.c - unwind/table_cache.c on the table of a real libc: a kept table comes back
 * identical; the key follows the call frame bytes and the builder, not the build-id; damaged
 * entries (bit flip, truncation, lying header, unsorted rows under a valid checksum) are refused
 * and deleted; tables built from damaged CFI are not kept; the least recently used entries go
 * beyond the bounds; temporary files of dead runs are cleaned; unsafe directories are not used.
 *
 *   test_table_cache LIBC_PATH WORK_DIR MIXED_CFI_FIXTURE (tests/cmake/cfi_compile.cmake) */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "tests/unit/support/test_check.h"
#include "tests/unit/support/test_files.h"
#include "unwind/table_cache.h"

static const char *work_dir;
static char path[4096];

static const char *in_work(const char *name)
{
	snprintf(path, sizeof(path), "%s/%s", work_dir, name);
	return path;
}

static int open_image(const char *file, struct elf_image *img)
{
	int rc = elf_image_open(img, file);

	CHECK(rc == 0, "%s does not open: %d", file, rc);
	return rc;
}

static bool same_table(const struct cfi_table *a, const struct cfi_table *b)
{
	return a->count == b->count && a->function_count == b->function_count &&
	       memcmp(a->rows, b->rows, a->count * sizeof(*a->rows)) == 0 &&
	       memcmp(a->function_starts, b->function_starts,
		      a->function_count * sizeof(*a->function_starts)) == 0 &&
	       a->stats.fdes == b->stats.fdes &&
	       a->stats.unsupported_rows == b->stats.unsupported_rows &&
	       a->stats.debug_frame_fdes == b->stats.debug_frame_fdes;
}

/* A fresh, private cache directory under the work dir. */
static void fresh_cache(struct table_cache *c, const char *name, const char *builder)
{
	char command[4200];

	snprintf(command, sizeof(command), "rm -rf '%s'", in_work(name));
	CHECK(system(command) == 0, "cannot empty %s", path);
	table_cache_open(c, in_work(name), (const uint8_t *)builder, strlen(builder), true);
	CHECK(table_cache_usable(c), "a fresh private directory %s is not usable", path);
}

static const char *entry_path(const struct table_cache *c, const uint8_t key[CONTENT_HASH_SIZE])
{
	char name[TABLE_CACHE_NAME_SIZE];

	table_cache_entry_name(key, name);
	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	return path;
}

static void round_trip(const char *libc, const struct cfi_table *built)
{
	struct table_cache c;
	struct elf_image img;
	struct cfi_table back;
	uint8_t key[CONTENT_HASH_SIZE];
	struct stat st;

	fresh_cache(&c, "round_trip", "builder A");
	if (open_image(libc, &img) != 0)
		return;
	CHECK(table_cache_key(&c, &img, key) == 0, "no key for libc");
	CHECK(table_cache_load(&c, key, &back) == -ENOENT, "an empty cache had libc's table");
	CHECK(table_cache_store(&c, key, built) == 0 && c.stored == 1, "libc's table not kept");
	CHECK(stat(entry_path(&c, key), &st) == 0 && (st.st_mode & 0777) == 0600,
	      "the entry %s is missing or not private (mode %o)", path, st.st_mode & 0777);
	CHECK(table_cache_load(&c, key, &back) == 0 && c.hits == 1, "libc's table not read back");
	CHECK(same_table(built, &back), "the table read back differs from the one kept (%zu rows "
	      "against %zu)", back.count, built->count);
	cfi_table_free(&back);
	elf_image_close(&img);
	table_cache_close(&c);
}

/* The key of the file at file under builder. */
static int key_of(const char *file, const char *builder, uint8_t key[CONTENT_HASH_SIZE])
{
	struct table_cache c;
	struct elf_image img;
	int rc;

	table_cache_open(&c, NULL, (const uint8_t *)builder, strlen(builder), false);
	if (open_image(file, &img) != 0)
		return -1;
	rc = table_cache_key(&c, &img, key);
	elf_image_close(&img);
	table_cache_close(&c);
	return rc;
}

/* Copies of libc that keep its build-id: one byte of .eh_frame changed (another key), one byte
 * outside every call frame section changed (the same key); and another builder. */
static void keys_follow_inputs(const char *libc, const struct blob *orig)
{
	uint8_t base[CONTENT_HASH_SIZE], other[CONTENT_HASH_SIZE];
	struct elf_image img;
	GElf_Shdr eh;
	uint8_t *copy = malloc(orig->size);

	if (!copy || open_image(libc, &img) != 0 || !elf_image_section(&img, ".eh_frame", &eh)) {
		CHECK(false, "libc's .eh_frame not found");
		free(copy);
		return;
	}
	elf_image_close(&img);
	CHECK(key_of(libc, "builder A", base) == 0, "no key");
	CHECK(key_of(libc, "builder B", other) == 0 && memcmp(base, other, sizeof(base)) != 0,
	      "another build of lua-perf reads the same entry");
	memcpy(copy, orig->data, orig->size);
	copy[eh.sh_offset + eh.sh_size / 2] ^= 0x40;
	if (blob_write_file(in_work("eh_changed.so"), copy, orig->size) == 0) {
		CHECK(key_of(path, "builder A", other) == 0 &&
			      memcmp(base, other, sizeof(base)) != 0,
		      "a changed .eh_frame under the same build-id has the same key");
	}
	memcpy(copy, orig->data, orig->size);
	copy[orig->size - 1] ^= 0x40; /* the section header string table or symbols: no CFI */
	if (blob_write_file(in_work("tail_changed.so"), copy, orig->size) == 0) {
		CHECK(key_of(path, "builder A", other) == 0 &&
			      memcmp(base, other, sizeof(base)) == 0,
		      "a change outside the call frame sections changed the key");
	}
	free(copy);
}

/* The entry of key, kept from built, then damaged by damage(): read as a miss, and deleted. */
static void refused_after(const char *what, const struct cfi_table *built,
			  void (*damage)(const char *entry))
{
	struct table_cache c;
	struct cfi_table back;
	uint8_t key[CONTENT_HASH_SIZE] = {1, 2, 3};
	struct stat st;

	fresh_cache(&c, "damaged", "builder A");
	CHECK(table_cache_store(&c, key, built) == 0, "%s: not kept", what);
	damage(entry_path(&c, key));
	CHECK(table_cache_load(&c, key, &back) == -ENOENT && back.count == 0 && !back.rows,
	      "%s: read as good", what);
	CHECK(stat(entry_path(&c, key), &st) != 0 && c.dropped == 1, "%s: not deleted", what);
	table_cache_close(&c);
}

static void patch(const char *entry, off_t at, const void *bytes, size_t len)
{
	int fd = open(entry, O_WRONLY);

	CHECK(fd >= 0 && pwrite(fd, bytes, len, at) == (ssize_t)len, "cannot patch %s", entry);
	if (fd >= 0)
		close(fd);
}

static void flip_payload_byte(const char *entry)
{
	struct stat st;
	uint8_t byte = 0x5a;

	if (stat(entry, &st) == 0)
		patch(entry, st.st_size / 2, &byte, 1);
}

static void truncate_entry(const char *entry)
{
	struct stat st;

	CHECK(stat(entry, &st) == 0 && truncate(entry, st.st_size - 8) == 0, "cannot truncate");
}

static void lie_about_rows(const char *entry)
{
	uint64_t huge = 1ull << 40;

	patch(entry, offsetof(struct table_cache_entry, row_count), &huge, sizeof(huge));
}

static void damaged_entries(const struct cfi_table *built)
{
	refused_after("a flipped payload byte", built, flip_payload_byte);
	refused_after("a truncated entry", built, truncate_entry);
	refused_after("a header claiming 2^40 rows", built, lie_about_rows);

	/* Unsorted rows under a checksum that matches them: only the table's own check sees it. */
	struct cfi_table swapped = *built;
	swapped.rows = malloc(built->count * sizeof(*built->rows));
	if (!swapped.rows || built->count < 2) {
		CHECK(false, "out of memory");
		free(swapped.rows);
		return;
	}
	memcpy(swapped.rows, built->rows, built->count * sizeof(*built->rows));
	swapped.rows[0] = built->rows[1];
	swapped.rows[1] = built->rows[0];
	struct table_cache c;
	struct cfi_table back;
	uint8_t key[CONTENT_HASH_SIZE] = {9};
	fresh_cache(&c, "unsorted", "builder A");
	CHECK(table_cache_store(&c, key, &swapped) == 0, "unsorted: not kept");
	CHECK(table_cache_load(&c, key, &back) == -ENOENT && c.dropped == 1,
	      "unsorted rows read as a good table");
	table_cache_close(&c);
	free(swapped.rows);
}

/* A file whose .debug_frame is garbage beside a good .eh_frame (the fixture cfi_fixture_mixed, its
 * .debug_frame overwritten): its table is built from the .eh_frame, with a warning, and such a
 * partial table is not kept. */
static void partial_not_kept(const char *mixed)
{
	struct elf_image img;
	struct blob file;
	struct cfi_table t;
	struct table_cache c;
	uint8_t key[CONTENT_HASH_SIZE] = {7};
	GElf_Shdr debug;

	if (blob_read_file(mixed, &file) != 0 || open_image(mixed, &img) != 0) {
		CHECK(false, "%s not read", mixed);
		return;
	}
	bool found = elf_image_section(&img, ".debug_frame", &debug) &&
		     debug.sh_offset + debug.sh_size <= file.size;
	elf_image_close(&img);
	CHECK(found, "%s has no .debug_frame", mixed);
	if (!found) {
		free(file.data);
		return;
	}
	memset(file.data + debug.sh_offset, 0xff, debug.sh_size);
	if (blob_write_file(in_work("partial.so"), file.data, file.size) == 0 &&
	    open_image(path, &img) == 0) {
		CHECK(cfi_table_build(&img, &t) == 0 && t.count > 0 && t.stats.partial,
		      "garbage .debug_frame beside a good .eh_frame: %zu rows, partial %d", t.count,
		      t.stats.partial);
		fresh_cache(&c, "partial", "builder A");
		CHECK(table_cache_store(&c, key, &t) == -EINVAL && c.stored == 0,
		      "a table built from damaged CFI was kept");
		table_cache_close(&c);
		cfi_table_free(&t);
		elf_image_close(&img);
	}
	free(file.data);
}

static void set_age(const char *file, time_t seconds_ago)
{
	struct timespec times[2] = {{.tv_sec = time(NULL) - seconds_ago},
				    {.tv_sec = time(NULL) - seconds_ago}};

	CHECK(utimensat(AT_FDCWD, file, times, 0) == 0, "cannot age %s", file);
}

static bool exists(const char *file)
{
	struct stat st;

	return stat(file, &st) == 0;
}

/* At most 3 entries: the least recently used go, and a read counts as a use. */
static void bounds(const struct cfi_table *built)
{
	struct table_cache c;
	struct cfi_table back;
	uint8_t keys[4][CONTENT_HASH_SIZE] = {{1}, {2}, {3}, {4}};
	char names[4][4200];

	fresh_cache(&c, "bounds", "builder A");
	c.max_files = 3;
	for (int i = 0; i < 3; i++) {
		CHECK(table_cache_store(&c, keys[i], built) == 0, "entry %d not kept", i);
		snprintf(names[i], sizeof(names[i]), "%s", entry_path(&c, keys[i]));
		set_age(names[i], 300 - 10 * i); /* 0 oldest */
	}
	CHECK(table_cache_load(&c, keys[0], &back) == 0, "entry 0 not read");
	cfi_table_free(&back);
	CHECK(table_cache_store(&c, keys[3], built) == 0, "entry 3 not kept");
	snprintf(names[3], sizeof(names[3]), "%s", entry_path(&c, keys[3]));
	CHECK(exists(names[0]) && !exists(names[1]) && exists(names[2]) && exists(names[3]),
	      "beyond 3 entries, the least recently used (1) should have gone alone: %d %d %d %d",
	      exists(names[0]), exists(names[1]), exists(names[2]), exists(names[3]));

	struct stat st;
	CHECK(stat(names[3], &st) == 0, "no entry 3");
	c.max_bytes = (uint64_t)st.st_size; /* room for one */
	uint8_t fifth[CONTENT_HASH_SIZE] = {5};
	CHECK(table_cache_store(&c, fifth, built) == 0, "entry 5 not kept");
	CHECK(!exists(names[0]) && !exists(names[2]) && !exists(names[3]) &&
		      exists(entry_path(&c, fifth)),
	      "with room for one entry, only the newest should be left");
	table_cache_close(&c);
}

static void stale_temporaries(const struct cfi_table *built)
{
	struct table_cache c;
	uint8_t key[CONTENT_HASH_SIZE] = {6};
	char stale[4200], fresh[4200];

	fresh_cache(&c, "temporaries", "builder A");
	snprintf(stale, sizeof(stale), "%s/.tmp-1-0", c.dir);
	snprintf(fresh, sizeof(fresh), "%s/.tmp-2-0", c.dir);
	CHECK(blob_write_file(stale, (const uint8_t *)"x", 1) == 0 &&
		      blob_write_file(fresh, (const uint8_t *)"x", 1) == 0, "cannot write");
	set_age(stale, 3600);
	CHECK(table_cache_store(&c, key, built) == 0, "not kept");
	CHECK(!exists(stale) && exists(fresh),
	      "a dead run's temporary file should go, a recent one (a run at work) stay");
	table_cache_close(&c);
}

static void unsafe_directories(const struct cfi_table *built)
{
	struct table_cache c;
	struct cfi_table back;
	uint8_t key[CONTENT_HASH_SIZE] = {8};
	char target[4200];

	fresh_cache(&c, "open_to_all", "builder A");
	table_cache_close(&c);
	CHECK(chmod(path, 0777) == 0, "chmod");
	table_cache_open(&c, path, (const uint8_t *)"b", 1, false);
	CHECK(!table_cache_usable(&c), "a directory anyone can write to is used");
	CHECK(table_cache_store(&c, key, built) != 0 && table_cache_load(&c, key, &back) == -ENOENT,
	      "an unusable cache keeps or reads tables");
	table_cache_close(&c);

	snprintf(target, sizeof(target), "%s", in_work("round_trip"));
	unlink(in_work("link"));
	CHECK(symlink(target, path) == 0, "symlink");
	table_cache_open(&c, path, (const uint8_t *)"b", 1, false);
	CHECK(!table_cache_usable(&c), "a symbolic link is followed to a cache directory");
	table_cache_close(&c);

	fresh_cache(&c, "not_mine", "builder A");
	table_cache_close(&c);
	CHECK(chown(path, 65534, 65534) == 0, "chown");
	table_cache_open(&c, path, (const uint8_t *)"b", 1, false);
	CHECK(!table_cache_usable(&c), "another user's directory is used");
	table_cache_close(&c);

	table_cache_open(&c, in_work("no/such/parent"), (const uint8_t *)"b", 1, false);
	CHECK(!table_cache_usable(&c), "a directory that cannot be made is used");
	table_cache_close(&c);
	table_cache_open(&c, NULL, (const uint8_t *)"b", 1, false);
	CHECK(!table_cache_usable(&c), "no directory, yet usable");
	table_cache_close(&c);
}

int main(int argc, char **argv)
{
	struct elf_image img;
	struct cfi_table built;
	struct blob libc;

	if (argc != 4) {
		fprintf(stderr, "usage: test_table_cache LIBC_PATH WORK_DIR MIXED_CFI_FIXTURE\n");
		return 2;
	}
	lp_set_log_level(LOG_QUIET); /* damaged copies warn; the verdict is the checks */
	work_dir = argv[2];
	if (mkdir(work_dir, 0700) != 0 && errno != EEXIST)
		return 1;
	if (blob_read_file(argv[1], &libc) != 0 || open_image(argv[1], &img) != 0)
		return 1;
	CHECK(cfi_table_build(&img, &built) == 0 && built.count > 1000 && !built.stats.partial,
	      "libc's table: %zu rows", built.count);
	elf_image_close(&img);

	round_trip(argv[1], &built);
	keys_follow_inputs(argv[1], &libc);
	damaged_entries(&built);
	partial_not_kept(argv[3]);
	bounds(&built);
	stale_temporaries(&built);
	unsafe_directories(&built);

	cfi_table_free(&built);
	free(libc.data);
	return check_finish("table cache");
}
