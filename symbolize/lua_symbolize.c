/* SPDX-License-Identifier: MIT */
/* lua_symbolize.c - Proto pointers of a live process to (function, chunk, lines).
 *
 * The process is not trusted: every read goes through pread(/proc/PID/mem), is bounds-checked,
 * and any inconsistency makes the proto unreadable (NULL). Limits:
 *   - a Proto: 8-byte aligned, its header must carry the proto type tag, 1 <= sizecode <=
 *     MAX_CODE (16 Mi instructions), sizelineinfo 0 or sizecode, 5.4 sizeabslineinfo <= sizecode
 *     with strictly increasing in-range pcs, each marked ABSLINEINFO in lineinfo and no other,
 *     every line in [0, INT_MAX];
 *   - the source TString: the string type tag, length <= MAX_STRING_LEN (1 GiB); at most
 *     MAX_CHUNK_BYTES (4096) bytes of it are kept for the chunk name;
 *   - source text for names (a file, or a string chunk's own text): at most MAX_SOURCE_BYTES
 *     (16 MiB); texts are cached by identity (file: dev, inode, size, mtime; string chunk: pid,
 *     address, length, hash of its first bytes) within MAX_TEXT_BYTES (64 MiB, oldest evicted
 *     first; a single larger text is still used once);
 *   - the proto cache: at most MAX_PROTOS (1 Mi) entries and MAX_CACHE_BYTES (256 MiB) of entries,
 *     names, line arrays and tail-call indexes. A proto whose lines (tail calls) do not fit is
 *     kept without them; once an entry does not fit, the cache is full and unknown protos give
 *     NULL at once (cached ones still answer) until lua_symbolizer_forget makes room. Failures
 *     are cached too (per pid and address). Entries leave only with their process
 *     (lua_symbolizer_forget), so the returned pointers stay valid until then.
 *
 * Chunk names (struct lua_proto_info.chunk):
 *   - `@path` / `=name`: without the first byte; longer than 4096 bytes: the first 4096 and "...";
 *   - a string chunk (load("...")): `[string "<first line>"]`, the line cut at 40 bytes (on a
 *     UTF-8 character boundary), with "..." inside the quotes when anything was left out;
 *   - no source (5.3/5.4 stripped binary chunks) or an empty name: `?`.
 *   Control bytes (< 0x20, 0x7f) become '?'.
 * Function names: `main` for line_defined 0; otherwise from line line_defined of the source
 * (lua_source_names.h) - the file of an `@` chunk as the process sees it (proc/process_root.h:
 * absolute paths inside its root, relative ones from its current directory - now, not at load
 * time - symlinks and ".." never leaving the root), or the text of a string chunk; `=` chunks
 * have no source. `?` when nothing matches. */
#include "symbolize/lua_symbolize.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/lua_symbolize_internal.h"

#define INITIAL_BUCKETS 1024

struct proto_entry {
	struct proto_entry *next;
	pid_t pid;
	uint64_t proto;
	bool ok; /* false: a cached failure */
	size_t cost;
	struct lua_proto_info info;
};

/* ---- The proto cache. */

static size_t proto_bucket(pid_t pid, uint64_t proto, size_t nbuckets)
{
	uint64_t h = (proto ^ ((uint64_t)(uint32_t)pid << 48)) * 0x9e3779b97f4a7c15ull;
	h ^= h >> 29;
	return (size_t)h & (nbuckets - 1);
}

static struct proto_entry *proto_find(const struct lua_symbolizer *ls, pid_t pid, uint64_t proto)
{
	for (struct proto_entry *e = ls->buckets[proto_bucket(pid, proto, ls->nbuckets)]; e;
	     e = e->next)
		if (e->pid == pid && e->proto == proto)
			return e;
	return NULL;
}

static int proto_grow(struct lua_symbolizer *ls)
{
	size_t n = ls->nbuckets * 2;
	struct proto_entry **buckets = calloc(n, sizeof(*buckets));
	if (!buckets)
		return -ENOMEM;
	for (size_t i = 0; i < ls->nbuckets; i++) {
		for (struct proto_entry *e = ls->buckets[i], *next; e; e = next) {
			next = e->next;
			size_t b = proto_bucket(e->pid, e->proto, n);
			e->next = buckets[b];
			buckets[b] = e;
		}
	}
	free(ls->buckets);
	ls->buckets = buckets;
	ls->nbuckets = n;
	return 0;
}

static void info_clear(struct lua_proto_info *info)
{
	free(info->function);
	free(info->chunk);
	free(info->lines);
	free(info->tail_calls);
	memset(info, 0, sizeof(*info));
}

static void entry_free(struct proto_entry *e)
{
	info_clear(&e->info);
	free(e);
}

static bool cache_full(const struct lua_symbolizer *ls, size_t cost)
{
	return ls->full || ls->count >= MAX_PROTOS || ls->bytes + cost > MAX_CACHE_BYTES;
}

/* Inserts e (cost counted); false when the cache is full (e is not taken). The first refusal
 * closes the cache: later unknown protos are refused before any work is done for them. */
static bool proto_insert(struct lua_symbolizer *ls, struct proto_entry *e)
{
	if (cache_full(ls, e->cost)) {
		ls->full = true;
		return false;
	}
	if (ls->count >= ls->nbuckets && proto_grow(ls) < 0)
		return false;
	size_t b = proto_bucket(e->pid, e->proto, ls->nbuckets);
	e->next = ls->buckets[b];
	ls->buckets[b] = e;
	ls->count++;
	ls->bytes += e->cost;
	return true;
}

static bool pid_listed(pid_t pid, const pid_t *pids, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

void lua_symbolizer_forget(struct lua_symbolizer *ls, const pid_t *pids, size_t count)
{
	if (!ls || count == 0)
		return;
	for (size_t b = 0; b < ls->nbuckets; b++) {
		struct proto_entry **link = &ls->buckets[b];

		while (*link) {
			struct proto_entry *e = *link;

			if (!pid_listed(e->pid, pids, count)) {
				link = &e->next;
				continue;
			}
			*link = e->next;
			ls->count--;
			ls->bytes -= e->cost;
			entry_free(e);
		}
	}
	if (pid_listed(ls->mem_pid, pids, count))
		process_mem_close(ls);
	ls->full = false; /* room again for the protos of other processes */
}

/* Which VM a proto belongs to: one of the two is set. */
struct proto_vm {
	const struct lua_puc_version *puc;
	const struct luajit_runtime *jit;
};

static int read_proto_and_source(int fd, const struct proto_vm *vm, uint64_t proto,
				 struct raw_proto *rp, int32_t *numline, struct source_str *src)
{
	if (vm->jit) {
		if (!luajit_read_proto(fd, vm->jit, proto, rp, numline))
			return -EFAULT;
		return luajit_read_source(fd, vm->jit, rp->source, src);
	}
	if (!puc_read_proto(fd, vm->puc, proto, rp))
		return -EFAULT;
	return puc_read_source(fd, vm->puc, rp->source, src);
}

/* The proto's tail calls, kept when they fit in the cache beside what e holds already. */
static int read_tail_calls(struct lua_symbolizer *ls, int fd, const struct lua_puc_version *v,
			   const struct raw_proto *rp, struct proto_entry *e)
{
	struct lua_proto_info *info = &e->info;
	int err = puc_read_tail_calls(fd, v, rp, &info->tail_calls, &info->tail_call_count);
	size_t cost = (size_t)info->tail_call_count * sizeof(*info->tail_calls);

	if (err == 0 && ls->bytes + e->cost + cost > MAX_CACHE_BYTES) {
		free(info->tail_calls);
		info->tail_calls = NULL;
		info->tail_call_count = 0;
	}
	e->cost += (size_t)info->tail_call_count * sizeof(*info->tail_calls);
	return err;
}

/* Fills e->info; -EFAULT when the proto is unreadable, -ENOMEM. */
static int resolve(struct lua_symbolizer *ls, int fd, pid_t pid, const struct proto_vm *vm,
		   struct proto_entry *e)
{
	struct raw_proto rp;
	struct source_str src;
	int32_t numline = 0;
	int err = read_proto_and_source(fd, vm, e->proto, &rp, &numline, &src);
	if (err < 0)
		return err;
	e->info.line_defined = rp.linedefined;
	e->info.code_size = (uint32_t)rp.sizecode;
	e->info.chunk = chunk_name(&src);
	err = -ENOMEM;
	if (e->info.chunk)
		err = function_name(ls, fd, pid, &src, rp.linedefined, &e->info.function);
	free(src.head);
	if (err < 0)
		return err;
	e->cost = sizeof(*e) + strlen(e->info.chunk) + strlen(e->info.function) + 2;
	size_t lines_cost = (size_t)rp.sizecode * sizeof(int);
	bool fits = ls->bytes + e->cost + lines_cost <= MAX_CACHE_BYTES;
	err = vm->jit ? luajit_read_lines(fd, &rp, numline, fits, &e->info.lines)
		      : puc_read_lines(fd, vm->puc, &rp, fits, &e->info.lines);
	if (err == 0 && e->info.lines)
		e->cost += lines_cost;
	if (err == 0 && vm->puc)
		err = read_tail_calls(ls, fd, vm->puc, &rp, e);
	return err;
}

struct lua_symbolizer *lua_symbolizer_new(void)
{
	struct lua_symbolizer *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return NULL;
	ls->buckets = calloc(INITIAL_BUCKETS, sizeof(*ls->buckets));
	if (!ls->buckets) {
		free(ls);
		return NULL;
	}
	ls->nbuckets = INITIAL_BUCKETS;
	ls->mem_fd = -1;
	return ls;
}

void lua_symbolizer_free(struct lua_symbolizer *ls)
{
	if (!ls)
		return;
	for (size_t i = 0; i < ls->nbuckets; i++) {
		for (struct proto_entry *e = ls->buckets[i], *next; e; e = next) {
			next = e->next;
			entry_free(e);
		}
	}
	free(ls->buckets);
	source_texts_free(ls);
	process_mem_close(ls);
	free(ls);
}

static const struct lua_proto_info *symbolize_proto(struct lua_symbolizer *ls, pid_t pid,
						    const struct proto_vm *vm, uint64_t proto)
{
	if (!ls || (!vm->puc && !vm->jit) || pid <= 0)
		return NULL;
	struct proto_entry *e = proto_find(ls, pid, proto);
	if (e)
		return e->ok ? &e->info : NULL;
	if (cache_full(ls, sizeof(*e)))
		return NULL; /* refused before any work: nothing could be kept */
	int fd = process_mem_open(ls, pid);
	if (fd < 0)
		return NULL; /* no such process (or no access): nothing to cache */
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->pid = pid;
	e->proto = proto;
	int err = resolve(ls, fd, pid, vm, e);
	if (err == -ENOMEM) {
		entry_free(e);
		return NULL; /* not cached: may work later */
	}
	if (err < 0) {
		info_clear(&e->info);
		e->cost = sizeof(*e);
	}
	e->ok = err == 0;
	if (!proto_insert(ls, e)) {
		entry_free(e);
		return NULL;
	}
	return e->ok ? &e->info : NULL;
}

const struct lua_proto_info *lua_symbolizer_proto(struct lua_symbolizer *ls, pid_t pid,
						  const struct lua_puc_version *version,
						  uint64_t proto)
{
	struct proto_vm vm = {.puc = version};
	return symbolize_proto(ls, pid, &vm, proto);
}

const struct lua_proto_info *lua_symbolizer_luajit_proto(struct lua_symbolizer *ls, pid_t pid,
							 const struct luajit_runtime *jit,
							 uint64_t proto)
{
	struct proto_vm vm = {.jit = jit};
	return symbolize_proto(ls, pid, &vm, proto);
}

int lua_proto_line(const struct lua_proto_info *info, uint32_t pc)
{
	if (!info)
		return 0;
	if (info->lines && pc < info->code_size)
		return info->lines[pc];
	return info->line_defined;
}

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

bool lua_proto_is_tail_call(const struct lua_proto_info *info, uint32_t pc)
{
	return info && info->tail_calls &&
	       bsearch(&pc, info->tail_calls, info->tail_call_count, sizeof(pc), compare_u32);
}
