/* SPDX-License-Identifier: MIT */
/* luajit_lib_init.c - a library's init data (host/buildvm_lib.c writes it, lj_lib.c
 * lj_lib_register reads it): the fast functions it registers, named "lib.name" into struct
 * ffnames (luajit_detect.c, 7.). */
#include "runtime/luajit/luajit_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LIBINIT_LENMASK 0x3f
#define LIBINIT_TAGMASK 0xc0
#define LIBINIT_STRING 0xc0
#define LIBINIT_LUA 0xf9
#define LIBINIT_SET 0xfa
#define LIBINIT_NUMBER 0xfb
#define LIBINIT_COPY 0xfc
#define LIBINIT_LASTCL 0xfd
#define LIBINIT_FFID 0xfe
#define LIBINIT_END 0xff

struct bytes {
	const uint8_t *p;
	size_t left;
};

static bool take(struct bytes *b, size_t n)
{
	if (n > b->left)
		return false;
	b->p += n;
	b->left -= n;
	return true;
}

static bool take_byte(struct bytes *b, uint8_t *v)
{
	if (b->left == 0)
		return false;
	*v = *b->p;
	return take(b, 1);
}

/* lj_bcread.c bcread_uleb128 (and the _33 variant: the same bytes). */
static bool take_uleb(struct bytes *b, uint64_t *v)
{
	uint64_t value = 0;
	for (unsigned shift = 0; shift < 35; shift += 7) {
		uint8_t byte;
		if (!take_byte(b, &byte))
			return false;
		value |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			*v = value;
			return true;
		}
	}
	return false;
}

/* lj_bcread.c bcread_ktabk. */
static bool skip_ktabk(struct bytes *b)
{
	uint64_t tp, ignored;
	if (!take_uleb(b, &tp))
		return false;
	if (tp >= 5) /* BCDUMP_KTAB_STR + len */
		return take(b, tp - 5);
	if (tp == 3) /* BCDUMP_KTAB_INT */
		return take_uleb(b, &ignored);
	if (tp == 4) /* BCDUMP_KTAB_NUM */
		return take_uleb(b, &ignored) && take_uleb(b, &ignored);
	return true; /* nil, false, true */
}

/* lj_bcread.c bcread_kgc; BCDUMP_KGC_CHILD cannot occur in a library function (no parent). */
static bool skip_kgc(struct bytes *b)
{
	uint64_t tp, narray, nhash, ignored;
	if (!take_uleb(b, &tp) || tp == 0)
		return false;
	if (tp >= 5) /* BCDUMP_KGC_STR + len */
		return take(b, tp - 5);
	if (tp == 1) { /* BCDUMP_KGC_TAB */
		if (!take_uleb(b, &narray) || !take_uleb(b, &nhash) || narray > b->left ||
		    nhash > b->left)
			return false;
		for (uint64_t i = 0; i < narray + 2 * nhash; i++)
			if (!skip_ktabk(b))
				return false;
		return true;
	}
	for (unsigned i = 0; i < (tp == 4 ? 4u : 2u); i++) /* I64, U64: 2 words; COMPLEX: 4 */
		if (!take_uleb(b, &ignored))
			return false;
	return true;
}

/* One stripped prototype as lj_bcread_proto reads it (lj_lib.c lib_read_lfunc). */
static bool skip_proto(struct bytes *b)
{
	uint8_t head[4];
	uint64_t sizekgc, sizekn, sizebc, ignored;
	for (unsigned i = 0; i < 4; i++) /* flags, numparams, framesize, sizeuv */
		if (!take_byte(b, &head[i]))
			return false;
	if (!take_uleb(b, &sizekgc) || !take_uleb(b, &sizekn) || !take_uleb(b, &sizebc) ||
	    sizebc > b->left / 4 || !take(b, sizebc * 4) || !take(b, (size_t)head[3] * 2) ||
	    sizekgc > b->left || sizekn > b->left)
		return false;
	for (uint64_t i = 0; i < sizekgc; i++)
		if (!skip_kgc(b))
			return false;
	for (uint64_t i = 0; i < sizekn; i++) {
		bool isnum = b->left > 0 && (b->p[0] & 1);
		if (!take_uleb(b, &ignored) || (isnum && !take_uleb(b, &ignored)))
			return false;
	}
	return true;
}

static bool identifier(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
			return false;
	return n > 0;
}

/* ffid gets "prefix.name", "name" (prefix ""), or nothing (prefix NULL or no name). */
static int claim(struct ffnames *fn, unsigned ffid, const char *prefix, const uint8_t *name,
		 size_t len)
{
	if (ffid > MAX_FFID || fn->claimed[ffid])
		return -EINVAL;
	fn->claimed[ffid] = true;
	if (ffid + 1 > fn->count)
		fn->count = ffid + 1;
	if (!prefix || len == 0)
		return 0;
	if (!identifier(name, len))
		return -EINVAL;
	size_t plen = strlen(prefix);
	char *s = malloc(plen + 1 + len + 1);
	if (!s)
		return -ENOMEM;
	if (plen > 0) {
		memcpy(s, prefix, plen);
		s[plen++] = '.';
	}
	memcpy(s + plen, name, len);
	s[plen + len] = '\0';
	fn->names[ffid] = s;
	return 0;
}

/* lj_lib.c lj_lib_register: the first ffid, the first fast function's bcff index, the hash size,
 * then tagged entries up to LIBINIT_END. -EINVAL when the data is not that. */
int luajit_parse_init(const struct file *f, uint64_t addr, const char *prefix, struct ffnames *fn,
		      unsigned *first_ffid)
{
	uint8_t buf[MAX_INIT_BYTES];
	struct bytes b = {buf, read_vaddr(f, addr, buf, sizeof(buf))};
	uint8_t ffid, ignored;
	if (!take_byte(&b, &ffid) || !take_byte(&b, &ignored) || !take_byte(&b, &ignored) || ffid < 2)
		return -EINVAL; /* ffids 0 and 1 are Lua and C functions (lj_obj.h FF_LUA, FF_C) */
	*first_ffid = ffid;
	unsigned next = ffid;
	for (;;) {
		uint8_t tag;
		if (!take_byte(&b, &tag))
			return -EINVAL;
		size_t len = tag & LIBINIT_LENMASK;
		if ((tag & LIBINIT_TAGMASK) != LIBINIT_STRING) { /* LIBINIT_CF, _ASM, _ASM_ */
			const uint8_t *name = b.p;
			if (!take(&b, len))
				return -EINVAL;
			int err = claim(fn, next++, prefix, name, len);
			if (err)
				return err;
			continue;
		}
		uint8_t n = 0;
		switch (tag) {
		case LIBINIT_END:
			return 0;
		case LIBINIT_LUA:
			if (!take_byte(&b, &n) || !take(&b, n) || !skip_proto(&b))
				return -EINVAL;
			break;
		case LIBINIT_SET:
		case LIBINIT_LASTCL:
			break;
		case LIBINIT_NUMBER:
			if (!take(&b, 8))
				return -EINVAL;
			break;
		case LIBINIT_COPY:
			if (!take(&b, 1))
				return -EINVAL;
			break;
		case LIBINIT_FFID: { /* LJLIB_NOREG: a fast function without a name */
			int err = claim(fn, next++, NULL, NULL, 0);
			if (err)
				return err;
			break;
		}
		default: /* a string pushed */
			if (!take(&b, len))
				return -EINVAL;
			break;
		}
	}
}

void luajit_ffnames_free(char **names, uint32_t count)
{
	if (!names)
		return;
	for (uint32_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

