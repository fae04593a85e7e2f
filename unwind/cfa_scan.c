/* SPDX-License-Identifier: MIT */
#include "unwind/cfa_scan.h"

#include <stdbool.h>
#include <string.h>

#include <libdwarf/dwarf.h>

/* Operands of the instructions with a 0 high-order 2 bits (DWARF 5, 7.24, and GNU's): 'u' ULEB128,
 * 's' SLEB128, '1' '2' '4' '8' fixed sizes, 'b' a ULEB128 length and that many bytes. NULL: the
 * size is unknown here (DW_CFA_set_loc) or the opcode undefined. */
static const char *const operands[0x40] = {
	[DW_CFA_nop] = "",
	[DW_CFA_advance_loc1] = "1",
	[DW_CFA_advance_loc2] = "2",
	[DW_CFA_advance_loc4] = "4",
	[DW_CFA_offset_extended] = "uu",
	[DW_CFA_restore_extended] = "u",
	[DW_CFA_undefined] = "u",
	[DW_CFA_same_value] = "u",
	[DW_CFA_register] = "uu",
	[DW_CFA_remember_state] = "",
	[DW_CFA_restore_state] = "",
	[DW_CFA_def_cfa] = "uu",
	[DW_CFA_def_cfa_register] = "u",
	[DW_CFA_def_cfa_offset] = "u",
	[DW_CFA_def_cfa_expression] = "b",
	[DW_CFA_expression] = "ub",
	[DW_CFA_offset_extended_sf] = "us",
	[DW_CFA_def_cfa_sf] = "us",
	[DW_CFA_def_cfa_offset_sf] = "s",
	[DW_CFA_val_offset] = "uu",
	[DW_CFA_val_offset_sf] = "us",
	[DW_CFA_val_expression] = "ub",
	[DW_CFA_MIPS_advance_loc8] = "8",
	[DW_CFA_GNU_window_save] = "",
	[DW_CFA_GNU_args_size] = "u",
	[DW_CFA_GNU_negative_offset_extended] = "uu",
};

/* A LEB128 number at *p (its value when it fits 64 bits, else UINT64_MAX); false when the program
 * ends inside it. */
static bool read_leb(const uint8_t **p, const uint8_t *end, uint64_t *value)
{
	unsigned shift = 0;
	*value = 0;
	while (*p < end) {
		uint8_t byte = *(*p)++;
		if (shift < 64)
			*value |= (uint64_t)(byte & 0x7f) << shift;
		else
			*value = UINT64_MAX;
		shift += 7;
		if (!(byte & 0x80))
			return true;
	}
	return false;
}

static bool skip_operands(const char *kinds, const uint8_t **p, const uint8_t *end)
{
	for (; *kinds; kinds++) {
		uint64_t n = 0;
		if (*kinds >= '1' && *kinds <= '8')
			n = (uint64_t)(*kinds - '0');
		else if (!read_leb(p, end, &n))
			return false;
		else if (*kinds != 'b')
			n = 0; /* a number, already read */
		if (n > (uint64_t)(end - *p))
			return false;
		*p += n;
	}
	return true;
}

static size_t count_byte(const uint8_t *p, const uint8_t *end, uint8_t byte)
{
	size_t n = 0;
	while ((p = memchr(p, byte, (size_t)(end - p))) != NULL) {
		n++;
		if (++p == end)
			break;
	}
	return n;
}

/* The instructions that start a new row (DWARF 5, 6.4.2.1; DW_CFA_MIPS_advance_loc8 is GNU's). */
static bool starts_row(uint8_t op)
{
	return (op & 0xc0) == DW_CFA_advance_loc || op == DW_CFA_advance_loc1 || op == DW_CFA_advance_loc2 ||
	       op == DW_CFA_advance_loc4 || op == DW_CFA_MIPS_advance_loc8;
}

void cfa_scan_program(const uint8_t *program, size_t len, struct cfa_scan *out)
{
	const uint8_t *p = program, *end = program + len;
	size_t depth = 0;
	memset(out, 0, sizeof(*out));
	while (p < end) {
		uint8_t op = *p++;
		const char *kinds = (op & 0xc0) == DW_CFA_offset ? "u" : (op & 0xc0) ? "" : operands[op];
		if (!kinds) {
			size_t rest = count_byte(p, end, DW_CFA_remember_state);
			if (depth + rest > out->remember_depth)
				out->remember_depth = depth + rest;
			out->remember_count += rest;
			out->advance_count += (size_t)(end - p) + 1; /* this one, and any byte after */
			return;
		}
		if (starts_row(op))
			out->advance_count++;
		if (op == DW_CFA_remember_state) {
			out->remember_count++;
			if (++depth > out->remember_depth)
				out->remember_depth = depth;
		} else if (op == DW_CFA_restore_state && depth > 0) {
			depth--;
		}
		if (!skip_operands(kinds, &p, end))
			break;
	}
}
