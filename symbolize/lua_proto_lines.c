/* SPDX-License-Identifier: MIT */
/* lua_proto_lines.c - the source line of every instruction of a proto, read from the target:
 * PUC Lua's lineinfo (absolute in 5.1/5.3, deltas and abslineinfo in 5.4) and LuaJIT's
 * lineinfo (offsets from firstline). Inconsistent data makes the proto unreadable. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "symbolize/lua_symbolize_internal.h"

/* ldebug.h 5.4: ABSLINEINFO (-0x80) in lineinfo[pc] marks exactly the pcs of abslineinfo entries
 * (lcode.c 5.4.0-5.4.8 savelineinfo writes both, removelastlineinfo removes both). */
#define ABSLINEINFO (-0x80)

_Static_assert(sizeof(int) == 4, "Lua's int line arrays are read as int");

/* lobject.h 5.4: typedef struct AbsLineInfo { int pc; int line; } AbsLineInfo; */
struct abs_line_info {
	int32_t pc;
	int32_t line;
};

/* ---- PUC Lua. */

/* 5.1/5.3: lineinfo[pc] is the absolute line (ldebug.c getline/luaG_getfuncline, 5.1, 5.3). */
static int lines_absolute(int fd, const struct raw_proto *rp, int *lines)
{
	if (!remote_read(fd, rp->lineinfo, lines, (size_t)rp->sizecode * sizeof(int)))
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
	if (!remote_read(fd, rp->lineinfo, delta, (size_t)n))
		goto out;
	if (nabs && !remote_read(fd, rp->abslineinfo, abs, (size_t)nabs * sizeof(*abs)))
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
int puc_read_lines(int fd, const struct lua_puc_version *v, const struct raw_proto *rp,
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

/* ---- LuaJIT (lj_debug.c lj_debug_line). */

/* lj_debug_line: position 0 (the function header) is firstline, position p > 0 is firstline +
 * lineinfo[p - 1], entries u8 / u16 / u32 by numline (< 256, < 65536, else). */
int luajit_read_lines(int fd, const struct raw_proto *rp, int32_t numline, bool want,
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
	if (count && !remote_read(fd, rp->lineinfo, raw, count * width))
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
