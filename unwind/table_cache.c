/* SPDX-License-Identifier: MIT */
#include "unwind/table_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/whole_file.h"
#include "unwind/frame_sections.h"

#define ENTRY_MAGIC "LPUNWTB1"
#define TEMP_PREFIX ".tmp-"
#define STALE_TEMP_SECONDS 600 /* a temporary file this old was left by a run that died */
#define MAX_ENTRY_ROWS (1u << 24)
#define MAX_SCANNED_ENTRIES (8u * TABLE_CACHE_MAX_FILES)

bool table_cache_usable(const struct table_cache *c)
{
	return c->dir_fd >= 0;
}

static void say_unusable(const char *dir, bool say, const char *why)
{
	if (say)
		lp_warn("table cache %s: %s: tables are built at every run", dir, why);
	else
		lp_debug("table cache %s: %s: not used", dir, why);
}

/* A directory only this user can write to: else another user could plant tables. */
static int open_private_dir(const char *dir, bool say)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		say_unusable(dir, say, strerror(errno));
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		say_unusable(dir, say, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		say_unusable(dir, say, "not a directory of this user that only it can write to");
		close(fd);
		return -1;
	}
	return fd;
}

void table_cache_open(struct table_cache *c, const char *dir, const uint8_t *builder,
		      size_t builder_len, bool say)
{
	struct content_hash h;

	*c = (struct table_cache){.dir_fd = -1, .max_files = TABLE_CACHE_MAX_FILES,
				  .max_bytes = TABLE_CACHE_MAX_BYTES};
	content_hash_init(&h);
	content_hash_update(&h, ENTRY_MAGIC, sizeof(ENTRY_MAGIC));
	content_hash_update(&h, builder, builder ? builder_len : 0);
	content_hash_final(&h, c->builder);
	if (!dir || !builder || builder_len == 0)
		return;
	c->dir = strdup(dir);
	if (c->dir)
		c->dir_fd = open_private_dir(dir, say);
}

void table_cache_close(struct table_cache *c)
{
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	free(c->dir);
	*c = (struct table_cache){.dir_fd = -1};
}

static void hash_u64(struct content_hash *h, uint64_t v)
{
	uint8_t le[8];

	for (unsigned i = 0; i < 8; i++)
		le[i] = (uint8_t)(v >> (8u * i));
	content_hash_update(h, le, sizeof(le));
}

/* What cfi_table_build reads of a file (unwind/cfi_compile.c): its ELF class, byte order and
 * machine, its loadable segments (FDEs outside executable ones are dropped), and its call frame
 * sections (unwind/frame_sections.c). */
int table_cache_key(const struct table_cache *c, const struct elf_image *img,
		    uint8_t key[CONTENT_HASH_SIZE])
{
	struct content_hash h;
	struct cfi_problem ignored; /* a damaged file's table is not kept: its key is never used */
	struct frame_object fo;
	GElf_Ehdr ehdr;

	if (!img->elf || !gelf_getehdr(img->elf, &ehdr))
		return -ENOEXEC;
	content_hash_init(&h);
	content_hash_update(&h, c->builder, sizeof(c->builder));
	hash_u64(&h, ehdr.e_ident[EI_CLASS]);
	hash_u64(&h, ehdr.e_ident[EI_DATA]);
	hash_u64(&h, ehdr.e_machine);
	hash_u64(&h, img->load_count);
	for (size_t i = 0; i < img->load_count; i++) {
		const struct elf_segment *s = &img->loads[i];

		hash_u64(&h, s->vaddr);
		hash_u64(&h, s->memsz);
		hash_u64(&h, s->offset);
		hash_u64(&h, s->filesz);
		hash_u64(&h, s->flags);
	}
	cfi_problem_init(&ignored, img->name);
	frame_object_collect(&fo, img, &ignored);
	for (unsigned src = 0; src < SRC_COUNT; src++) {
		const struct frame_section *s = &fo.sections[fo.index_of[src]];

		hash_u64(&h, fo.index_of[src] ? s->addr : 0);
		hash_u64(&h, fo.index_of[src] ? s->size : 0);
		if (fo.index_of[src] && s->data)
			content_hash_update(&h, s->data, s->size);
	}
	frame_object_free(&fo);
	content_hash_final(&h, key);
	return 0;
}

void table_cache_entry_name(const uint8_t key[CONTENT_HASH_SIZE],
			    char name[TABLE_CACHE_NAME_SIZE])
{
	for (unsigned i = 0; i < CONTENT_HASH_SIZE; i++)
		snprintf(name + 2 * i, 3, "%02x", key[i]);
	snprintf(name + 2 * CONTENT_HASH_SIZE, TABLE_CACHE_NAME_SIZE - 2 * CONTENT_HASH_SIZE, "%s",
		 TABLE_CACHE_SUFFIX);
}

/* len bytes at offset at, or -EIO (an entry shorter than it said, or unreadable). */
static int read_all(int fd, void *buf, size_t len, off_t at)
{
	for (size_t done = 0; done < len;) {
		ssize_t got = pread_retrying(fd, (char *)buf + done, len - done, at + (off_t)done);

		if (got <= 0)
			return -EIO;
		done += (size_t)got;
	}
	return 0;
}

static bool header_fits(const struct table_cache_entry *hd,
			const uint8_t key[CONTENT_HASH_SIZE], uint64_t file_size)
{
	if (memcmp(hd->magic, ENTRY_MAGIC, sizeof(hd->magic)) != 0 ||
	    memcmp(hd->key, key, CONTENT_HASH_SIZE) != 0 ||
	    hd->row_size != sizeof(struct cfi_row) ||
	    hd->row_count > MAX_ENTRY_ROWS || hd->function_count > MAX_ENTRY_ROWS)
		return false;
	return file_size == sizeof(*hd) + hd->row_count * sizeof(struct cfi_row) +
				    hd->function_count * sizeof(uint64_t);
}

/* What the table's users rely on: rows sorted by pc (binary searches), rules the BPF unwinder
 * knows (it checks them too), function starts sorted. */
static bool table_is_sound(const struct cfi_table *t)
{
	for (size_t i = 0; i < t->count; i++) {
		const struct unwind_rule *r = &t->rows[i].rule;

		if ((i > 0 && t->rows[i].pc <= t->rows[i - 1].pc) || r->cfa_type > CFA_UNSUPPORTED)
			return false;
	}
	for (size_t i = 1; i < t->function_count; i++)
		if (t->function_starts[i] < t->function_starts[i - 1])
			return false;
	return true;
}

static void payload_checksum(const struct cfi_table *t, uint8_t out[CONTENT_HASH_SIZE])
{
	struct content_hash h;

	content_hash_init(&h);
	if (t->count)
		content_hash_update(&h, t->rows, t->count * sizeof(*t->rows));
	if (t->function_count)
		content_hash_update(&h, t->function_starts,
				    t->function_count * sizeof(*t->function_starts));
	content_hash_final(&h, out);
}

/* The entry open on fd into *out: 0, or -EINVAL when it is not a sound entry for key. */
static int read_entry(int fd, const uint8_t key[CONTENT_HASH_SIZE], struct cfi_table *out)
{
	struct table_cache_entry hd;
	struct stat st;
	uint8_t checksum[CONTENT_HASH_SIZE];

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < sizeof(hd) ||
	    read_all(fd, &hd, sizeof(hd), 0) != 0 || !header_fits(&hd, key, (uint64_t)st.st_size))
		return -EINVAL;
	*out = (struct cfi_table){
		.rows = malloc(hd.row_count ? hd.row_count * sizeof(*out->rows) : 1),
		.count = hd.row_count,
		.capacity = hd.row_count,
		.function_starts = malloc(hd.function_count ? hd.function_count * sizeof(uint64_t)
							    : 1),
		.function_count = hd.function_count,
		.stats = {.fdes = hd.fdes, .unsupported_rows = hd.unsupported_rows,
			  .debug_frame_fdes = hd.debug_frame_fdes},
	};
	off_t functions_at = (off_t)(sizeof(hd) + hd.row_count * sizeof(*out->rows));
	if (!out->rows || !out->function_starts ||
	    read_all(fd, out->rows, out->count * sizeof(*out->rows), sizeof(hd)) != 0 ||
	    read_all(fd, out->function_starts, out->function_count * sizeof(uint64_t),
		     functions_at) != 0)
		goto bad;
	payload_checksum(out, checksum);
	if (memcmp(checksum, hd.checksum, sizeof(checksum)) != 0 || !table_is_sound(out))
		goto bad;
	return 0;
bad:
	cfi_table_free(out);
	return -EINVAL;
}

int table_cache_load(struct table_cache *c, const uint8_t key[CONTENT_HASH_SIZE],
		     struct cfi_table *out)
{
	char name[TABLE_CACHE_NAME_SIZE];

	memset(out, 0, sizeof(*out));
	if (c->dir_fd < 0)
		return -ENOENT;
	table_cache_entry_name(key, name);
	int fd = openat(c->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	int rc = read_entry(fd, key, out);
	if (rc == 0) {
		futimens(fd, NULL); /* its age is the time since it was last used */
		c->hits++;
	}
	close(fd);
	if (rc == 0)
		return 0;
	if (unlinkat(c->dir_fd, name, 0) == 0) {
		lp_debug("table cache %s: entry %s is damaged: deleted", c->dir, name);
		c->dropped++;
	}
	return -ENOENT;
}

struct cached_entry {
	char name[64];
	uint64_t bytes;
	struct timespec used; /* mtime: written, or last read */
};

static int older_first(const void *a, const void *b)
{
	const struct timespec *x = &((const struct cached_entry *)a)->used;
	const struct timespec *y = &((const struct cached_entry *)b)->used;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	return (x->tv_nsec > y->tv_nsec) - (x->tv_nsec < y->tv_nsec);
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* The entries of the directory (at most MAX_SCANNED_ENTRIES), and temporary files a dead run
 * left deleted. */
static int scan_entries(struct table_cache *c, struct cached_entry **out, size_t *count)
{
	size_t capacity = 0;
	int fd = openat(c->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	time_t now = time(NULL);

	*out = NULL;
	*count = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d)) && *count < MAX_SCANNED_ENTRIES) {
		struct stat st;
		struct cached_entry e = {0};

		if (fstatat(c->dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (strncmp(de->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) == 0) {
			if (now - st.st_mtime > STALE_TEMP_SECONDS)
				unlinkat(c->dir_fd, de->d_name, 0);
			continue;
		}
		if (!has_suffix(de->d_name, TABLE_CACHE_SUFFIX) ||
		    strlen(de->d_name) >= sizeof(e.name))
			continue;
		snprintf(e.name, sizeof(e.name), "%s", de->d_name);
		e.bytes = (uint64_t)st.st_size;
		e.used = st.st_mtim;
		if (grow_array_append(*out, *count, capacity, 64, &e) != 0)
			break;
	}
	closedir(d);
	return 0;
}

/* An entry of added bytes was written: the least recently used entries go until at most
 * max_files and max_bytes are left. The directory is scanned at the first entry a run writes,
 * then only when what it held then plus what the run added goes beyond a bound: a cold run that
 * compiles many tables does not list the directory for each. */
static void keep_within_bounds(struct table_cache *c, uint64_t added)
{
	struct cached_entry *entries;
	size_t count, left;
	uint64_t bytes = 0;

	if (c->held_known) {
		c->held_files++;
		c->held_bytes += added;
		if (c->held_files <= c->max_files && c->held_bytes <= c->max_bytes)
			return;
	}
	if (scan_entries(c, &entries, &count) != 0)
		return;
	for (size_t i = 0; i < count; i++)
		bytes += entries[i].bytes;
	qsort(entries, count, sizeof(*entries), older_first);
	left = count;
	for (size_t i = 0; i < count && (left > c->max_files || bytes > c->max_bytes); i++) {
		if (unlinkat(c->dir_fd, entries[i].name, 0) == 0) {
			bytes -= entries[i].bytes;
			left--;
		}
	}
	free(entries);
	c->held_known = true;
	c->held_files = left;
	c->held_bytes = bytes;
}

static int write_entry(int fd, const uint8_t key[CONTENT_HASH_SIZE], const struct cfi_table *t)
{
	struct table_cache_entry hd = {
		.magic = ENTRY_MAGIC,
		.row_size = sizeof(struct cfi_row),
		.row_count = t->count,
		.function_count = t->function_count,
		.fdes = t->stats.fdes,
		.unsupported_rows = t->stats.unsupported_rows,
		.debug_frame_fdes = t->stats.debug_frame_fdes,
	};
	int rc;

	memcpy(hd.key, key, CONTENT_HASH_SIZE);
	payload_checksum(t, hd.checksum);
	rc = write_whole_fd(fd, &hd, sizeof(hd));
	if (rc == 0 && t->count)
		rc = write_whole_fd(fd, t->rows, t->count * sizeof(*t->rows));
	if (rc == 0 && t->function_count)
		rc = write_whole_fd(fd, t->function_starts, t->function_count * sizeof(uint64_t));
	return rc;
}

int table_cache_store(struct table_cache *c, const uint8_t key[CONTENT_HASH_SIZE],
		      const struct cfi_table *table)
{
	char name[TABLE_CACHE_NAME_SIZE], temp[64];

	if (c->dir_fd < 0 || table->stats.partial || table->count > MAX_ENTRY_ROWS ||
	    table->function_count > MAX_ENTRY_ROWS)
		return -EINVAL;
	table_cache_entry_name(key, name);
	snprintf(temp, sizeof(temp), TEMP_PREFIX "%d-%u", (int)getpid(), c->stored + c->failed);
	int fd = openat(c->dir_fd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			0600);
	if (fd < 0)
		return -errno;
	int rc = write_entry(fd, key, table);
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(c->dir_fd, temp, c->dir_fd, name) != 0)
		rc = -errno;
	if (rc != 0) {
		unlinkat(c->dir_fd, temp, 0);
		c->failed++;
		lp_debug("table cache %s: cannot keep a table: %s", c->dir, strerror(-rc));
		return rc;
	}
	c->stored++;
	keep_within_bounds(c, sizeof(struct table_cache_entry) +
				      table->count * sizeof(*table->rows) +
				      table->function_count * sizeof(uint64_t));
	return 0;
}
