/* SPDX-License-Identifier: MIT */
#include "unwind/eh_frame_locate.h"

#include <errno.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>

/* DWARF pointer encodings (LSB, "DWARF Exception Header Encoding"): the value's format in the
 * low nibble, what it is relative to in the high one. */
#define DW_EH_PE_absptr 0x00
#define DW_EH_PE_udata2 0x02
#define DW_EH_PE_udata4 0x03
#define DW_EH_PE_udata8 0x04
#define DW_EH_PE_sdata2 0x0a
#define DW_EH_PE_sdata4 0x0b
#define DW_EH_PE_sdata8 0x0c
#define DW_EH_PE_pcrel 0x10
#define DW_EH_PE_datarel 0x30

/* The vaddr of .eh_frame_hdr: the PT_GNU_EH_FRAME program header. */
static int find_eh_frame_hdr(const struct elf_image *img, uint64_t *vaddr)
{
	size_t count;
	if (!img->elf || elf_getphdrnum(img->elf, &count) != 0)
		return -ENOENT;
	for (size_t i = 0; i < count; i++) {
		GElf_Phdr phdr;
		if (gelf_getphdr(img->elf, (int)i, &phdr) && phdr.p_type == PT_GNU_EH_FRAME) {
			*vaddr = phdr.p_vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

/* A little-endian value of size bytes, sign-extended when is_signed. */
static uint64_t read_le(const uint8_t *p, unsigned size, int is_signed)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)p[i] << (8 * i);
	if (is_signed && size < 8 && (v >> (8 * size - 1)) & 1)
		v |= ~UINT64_C(0) << (8 * size);
	return v;
}

/* eh_frame_ptr, at hdr_vaddr + 4 in the header's first bytes (hdr, 12 of them). */
static int decode_eh_frame_ptr(const uint8_t *hdr, uint64_t hdr_vaddr, uint64_t *out)
{
	uint8_t enc = hdr[1];
	unsigned size;
	switch (enc & 0x0f) {
	case DW_EH_PE_absptr: case DW_EH_PE_udata8: case DW_EH_PE_sdata8: size = 8; break;
	case DW_EH_PE_udata4: case DW_EH_PE_sdata4: size = 4; break;
	case DW_EH_PE_udata2: case DW_EH_PE_sdata2: size = 2; break;
	default: return -EINVAL; /* uleb128 and omit: no .eh_frame a reader can find */
	}
	uint64_t value = read_le(hdr + 4, size, (enc & 0x08) != 0);
	switch (enc & 0x70) {
	case DW_EH_PE_absptr: *out = value; return 0;
	case DW_EH_PE_pcrel: *out = hdr_vaddr + 4 + value; return 0; /* wraps like the CPU's */
	case DW_EH_PE_datarel: *out = hdr_vaddr + value; return 0;
	default: return -EINVAL;
	}
}

/* The length of the records at the start of data: up to the zero terminator, the last whole
 * record, or size. Each step moves at least 4 bytes: it ends. */
static size_t records_length(const uint8_t *data, size_t size)
{
	size_t at = 0;
	while (size - at >= 4) {
		uint64_t length = read_le(data + at, 4, 0);
		size_t header = 4;
		if (length == 0)
			return at + 4; /* the terminator stays: libdwarf stops there */
		if (length == 0xffffffff) {
			if (size - at < 12)
				break;
			length = read_le(data + at + 4, 8, 0);
			header = 12;
		}
		if (length > size - at - header)
			break;
		at += header + (size_t)length;
	}
	return at;
}

/* How many file bytes a readable load segment holds from vaddr on (0: none). */
static uint64_t file_bytes_from(const struct elf_image *img, uint64_t vaddr)
{
	for (size_t i = 0; i < img->load_count; i++) {
		const struct elf_segment *seg = &img->loads[i];
		if ((seg->flags & PF_R) && vaddr >= seg->vaddr && vaddr - seg->vaddr < seg->filesz)
			return seg->filesz - (vaddr - seg->vaddr);
	}
	return 0;
}

int eh_frame_from_program_headers(const struct elf_image *img, size_t max_size, uint64_t *addr,
				  uint8_t **data, size_t *size)
{
	uint64_t hdr_vaddr, eh_vaddr;
	uint8_t hdr[12];
	int err = find_eh_frame_hdr(img, &hdr_vaddr);
	if (err)
		return err;
	if (elf_image_read_vaddr(img, hdr_vaddr, hdr, sizeof(hdr)) != sizeof(hdr) || hdr[0] != 1)
		return -EINVAL; /* version 1 is the only one (LSB) */
	if ((err = decode_eh_frame_ptr(hdr, hdr_vaddr, &eh_vaddr)) != 0)
		return err;
	uint64_t extent = file_bytes_from(img, eh_vaddr);
	size_t want = extent < max_size ? (size_t)extent : max_size;
	if (want == 0)
		return -ENOENT;
	uint8_t *buf = malloc(want);
	if (!buf)
		return -ENOMEM;
	size_t length = records_length(buf, elf_image_read_vaddr(img, eh_vaddr, buf, want));
	if (length == 0) {
		free(buf);
		return -ENOENT;
	}
	uint8_t *fitted = realloc(buf, length);
	*addr = eh_vaddr;
	*data = fitted ? fitted : buf;
	*size = length;
	return 0;
}
