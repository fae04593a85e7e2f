/* SPDX-License-Identifier: MIT */
#include "tests/unit/support/cfi_table_shape.h"

#include <stdio.h>
#include <string.h>

/* The DWARF register field of an expression rule (DW_OP_breg0..31) or the PLT threshold
 * (DW_OP_lit0..31): unwind/cfi_compile.c's match_*_expression. */
#define EXPRESSION_REG_LIMIT 32

static const char *rule_error(const struct unwind_rule *rule, char *why, size_t why_size)
{
	unsigned reg = rule->cfa_reg;

	if (rule->cfa_type > CFA_UNSUPPORTED)
		snprintf(why, why_size, "cfa_type %u", (unsigned)rule->cfa_type);
	else if (rule->cfa_type == CFA_REG_OFF && reg >= DW_RIP)
		snprintf(why, why_size, "register %u for a register + offset CFA", reg);
	else if (rule->cfa_type == CFA_DEREF_REG_OFF && (reg >= EXPRESSION_REG_LIMIT || reg == DW_RIP))
		snprintf(why, why_size, "register %u for a dereferenced CFA", reg);
	else if (rule->cfa_type == CFA_PLT && reg >= EXPRESSION_REG_LIMIT)
		snprintf(why, why_size, "PLT threshold %u", reg);
	else if (rule->rbp_based >> SREG_COUNT)
		snprintf(why, why_size, "rbp_based 0x%x beyond the saved registers", rule->rbp_based);
	else if (rule->saved_regs || rule->pad2)
		snprintf(why, why_size, "saved_regs or padding not zero (the table store sets the "
			 "one; rules are compared as bytes)");
	else
		return NULL;
	return why;
}

static const char *row_error(const struct cfi_table *t, size_t i, char *why, size_t why_size)
{
	const struct cfi_row *row = &t->rows[i];
	char rule_why[96];

	if (rule_error(&row->rule, rule_why, sizeof(rule_why)))
		snprintf(why, why_size, "row %zu: %s", i, rule_why);
	else if (cfi_table_lookup(t, row->pc) != row)
		snprintf(why, why_size, "row %zu: the lookup of its pc finds another row", i);
	else if (i > 0 && row->pc <= t->rows[i - 1].pc)
		snprintf(why, why_size, "row %zu not after row %zu", i, i - 1);
	else if (i > 0 && memcmp(&row->rule, &t->rows[i - 1].rule, sizeof(row->rule)) == 0)
		snprintf(why, why_size, "rows %zu and %zu have the same rule", i - 1, i);
	else
		return NULL;
	return why;
}

const char *cfi_table_shape_error(const struct cfi_table *t, char *why, size_t why_size)
{
	if (t->count == 0)
		return NULL;
	if (t->rows[0].rule.cfa_type == CFA_GAP) {
		snprintf(why, why_size, "the first row is a gap");
		return why;
	}
	if (t->rows[t->count - 1].rule.cfa_type != CFA_GAP) {
		snprintf(why, why_size, "the last row is not a gap");
		return why;
	}
	for (size_t i = 0; i < t->count; i++)
		if (row_error(t, i, why, why_size))
			return why;
	if (t->rows[0].pc > 0 && cfi_table_lookup(t, t->rows[0].pc - 1) != NULL) {
		snprintf(why, why_size, "a lookup before the first row finds one");
		return why;
	}
	return NULL;
}
