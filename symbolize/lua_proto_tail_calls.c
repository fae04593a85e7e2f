/* SPDX-License-Identifier: MIT */
/* lua_proto_tail_calls.c - the bytecode indexes of a PUC Lua 5.1/5.3 proto's OP_TAILCALL
 * instructions, read from the target's code array. They tell a caller caught in the middle of a
 * tail call (profiler/frame_names.h: frame_namer_is_replaced_caller). */
#include <errno.h>
#include <stdlib.h>

#include "symbolize/lua_symbolize_internal.h"

/* Instructions read per pread: bounds the buffer whatever sizecode says. */
#define CODE_CHUNK 4096

static int append_index(uint32_t **indexes, uint32_t *count, uint32_t *capacity, uint32_t pc)
{
	if (*count == *capacity) {
		uint32_t grown = *capacity ? *capacity * 2 : 4;
		uint32_t *bigger = realloc(*indexes, (size_t)grown * sizeof(*bigger));
		if (!bigger)
			return -ENOMEM;
		*indexes = bigger;
		*capacity = grown;
	}
	(*indexes)[(*count)++] = pc;
	return 0;
}

/* *out: the ascending indexes of OP_TAILCALL in the code of rp (*count of them), NULL when none
 * or when the version runs tail calls in place (op_tailcall 0). -EFAULT when the code cannot be
 * read, -ENOMEM. */
int puc_read_tail_calls(int fd, const struct lua_puc_version *v, const struct raw_proto *rp,
			uint32_t **out, uint32_t *count)
{
	uint32_t code[CODE_CHUNK], capacity = 0;
	int err = 0;

	*out = NULL;
	*count = 0;
	if (v->proto.op_tailcall == 0)
		return 0;
	for (uint32_t first = 0; first < (uint32_t)rp->sizecode && err == 0; first += CODE_CHUNK) {
		uint32_t n = (uint32_t)rp->sizecode - first < CODE_CHUNK ? (uint32_t)rp->sizecode - first
									: CODE_CHUNK;
		if (!remote_read(fd, rp->code + (uint64_t)first * sizeof(*code), code,
				 n * sizeof(*code))) {
			err = -EFAULT;
			break;
		}
		for (uint32_t i = 0; i < n && err == 0; i++)
			if ((code[i] & v->proto.opcode_mask) == v->proto.op_tailcall)
				err = append_index(out, count, &capacity, first + i);
	}
	if (err < 0) {
		free(*out);
		*out = NULL;
		*count = 0;
	}
	return err;
}
