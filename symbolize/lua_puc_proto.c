/* SPDX-License-Identifier: MIT */
/* lua_puc_proto.c - a PUC Lua (5.1, 5.3, 5.4) Proto read from the target: its header, checked
 * against the limits of lua_symbolize.c, and its source TString. */
#include <errno.h>
#include <string.h>

#include "symbolize/lua_symbolize_internal.h"

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

/* ---- The Proto header. */

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
	if (rp->code % 4 || !remote_range_ok(rp->code, (uint64_t)rp->sizecode * 4))
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

/* The header of the Proto at proto into rp; false when it is no sane Proto of this version or its
 * code is not mapped. */
bool puc_read_proto(int fd, const struct lua_puc_version *v, uint64_t proto,
		    struct raw_proto *rp)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	uint8_t hdr[PROTO_SPAN_MAX];
	size_t span = proto_span(v);
	int tag = proto_tag(v->kind);
	if (tag < 0 || span > sizeof(hdr) || proto % 8 || !remote_read(fd, proto, hdr, span))
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
	return remote_read(fd, rp->code + ((uint64_t)rp->sizecode - 1) * 4, &last, sizeof(last));
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

/* 0 (out->head NULL when there is no source), -EFAULT, -ENOMEM. */
int puc_read_source(int fd, const struct lua_puc_version *v, uint64_t addr,
		    struct source_str *out)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	memset(out, 0, sizeof(*out));
	if (addr == 0)
		return 0; /* lundump.c 5.3/5.4: a stripped dump may leave source NULL ("=?") */
	uint8_t hdr[TSTRING_SPAN_MAX];
	size_t span = span_max(span_max(GC_TT_OFFSET + 1, p->tstring_len, 8), p->tstring_tt, 1);
	span = span_max(span, p->tstring_shrlen, 1);
	if (span > sizeof(hdr) || p->tstring_contents == 0 || !remote_read(fd, addr, hdr, span))
		return -EFAULT;
	uint64_t len;
	if (!tstring_length(v, hdr, &len) || len > MAX_STRING_LEN)
		return -EFAULT;
	return read_string_head(fd, addr, addr + p->tstring_contents, len, out);
}
