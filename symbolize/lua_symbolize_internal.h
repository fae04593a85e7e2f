/* SPDX-License-Identifier: MIT */
/* lua_symbolize_internal.h - what the files of the Lua proto symbolizer share (lua_symbolize.c
 * and its lua_*.c helpers in symbolize/): the limits, the symbolizer's state, a Proto and its
 * source as read from the target, and the functions one file offers the others. Not a public
 * header: only symbolize/lua_*.c include it. */
#ifndef LUA_PERF_LUA_SYMBOLIZE_INTERNAL_H
#define LUA_PERF_LUA_SYMBOLIZE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "runtime/puc/lua_layouts.h"
#include "symbolize/lua_source_names.h"
#include "symbolize/lua_symbolize.h"

#define MAX_CODE (1u << 24)
#define MAX_STRING_LEN (1ull << 30)
#define MAX_CHUNK_BYTES 4096
#define MAX_SOURCE_BYTES (16u << 20)
/* The three budgets can be lowered at build time (tests/cmake/lua_symbolize.cmake: the budget test). */
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
#define PROTO_SPAN_MAX 512
#define TSTRING_SPAN_MAX 64
#define TEXT_BUCKETS 256

/* lobject.h CommonHeader `GCObject *next; lu_byte tt; lu_byte marked` (5.1, 5.3, 5.4). */
#define GC_TT_OFFSET 8

struct proto_entry;
struct source_text;

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

static inline uint64_t load_u64(const uint8_t *buf, size_t off)
{
	uint64_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static inline uint16_t load_u16(const uint8_t *buf, size_t off)
{
	uint16_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static inline int32_t load_i32(const uint8_t *buf, size_t off)
{
	int32_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

/* The bytes needed to read size bytes at off, when span were needed so far. */
static inline size_t span_max(size_t span, size_t off, size_t size)
{
	return off + size > span ? off + size : span;
}

static inline bool kind_is_54(enum lua_kind kind)
{
	return kind == LUA_KIND_PUC54 || kind == LUA_KIND_PUC540;
}

/* lua_remote_read.c: the target's memory. */
bool remote_range_ok(uint64_t addr, uint64_t len);
bool remote_read(int fd, uint64_t addr, void *buf, size_t len);
int process_mem_open(struct lua_symbolizer *ls, pid_t pid);
void process_mem_close(struct lua_symbolizer *ls);
int read_string_head(int fd, uint64_t addr, uint64_t contents, uint64_t len,
		     struct source_str *out);

/* lua_puc_proto.c: a PUC Lua Proto and its source TString. */
bool puc_read_proto(int fd, const struct lua_puc_version *v, uint64_t proto,
		    struct raw_proto *rp);
int puc_read_source(int fd, const struct lua_puc_version *v, uint64_t addr,
		    struct source_str *out);

/* lua_luajit_proto.c: a LuaJIT GCproto and its chunkname GCstr. */
struct luajit_runtime;
bool luajit_read_proto(int fd, const struct luajit_runtime *jit, uint64_t proto,
		       struct raw_proto *rp, int32_t *numline);
int luajit_read_source(int fd, const struct luajit_runtime *jit, uint64_t addr,
		       struct source_str *out);

/* lua_proto_lines.c: the line of every instruction. */
int puc_read_lines(int fd, const struct lua_puc_version *v, const struct raw_proto *rp,
		   bool want, int **out);
int luajit_read_lines(int fd, const struct raw_proto *rp, int32_t numline, bool want,
		      int **out);

/* lua_proto_tail_calls.c: where the code tail-calls. */
int puc_read_tail_calls(int fd, const struct lua_puc_version *v, const struct raw_proto *rp,
			uint32_t **out, uint32_t *count);

/* lua_source_texts.c: the lines of a proto's source text (a file for `@path`, the chunk itself
 * for a string chunk), the texts cached within MAX_TEXT_BYTES. */
const struct lua_source_lines *source_lines_of(struct lua_symbolizer *ls, int fd, pid_t pid,
					       const struct source_str *src, int *err);
void source_texts_free(struct lua_symbolizer *ls);

/* lua_proto_names.c: chunk and function names. */
char *chunk_name(const struct source_str *src);
int function_name(struct lua_symbolizer *ls, int fd, pid_t pid, const struct source_str *src,
		  int linedefined, char **out);

#endif
