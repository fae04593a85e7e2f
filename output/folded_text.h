/* SPDX-License-Identifier: MIT */
/* folded_text.h - the folded stack format (docs/output-format.md): one line per stack, its frames
 * root first separated by ';', then a space and the sample count. Frame names come from the
 * profiled processes (symbols, file names, Lua chunk names): any bytes. */
#ifndef LUA_PERF_FOLDED_TEXT_H
#define LUA_PERF_FOLDED_TEXT_H

#include <stdio.h>

#include "lib/strbuf.h"
#include "output/folded_profile.h"

/* Append name to the frame being built in sb, its ';' (the frame separator) and line ends
 * replaced by ':', so that whatever it holds it stays within one frame of one line. */
void folded_frame_append(struct strbuf *sb, const char *name);

/* Write the profile's lines to f. Returns 0 or -EIO (f has its error flag set). */
int folded_text_write(FILE *f, const struct folded_profile *profile);

#endif
