/* SPDX-License-Identifier: MIT */
#include "tests/unit/support/detect_contract.h"

#include <string.h>

/* Where L is, as an OK result must say: a callee-saved register, or a slot of the frame below
 * the return address (CFA - 8) with no register named. */
static bool l_home_valid(const struct lua_interp *in)
{
	if (in->l_in_frame)
		return in->l_in_frame == 1 && in->l_cfa_off <= -16 && in->l_reg >= 17;
	return in->l_cfa_off == 0 &&
	       (in->l_reg == 3 || in->l_reg == 6 || (in->l_reg >= 12 && in->l_reg <= 15));
}

bool puc_detect_contract_kept(enum lua_detect_result result, const struct lua_runtime *rt)
{
	if (!memchr(rt->version, '\0', sizeof(rt->version)))
		return false;
	return result != LUA_DETECT_OK ||
	       (rt->puc && rt->interp.kind == rt->puc->kind &&
		rt->interp.exec_start < rt->interp.exec_end && l_home_valid(&rt->interp));
}

/* An OK result: the interpreter range, a layout a walker can use, "assert" at ffid 2. */
static bool luajit_ok_valid(const struct luajit_runtime *rt)
{
	const struct luajit_layout *j = &rt->interp.jit;
	return rt->interp.kind == LUA_KIND_LUAJIT && rt->interp.exec_start < rt->interp.exec_end &&
	       j->gc64 <= 1 && j->cframe_size > 0 && j->disp2g < 0 && j->g_to_j > 0 &&
	       rt->ffname_count > 2 && rt->ffname_count <= 256 && rt->ffnames &&
	       !rt->ffnames[0] && !rt->ffnames[1] && rt->description[0] &&
	       memchr(rt->description, '\0', sizeof(rt->description));
}

bool luajit_detect_contract_kept(enum lua_detect_result result, const struct luajit_runtime *rt)
{
	return result == LUA_DETECT_OK ? luajit_ok_valid(rt) : !rt->ffnames;
}
