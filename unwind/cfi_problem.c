/* SPDX-License-Identifier: MIT */
#include "unwind/cfi_problem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"

void cfi_problem_init(struct cfi_problem *p, const char *file)
{
	p->text[0] = '\0';
	p->file = file;
}

void cfi_problem_note(struct cfi_problem *p, const char *fmt, ...)
{
	char text[CFI_PROBLEM_MAX];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(text)) /* a reason cut short is still a reason: say it was cut */
		memcpy(text + sizeof(text) - 4, "...", 4);
	if (cfi_problem_found(p)) {
		lp_debug("%s: also: %s", p->file, text);
		return;
	}
	(void)snprintf(p->text, sizeof(p->text), "%s", text);
}

bool cfi_problem_found(const struct cfi_problem *p) { return p->text[0] != '\0'; }
