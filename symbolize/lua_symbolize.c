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
 *     names and line arrays. A proto whose lines do not fit is kept without lines; once an entry
 *     does not fit, the cache is full and unknown protos give NULL at once (cached ones still
 *     answer) until lua_symbolizer_forget makes room. Failures are cached too (per pid and
 *     address). Entries leave only with their process (lua_symbolizer_forget), so the returned
 *     pointers stay valid until then.
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
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fnv1a.h"
#include "lib/whole_file.h"
#include "proc/process_root.h"
#include "runtime/luajit/luajit_detect.h"
#include "symbolize/lua_source_names.h"

#define MAX_CODE (1u << 24)
#define MAX_STRING_LEN (1ull << 30)
#define MAX_CHUNK_BYTES 4096
#define PREVIEW_BYTES 40
#define MAX_SOURCE_BYTES (16u << 20)
/* The three budgets can be lowered at build time (tests/lua_symbolize.cmake: the budget test). */
#ifndef LUA_SYMBOLIZE_MAX_TEXT_BYTES
#define LUA_SYMBOLIZE_MAX_TEXT_BYTES (64ull << 20)
#endif
#ifndef LUA_SYMBOLIZE_MAX_PROTOS
#define LUA_SYMBOLIZE_MAX_PROTOS (1u << 20)
#endif
#ifndef LUA_SYMBOLIZE_MAX_CACHE_BYTES
#define LUA_SYMBOLIZE_MAX_CACHE_BYTES (256ull << 20)
#endif
#define MAX_TEXT_BYTES LUA_SYMBOLIZE_MAX_TEXT_BYTES
#define MAX_PROTOS LUA_SYMBOLIZE_MAX_PROTOS
#define MAX_CACHE_BYTES LUA_SYMBOLIZE_MAX_CACHE_BYTES
#define MIN_ADDRESS 4096ull
#define PROTO_SPAN_MAX 512
#define TSTRING_SPAN_MAX 64
#define TEXT_BUCKETS 256
#define INITIAL_BUCKETS 1024

/* lobject.h CommonHeader `GCObject *next; lu_byte tt; lu_byte marked` (5.1, 5.3, 5.4). */
#define GC_TT_OFFSET 8
/* lobject.h 5.1: LUA_TPROTO is LAST_TAG+1, LAST_TAG = LUA_TTHREAD (8, lua.h). */
#define PUC51_TAG_PROTO 9
/* lua.h 5.1: LUA_TSTRING 4. */
#define PUC51_TAG_STRING 4
/* lobject.h 5.3: LUA_TPROTO is LUA_NUMTAGS (9, lua.h). */
#define PUC53_TAG_PROTO 9
/* lobject.h 5.4: LUA_VPROTO = makevariant(LUA_TPROTO, 0), LUA_TPROTO = LUA_NUMTYPES + 1 = 10. */
#define PUC54_TAG_PROTO 10
/* lobject.h 5.3 LUA_TLNGSTR = LUA_TSTRING | (1 << 4);
 * lobject.h 5.4 LUA_VLNGSTR = makevariant(LUA_TSTRING, 1). */
#define LONG_STRING_VARIANT (1u << 4)
/* ldebug.h 5.4: ABSLINEINFO (-0x80) in lineinfo[pc] marks exactly the pcs of abslineinfo entries
 * (lcode.c 5.4.0-5.4.8 savelineinfo writes both, removelastlineinfo removes both). */
#define ABSLINEINFO (-0x80)

_Static_assert(sizeof(int) == 4, "Lua's int line arrays are read as int");

/* lobject.h 5.4: typedef struct AbsLineInfo { int pc; int line; } AbsLineInfo; */
struct abs_line_info {
	int32_t pc;
	int32_t line;
};

struct proto_entry {
	struct proto_entry *next;
	pid_t pid;
	uint64_t proto;
	bool ok; /* false: a cached failure */
	size_t cost;
	struct lua_proto_info info;
};

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

struct lua_symbolizer {
	struct proto_entry **buckets;
	size_t nbuckets;
	size_t count;
	size_t bytes;
	bool full;     /* an entry was refused: no new protos */
	pid_t mem_pid; /* the process mem_fd reads, 0 when closed */
	int mem_fd;
	struct source_text *text_buckets[TEXT_BUCKETS];
	struct source_text *oldest, *newest;
	size_t text_bytes;
};

/* What the Proto header says (lobject.h Proto of each version; offsets from lua_layouts.c). */
struct raw_proto {
	uint64_t code, lineinfo, abslineinfo, source;
	int32_t sizecode, sizelineinfo, sizeabslineinfo, linedefined;
};

/* The source TString: its address, full length and the first head_len bytes (NUL-terminated). */
struct source_str {
	uint64_t addr;
	uint64_t contents; /* address of the characters */
	uint64_t len;
	char *head; /* NULL: the proto has no source */
	size_t head_len;
};

/* ---- Reading the process. */

static bool range_ok(uint64_t addr, uint64_t len)
{
	return addr >= MIN_ADDRESS && len <= (uint64_t)INT64_MAX &&
	       addr <= (uint64_t)INT64_MAX - len;
}

static bool mem_read(int fd, uint64_t addr, void *buf, size_t len)
{
	if (!range_ok(addr, len))
		return false;
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread_retrying(fd, (char *)buf + done, len - done, (off_t)(addr + done));
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

static void mem_close(struct lua_symbolizer *ls)
{
	/* A read-only descriptor: a failing close() loses nothing, it is gone anyway. */
	if (ls->mem_fd >= 0)
		(void)close(ls->mem_fd);
	ls->mem_fd = -1;
	ls->mem_pid = 0;
}

/* The /proc/PID/mem descriptor (one process kept open at a time), or -1. */
static int process_mem(struct lua_symbolizer *ls, pid_t pid)
{
	if (ls->mem_pid == pid && ls->mem_fd >= 0)
		return ls->mem_fd;
	mem_close(ls);
	char path[64];
	int n = snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ls->mem_fd = fd;
	ls->mem_pid = pid;
	return fd;
}

static uint64_t load_u64(const uint8_t *buf, size_t off)
{
	uint64_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static uint16_t load_u16(const uint8_t *buf, size_t off)
{
	uint16_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static int32_t load_i32(const uint8_t *buf, size_t off)
{
	int32_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static bool kind_is_54(enum lua_kind kind)
{
	return kind == LUA_KIND_PUC54 || kind == LUA_KIND_PUC540;
}

static int proto_tag(enum lua_kind kind)
{
	switch (kind) {
	case LUA_KIND_PUC51: return PUC51_TAG_PROTO;
	case LUA_KIND_PUC53: return PUC53_TAG_PROTO;
	case LUA_KIND_PUC54:
	case LUA_KIND_PUC540: return PUC54_TAG_PROTO;
	default: return -1;
	}
}

static size_t span_max(size_t span, size_t off, size_t size)
{
	return off + size > span ? off + size : span;
}

/* The bytes of a Proto this file reads, from the layout. */
static size_t proto_span(const struct lua_puc_version *v)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	size_t span = GC_TT_OFFSET + 1;
	span = span_max(span, p->proto_code, 8);
	span = span_max(span, p->proto_sizecode, 4);
	span = span_max(span, p->proto_lineinfo, 8);
	span = span_max(span, p->proto_sizelineinfo, 4);
	span = span_max(span, p->proto_linedefined, 4);
	span = span_max(span, p->proto_source, 8);
	if (kind_is_54(v->kind)) {
		span = span_max(span, p->proto_abslineinfo, 8);
		span = span_max(span, p->proto_sizeabslineinfo, 4);
	}
	return span;
}

static bool raw_proto_sane(const struct lua_puc_version *v, const struct raw_proto *rp)
{
	if (rp->sizecode < 1 || (uint32_t)rp->sizecode > MAX_CODE || rp->linedefined < 0)
		return false;
	if (rp->code % 4 || !range_ok(rp->code, (uint64_t)rp->sizecode * 4))
		return false;
	if (rp->sizelineinfo != 0 && rp->sizelineinfo != rp->sizecode)
		return false; /* lparser.c close_func shrinks lineinfo to the code size (5.1-5.4) */
	if (rp->sizelineinfo && (!rp->lineinfo || (!kind_is_54(v->kind) && rp->lineinfo % 4)))
		return false;
	if (rp->source % 8)
		return false;
	if (!kind_is_54(v->kind))
		return true;
	if (rp->sizeabslineinfo < 0 || rp->sizeabslineinfo > rp->sizecode)
		return false;
	return rp->sizeabslineinfo == 0 || rp->abslineinfo % 4 == 0;
}

static bool read_raw_proto(int fd, const struct lua_puc_version *v, uint64_t proto,
			   struct raw_proto *rp)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	uint8_t hdr[PROTO_SPAN_MAX];
	size_t span = proto_span(v);
	int tag = proto_tag(v->kind);
	if (tag < 0 || span > sizeof(hdr) || proto % 8 || !mem_read(fd, proto, hdr, span))
		return false;
	if (hdr[GC_TT_OFFSET] != tag)
		return false;
	memset(rp, 0, sizeof(*rp));
	rp->code = load_u64(hdr, p->proto_code);
	rp->sizecode = load_i32(hdr, p->proto_sizecode);
	rp->lineinfo = load_u64(hdr, p->proto_lineinfo);
	rp->sizelineinfo = load_i32(hdr, p->proto_sizelineinfo);
	rp->linedefined = load_i32(hdr, p->proto_linedefined);
	rp->source = load_u64(hdr, p->proto_source);
	if (kind_is_54(v->kind)) {
		rp->abslineinfo = load_u64(hdr, p->proto_abslineinfo);
		rp->sizeabslineinfo = load_i32(hdr, p->proto_sizeabslineinfo);
	}
	if (!raw_proto_sane(v, rp))
		return false;
	uint32_t last;
	/* The code array must be mapped: its last instruction is read, not used. */
	return mem_read(fd, rp->code + ((uint64_t)rp->sizecode - 1) * 4, &last, sizeof(last));
}

/* ---- Lines per instruction. */

/* 5.1/5.3: lineinfo[pc] is the absolute line (ldebug.c getline/luaG_getfuncline, 5.1, 5.3). */
static int lines_absolute(int fd, const struct raw_proto *rp, int *lines)
{
	if (!mem_read(fd, rp->lineinfo, lines, (size_t)rp->sizecode * sizeof(int)))
		return -EFAULT;
	for (int32_t pc = 0; pc < rp->sizecode; pc++)
		if (lines[pc] < 0)
			return -EFAULT;
	return 0;
}

static bool abs_lines_sane(const struct abs_line_info *abs, int32_t n, int32_t sizecode)
{
	for (int32_t i = 0; i < n; i++) {
		if (abs[i].pc < 0 || abs[i].pc >= sizecode || abs[i].line < 0)
			return false;
		if (i > 0 && abs[i].pc <= abs[i - 1].pc)
			return false;
	}
	return true;
}

/* 5.4: the line of pc is abslineinfo[i].line for the last entry with .pc <= pc, plus the signed
 * deltas lineinfo[.pc + 1 .. pc]; before the first entry, linedefined plus lineinfo[0 .. pc]
 * (ldebug.c getbaseline / luaG_getfuncline, 5.4.4). Walked once for all instructions. */
static bool lines_walk(const int8_t *delta, const struct abs_line_info *abs, int32_t nabs,
		       const struct raw_proto *rp, int *lines)
{
	int64_t line = rp->linedefined;
	int32_t next = 0;
	for (int32_t pc = 0; pc < rp->sizecode; pc++) {
		bool absolute = next < nabs && abs[next].pc == pc;
		if (absolute != (delta[pc] == ABSLINEINFO))
			return false;
		if (absolute)
			line = abs[next++].line;
		else
			line += delta[pc];
		if (line < 0 || line > INT_MAX)
			return false;
		lines[pc] = (int)line;
	}
	return true;
}

static int lines_delta(int fd, const struct raw_proto *rp, int *lines)
{
	int32_t n = rp->sizecode, nabs = rp->sizeabslineinfo;
	int8_t *delta = malloc((size_t)n);
	struct abs_line_info *abs = malloc((size_t)(nabs ? nabs : 1) * sizeof(*abs));
	int err = -ENOMEM;
	if (!delta || !abs)
		goto out;
	err = -EFAULT;
	if (!mem_read(fd, rp->lineinfo, delta, (size_t)n))
		goto out;
	if (nabs && !mem_read(fd, rp->abslineinfo, abs, (size_t)nabs * sizeof(*abs)))
		goto out;
	if (!abs_lines_sane(abs, nabs, n))
		goto out;
	err = lines_walk(delta, abs, nabs, rp, lines) ? 0 : -EFAULT;
out:
	free(delta);
	free(abs);
	return err;
}

/* *out: the line array, or NULL when the proto has no line info (stripped) or want is false.
 * -EFAULT for inconsistent data, -ENOMEM. */
static int read_lines(int fd, const struct lua_puc_version *v, const struct raw_proto *rp,
		      bool want, int **out)
{
	*out = NULL;
	if (!want || rp->sizelineinfo == 0)
		return 0;
	int *lines = malloc((size_t)rp->sizecode * sizeof(*lines));
	if (!lines)
		return -ENOMEM;
	int err = kind_is_54(v->kind) ? lines_delta(fd, rp, lines) : lines_absolute(fd, rp, lines);
	if (err < 0) {
		free(lines);
		return err;
	}
	*out = lines;
	return 0;
}

/* ---- The source TString. */

/* Its length (lobject.h: 5.1 tsv.len; 5.3/5.4 tsslen(): shrlen for short strings, u.lnglen for
 * long ones). false when the header is no string of this version. */
static bool tstring_length(const struct lua_puc_version *v, const uint8_t *hdr, uint64_t *len)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	if (v->kind == LUA_KIND_PUC51) {
		if (hdr[GC_TT_OFFSET] != PUC51_TAG_STRING)
			return false;
		*len = load_u64(hdr, p->tstring_len);
		return true;
	}
	uint8_t tt = hdr[p->tstring_tt];
	if (tt == p->tag_short_string)
		*len = hdr[p->tstring_shrlen];
	else if (tt == (p->tag_short_string | LONG_STRING_VARIANT))
		*len = load_u64(hdr, p->tstring_len);
	else
		return false;
	return true;
}

/* *out for the string at addr of length len whose characters are at contents: its first
 * bytes, the '@' or '=' and MAX_CHUNK_BYTES of name. 0, -EFAULT, -ENOMEM. */
static int read_source_head(int fd, uint64_t addr, uint64_t contents, uint64_t len,
			    struct source_str *out)
{
	size_t head_len = len < MAX_CHUNK_BYTES + 1 ? (size_t)len : MAX_CHUNK_BYTES + 1;
	char *head = malloc(head_len + 1);
	if (!head)
		return -ENOMEM;
	if (!mem_read(fd, contents, head, head_len)) {
		free(head);
		return -EFAULT;
	}
	head[head_len] = '\0';
	*out = (struct source_str){addr, contents, len, head, head_len};
	return 0;
}

/* 0 (out->head NULL when there is no source), -EFAULT, -ENOMEM. */
static int read_source(int fd, const struct lua_puc_version *v, uint64_t addr,
		       struct source_str *out)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	memset(out, 0, sizeof(*out));
	if (addr == 0)
		return 0; /* lundump.c 5.3/5.4: a stripped dump may leave source NULL ("=?") */
	uint8_t hdr[TSTRING_SPAN_MAX];
	size_t span = span_max(span_max(GC_TT_OFFSET + 1, p->tstring_len, 8), p->tstring_tt, 1);
	span = span_max(span, p->tstring_shrlen, 1);
	if (span > sizeof(hdr) || p->tstring_contents == 0 || !mem_read(fd, addr, hdr, span))
		return -EFAULT;
	uint64_t len;
	if (!tstring_length(v, hdr, &len) || len > MAX_STRING_LEN)
		return -EFAULT;
	return read_source_head(fd, addr, addr + p->tstring_contents, len, out);
}

/* ---- Chunk names. */

static void sanitize(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = '?';
}

/* prefix + bytes[0..len) (sanitized) + "..." when more + suffix, malloc()ed. */
static char *compose(const char *prefix, const char *bytes, size_t len, bool more,
		     const char *suffix)
{
	size_t plen = strlen(prefix), slen = strlen(suffix);
	char *out = malloc(plen + len + (more ? 3 : 0) + slen + 1);
	if (!out)
		return NULL;
	memcpy(out, prefix, plen);
	memcpy(out + plen, bytes, len);
	sanitize(out + plen, len);
	size_t at = plen + len;
	if (more) {
		memcpy(out + at, "...", 3);
		at += 3;
	}
	memcpy(out + at, suffix, slen + 1);
	return out;
}

/* `[string "first line..."]` (the shape of lobject.c luaO_chunkid, 5.4, with our own length). */
static char *string_chunk_name(const struct source_str *src)
{
	size_t line = 0;
	while (line < src->head_len && src->head[line] != '\n' && src->head[line] != '\r')
		line++;
	size_t cut = line < PREVIEW_BYTES ? line : PREVIEW_BYTES;
	while (cut > 0 && cut < line && ((unsigned char)src->head[cut] & 0xc0) == 0x80)
		cut--; /* do not split a UTF-8 sequence */
	bool more = cut < line || (uint64_t)line < src->len;
	return compose("[string \"", src->head, cut, more, "\"]");
}

static char *chunk_name(const struct source_str *src)
{
	if (!src->head || src->len == 0)
		return strdup("?");
	if (src->head[0] != '@' && src->head[0] != '=')
		return string_chunk_name(src);
	bool more = src->len > src->head_len;
	if (src->head_len == 1 && !more)
		return strdup("?");
	return compose("", src->head + 1, src->head_len - 1, more, "");
}

/* ---- Source texts (files and string chunks), cached within MAX_TEXT_BYTES. */

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
	if (!mem_read(fd, src->contents, data, len)) {
		free(data);
		return NULL;
	}
	return text_add(ls, &key, data, len, err);
}

/* ---- Function names. */

static int name_from_text(const struct source_text *t, int line, char **name)
{
	const char *text, *prev = NULL;
	size_t len, prev_len = 0;
	if (!lua_source_line(&t->lines, line, &text, &len))
		return 0;
	if (line > 1 && !lua_source_line(&t->lines, line - 1, &prev, &prev_len))
		prev = NULL;
	return lua_source_name(text, len, prev, prev_len, name);
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

static int function_name(struct lua_symbolizer *ls, int fd, pid_t pid, const struct source_str *src,
			 int linedefined, char **out)
{
	*out = NULL;
	int err = 0;
	if (linedefined == 0) {
		*out = strdup("main"); /* lparser.c mainfunc: the main chunk keeps linedefined 0 */
		return *out ? 0 : -ENOMEM;
	}
	struct source_text *t = source_text_of(ls, fd, pid, src, &err);
	if (t)
		err = name_from_text(t, linedefined, out);
	if (err < 0)
		return err;
	if (!*out)
		*out = strdup("?");
	return *out ? 0 : -ENOMEM;
}

/* ---- LuaJIT protos (lj_obj.h GCproto, GCstr; lj_debug.c lj_debug_line). */

/* lj_obj.h: GCHeader `GCRef nextgc; uint8_t marked; uint8_t gct` (GCRef: 8 bytes GC64, 4 GC32);
 * gct holds ~LJ_TPROTO (7) for a proto, ~LJ_TSTR (4) for a string. */
#define LJ_GCT_PROTO 7
#define LJ_GCT_STR 4

static size_t luajit_gct_offset(const struct luajit_runtime *jit)
{
	return jit->interp.jit.gc64 ? 9 : 5;
}

static uint64_t load_ref(const struct luajit_runtime *jit, const uint8_t *buf, size_t off)
{
	uint32_t v32;

	if (jit->interp.jit.gc64)
		return load_u64(buf, off);
	memcpy(&v32, buf + off, sizeof(v32));
	return v32;
}

static size_t luajit_proto_span(const struct luajit_runtime *jit)
{
	size_t span = luajit_gct_offset(jit) + 1;
	span = span_max(span, jit->interp.jit.proto_sizebc, 4);
	span = span_max(span, jit->proto_chunkname, 8);
	span = span_max(span, jit->proto_firstline, 4);
	span = span_max(span, jit->proto_numline, 4);
	span = span_max(span, jit->proto_lineinfo, 8);
	return span;
}

/* A GCproto's header into rp (code = the bytecode after the header, sizecode = sizebc); *numline
 * gets the line span (which decides the width of lineinfo entries). */
static bool luajit_read_raw_proto(int fd, const struct luajit_runtime *jit, uint64_t proto,
				  struct raw_proto *rp, int32_t *numline)
{
	uint8_t hdr[PROTO_SPAN_MAX];
	size_t span = luajit_proto_span(jit);
	if (span > sizeof(hdr) || proto % 8 || !mem_read(fd, proto, hdr, span) ||
	    hdr[luajit_gct_offset(jit)] != LJ_GCT_PROTO)
		return false;
	memset(rp, 0, sizeof(*rp));
	rp->code = proto + jit->interp.jit.proto_size;
	rp->sizecode = load_i32(hdr, jit->interp.jit.proto_sizebc);
	rp->source = load_ref(jit, hdr, jit->proto_chunkname);
	rp->linedefined = load_i32(hdr, jit->proto_firstline);
	rp->lineinfo = load_ref(jit, hdr, jit->proto_lineinfo);
	*numline = load_i32(hdr, jit->proto_numline);
	if (rp->sizecode < 1 || (uint32_t)rp->sizecode > MAX_CODE || rp->linedefined < 0 ||
	    *numline < 0 || !range_ok(rp->code, (uint64_t)rp->sizecode * 4))
		return false;
	rp->sizelineinfo = rp->lineinfo ? rp->sizecode : 0;
	return true;
}

/* lj_debug_line: position 0 (the function header) is firstline, position p > 0 is firstline +
 * lineinfo[p - 1], entries u8 / u16 / u32 by numline (< 256, < 65536, else). */
static int luajit_read_lines(int fd, const struct raw_proto *rp, int32_t numline, bool want,
			     int **out)
{
	*out = NULL;
	if (!want || rp->sizelineinfo == 0)
		return 0;
	size_t width = numline < 256 ? 1 : numline < 65536 ? 2 : 4;
	size_t count = (size_t)rp->sizecode - 1;
	uint8_t *raw = malloc(count * width + 1);
	int *lines = malloc((size_t)rp->sizecode * sizeof(*lines));
	int err = -ENOMEM;
	if (!raw || !lines)
		goto fail;
	err = -EFAULT;
	if (count && !mem_read(fd, rp->lineinfo, raw, count * width))
		goto fail;
	lines[0] = rp->linedefined;
	for (size_t i = 0; i < count; i++) {
		uint32_t delta = width == 1 ? raw[i] : width == 2 ? (uint32_t)load_u16(raw, i * 2)
								  : (uint32_t)load_i32(raw, i * 4);
		if (delta > (uint32_t)numline || (int64_t)rp->linedefined + delta > INT_MAX)
			goto fail;
		lines[i + 1] = rp->linedefined + (int)delta;
	}
	free(raw);
	*out = lines;
	return 0;
fail:
	free(raw);
	free(lines);
	return err;
}

/* The chunkname GCstr: characters right after the header, length GCstr.len. */
static int luajit_read_source(int fd, const struct luajit_runtime *jit, uint64_t addr,
			      struct source_str *out)
{
	uint8_t hdr[TSTRING_SPAN_MAX];
	size_t span = span_max(luajit_gct_offset(jit) + 1, jit->str_len, 4);
	memset(out, 0, sizeof(*out));
	if (addr == 0)
		return 0;
	if (span > sizeof(hdr) || jit->str_size == 0 || !mem_read(fd, addr, hdr, span) ||
	    hdr[luajit_gct_offset(jit)] != LJ_GCT_STR)
		return -EFAULT;
	uint64_t len = (uint32_t)load_i32(hdr, jit->str_len);
	if (len > MAX_STRING_LEN)
		return -EFAULT;
	return read_source_head(fd, addr, addr + jit->str_size, len, out);
}

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

static void entry_free(struct proto_entry *e)
{
	free(e->info.function);
	free(e->info.chunk);
	free(e->info.lines);
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
		mem_close(ls);
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
		if (!luajit_read_raw_proto(fd, vm->jit, proto, rp, numline))
			return -EFAULT;
		return luajit_read_source(fd, vm->jit, rp->source, src);
	}
	if (!read_raw_proto(fd, vm->puc, proto, rp))
		return -EFAULT;
	return read_source(fd, vm->puc, rp->source, src);
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
		      : read_lines(fd, vm->puc, &rp, fits, &e->info.lines);
	if (err == 0 && e->info.lines)
		e->cost += lines_cost;
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
	while (ls->oldest)
		text_evict_oldest(ls);
	mem_close(ls);
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
	int fd = process_mem(ls, pid);
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
		free(e->info.function);
		free(e->info.chunk);
		free(e->info.lines);
		memset(&e->info, 0, sizeof(e->info));
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
