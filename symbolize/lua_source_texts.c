/* SPDX-License-Identifier: MIT */
/* lua_source_texts.c - the source texts function names are read from: a file as the target sees
 * it (proc/process_root.h) or a string chunk's own text, split into lines, cached by identity
 * within MAX_TEXT_BYTES (oldest evicted first; a single larger text is still used once). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fnv1a.h"
#include "lib/whole_file.h"
#include "proc/process_root.h"
#include "symbolize/lua_symbolize_internal.h"

struct text_key {
	uint64_t kind; /* 1 file (dev, inode, size, mtime s, ns), 2 string chunk */
	uint64_t v[5]; /* 2: pid, TString address, length, FNV-1a of the first bytes */
};

struct source_text {
	struct source_text *hnext; /* bucket chain */
	struct source_text *newer; /* FIFO, oldest first */
	struct text_key key;
	char *data;
	struct lua_source_lines lines;
	size_t cost;
};

static size_t text_bucket(const struct text_key *key)
{
	uint64_t h = key->kind * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 5; i++)
		h = (h ^ key->v[i]) * 0xff51afd7ed558ccdull;
	return (size_t)(h >> 32) % TEXT_BUCKETS;
}

static struct source_text *text_find(struct lua_symbolizer *ls, const struct text_key *key)
{
	for (struct source_text *t = ls->text_buckets[text_bucket(key)]; t; t = t->hnext)
		if (memcmp(&t->key, key, sizeof(*key)) == 0)
			return t;
	return NULL;
}

static void text_free(struct source_text *t)
{
	lua_source_lines_free(&t->lines);
	free(t->data);
	free(t);
}

static void text_evict_oldest(struct lua_symbolizer *ls)
{
	struct source_text *t = ls->oldest;
	struct source_text **link = &ls->text_buckets[text_bucket(&t->key)];
	while (*link != t)
		link = &(*link)->hnext;
	*link = t->hnext;
	ls->oldest = t->newer;
	if (!ls->oldest)
		ls->newest = NULL;
	ls->text_bytes -= t->cost;
	text_free(t);
}

/* Takes data (malloc()ed, len bytes); the cached text or NULL (-ENOMEM in *err; data freed). */
static struct source_text *text_add(struct lua_symbolizer *ls, const struct text_key *key,
				    char *data, size_t len, int *err)
{
	struct source_text *t = calloc(1, sizeof(*t));
	if (!t) {
		free(data);
		*err = -ENOMEM;
		return NULL;
	}
	t->key = *key;
	t->data = data;
	int rc = lua_source_lines_init(&t->lines, data, len);
	if (rc < 0) {
		text_free(t);
		*err = rc;
		return NULL;
	}
	t->cost = sizeof(*t) + len + (size_t)t->lines.count * sizeof(uint32_t);
	while (ls->oldest && ls->text_bytes + t->cost > MAX_TEXT_BYTES)
		text_evict_oldest(ls);
	size_t b = text_bucket(key);
	t->hnext = ls->text_buckets[b];
	ls->text_buckets[b] = t;
	if (ls->newest)
		ls->newest->newer = t;
	else
		ls->oldest = t;
	ls->newest = t;
	ls->text_bytes += t->cost;
	return t;
}

/* The text of file `path` as process pid sees it (proc/process_root.h: inside its root, only a
 * regular file); NULL when it cannot be read (or -ENOMEM). */
static struct source_text *file_text(struct lua_symbolizer *ls, pid_t pid, const char *path,
				     int *err)
{
	struct stat st;
	int fd = process_open_regular(pid, path, &st);
	if (fd < 0) {
		if (fd == -ENOMEM)
			*err = fd;
		return NULL;
	}
	struct source_text *t = NULL;
	if (st.st_size < 0 || st.st_size > MAX_SOURCE_BYTES)
		goto out;
	struct text_key key = {1,
			       {(uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
				(uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec}};
	t = text_find(ls, &key);
	if (t)
		goto out;
	char *data = NULL;
	size_t len = 0;
	int rc = read_whole_fd(fd, MAX_SOURCE_BYTES, &data, &len);
	if (rc == -ENOMEM)
		*err = rc;
	if (rc == 0)
		t = text_add(ls, &key, data, len, err);
out:
	(void)close(fd); /* read-only */
	return t;
}

/* A string chunk's own text (its first MAX_SOURCE_BYTES); NULL when unreadable (or -ENOMEM). */
static struct source_text *string_text(struct lua_symbolizer *ls, int fd, pid_t pid,
				       const struct source_str *src, int *err)
{
	uint64_t hash = fnv1a_64(FNV1A_64_START, src->head, src->head_len);
	struct text_key key = {2, {(uint64_t)pid, src->addr, src->len, hash, 0}};
	struct source_text *t = text_find(ls, &key);
	if (t)
		return t;
	size_t len = src->len < MAX_SOURCE_BYTES ? (size_t)src->len : MAX_SOURCE_BYTES;
	char *data = malloc(len ? len : 1);
	if (!data) {
		*err = -ENOMEM;
		return NULL;
	}
	if (!remote_read(fd, src->contents, data, len)) {
		free(data);
		return NULL;
	}
	return text_add(ls, &key, data, len, err);
}

/* The text a proto's source names: a file for `@path`, the chunk itself for a string chunk. */
static struct source_text *source_text_of(struct lua_symbolizer *ls, int fd, pid_t pid,
					  const struct source_str *src, int *err)
{
	if (!src->head || src->len == 0)
		return NULL;
	if (src->head[0] == '=')
		return NULL;
	if (src->head[0] != '@')
		return string_text(ls, fd, pid, src, err);
	bool whole = src->len == src->head_len && memchr(src->head, '\0', src->head_len) == NULL;
	return whole && src->head_len > 1 ? file_text(ls, pid, src->head + 1, err) : NULL;
}

const struct lua_source_lines *source_lines_of(struct lua_symbolizer *ls, int fd, pid_t pid,
					       const struct source_str *src, int *err)
{
	struct source_text *t = source_text_of(ls, fd, pid, src, err);
	return t ? &t->lines : NULL;
}

void source_texts_free(struct lua_symbolizer *ls)
{
	while (ls->oldest)
		text_evict_oldest(ls);
}
