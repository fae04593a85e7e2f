/* SPDX-License-Identifier: MIT */
#include "output/utf8_text.h"

/* The checks follow RFC 3629, section 4 (the table of well-formed byte sequences). */
size_t utf8_printable_length(const unsigned char *s, size_t len)
{
	unsigned lead = s[0], low = 0x80, high = 0xbf;
	uint32_t cp;
	size_t n;

	if (lead < 0x80)
		return lead >= 0x20 && lead != 0x7f;
	if (lead >= 0xc2 && lead <= 0xdf) {
		n = 2, cp = lead & 0x1f;
	} else if (lead >= 0xe0 && lead <= 0xef) {
		n = 3, cp = lead & 0x0f;
		low = lead == 0xe0 ? 0xa0 : 0x80;  /* overlong */
		high = lead == 0xed ? 0x9f : 0xbf; /* surrogates */
	} else if (lead >= 0xf0 && lead <= 0xf4) {
		n = 4, cp = lead & 0x07;
		low = lead == 0xf0 ? 0x90 : 0x80;  /* overlong */
		high = lead == 0xf4 ? 0x8f : 0xbf; /* beyond U+10FFFF */
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned byte = s[i];

		if (byte < (i == 1 ? low : 0x80) || byte > (i == 1 ? high : 0xbf))
			return 0;
		cp = cp << 6 | (byte & 0x3f);
	}
	if (cp <= 0x9f || cp == 0xfffe || cp == 0xffff)
		return 0;
	return n;
}
