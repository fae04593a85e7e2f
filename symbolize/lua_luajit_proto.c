/* SPDX-License-Identifier: MIT */
/* lua_luajit_proto.c - a LuaJIT GCproto read from the target (lj_obj.h GCproto, GCstr): its
 * header, checked against the limits of lua_symbolize.c, and its chunkname string. */
#include <errno.h>
#include <string.h>

#include "runtime/luajit/luajit_detect.h"
#include "symbolize/lua_symbolize_internal.h"

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
bool luajit_read_proto(int fd, const struct luajit_runtime *jit, uint64_t proto,
		       struct raw_proto *rp, int32_t *numline)
{
	uint8_t hdr[PROTO_SPAN_MAX];
	size_t span = luajit_proto_span(jit);
	if (span > sizeof(hdr) || proto % 8 || !remote_read(fd, proto, hdr, span) ||
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
	    *numline < 0 || !remote_range_ok(rp->code, (uint64_t)rp->sizecode * 4))
		return false;
	rp->sizelineinfo = rp->lineinfo ? rp->sizecode : 0;
	return true;
}

/* The chunkname GCstr: characters right after the header, length GCstr.len. */
int luajit_read_source(int fd, const struct luajit_runtime *jit, uint64_t addr,
		       struct source_str *out)
{
	uint8_t hdr[TSTRING_SPAN_MAX];
	size_t span = span_max(luajit_gct_offset(jit) + 1, jit->str_len, 4);
	memset(out, 0, sizeof(*out));
	if (addr == 0)
		return 0;
	if (span > sizeof(hdr) || jit->str_size == 0 || !remote_read(fd, addr, hdr, span) ||
	    hdr[luajit_gct_offset(jit)] != LJ_GCT_STR)
		return -EFAULT;
	uint64_t len = (uint32_t)load_i32(hdr, jit->str_len);
	if (len > MAX_STRING_LEN)
		return -EFAULT;
	return read_string_head(fd, addr, addr + jit->str_size, len, out);
}
