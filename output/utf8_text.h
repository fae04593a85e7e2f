/* SPDX-License-Identifier: MIT */
/* utf8_text.h - frame names are untrusted bytes: which of them are printable UTF-8 characters
 * (the SVG and the pprof output show every other byte as U+FFFD). */
#ifndef LUA_PERF_UTF8_TEXT_H
#define LUA_PERF_UTF8_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* Length of the character at s[0..len) (len > 0) when it is well-formed UTF-8 (RFC 3629: shortest
 * form, no surrogates, at most U+10FFFF) of a printable character XML 1.0 allows (no C0/C1
 * controls, DEL, U+FFFE, U+FFFF); 0 otherwise. */
size_t utf8_printable_length(const unsigned char *s, size_t len);

#endif
