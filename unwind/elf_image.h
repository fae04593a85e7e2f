/* SPDX-License-Identifier: MIT */
/* elf_image.h - a read-only view of one ELF file (on disk, or a memfd holding the vdso) through
 * libelf: identity (build-id or content hash), loadable segments, sections. Input is hostile:
 * every accessor bounds-checks and fails cleanly. */
#ifndef LUA_PERF_ELF_IMAGE_H
#define LUA_PERF_ELF_IMAGE_H

#include <gelf.h>
#include <stddef.h>
#include <stdint.h>

#define ELF_ID_MAX 20 /* sha1 build-ids are 20 bytes; a content hash is 16 */

struct elf_segment {
	uint64_t vaddr;
	uint64_t memsz;
	uint64_t offset;
	uint64_t filesz;
	uint32_t flags; /* PF_X | PF_W | PF_R */
};

struct elf_image {
	int fd;
	char *name;            /* how messages name the file (its path): an owned copy */
	Elf *elf;
	uint16_t type;         /* ET_EXEC / ET_DYN */
	uint8_t id[ELF_ID_MAX];
	size_t id_len;
	int id_is_build_id;    /* 1: NT_GNU_BUILD_ID; 0: hash of the file's content */
	struct elf_segment *loads;
	size_t load_count;
};

/* Open path read-only. Returns 0 or a negative errno (with a warning naming the file). */
int elf_image_open(struct elf_image *img, const char *path);
/* Same on an already open descriptor; takes ownership of fd (closed by elf_image_close).
 * name_for_messages (NULL: "(elf)") is copied into img->name. */
int elf_image_open_fd(struct elf_image *img, int fd, const char *name_for_messages);
void elf_image_close(struct elf_image *img);

/* Section by name; returns NULL when absent. */
Elf_Scn *elf_image_section(const struct elf_image *img, const char *name, GElf_Shdr *shdr);
/* The ELF vaddr that file offset `offset` is loaded at, through the PT_LOAD that holds it. */
int elf_image_offset_to_vaddr(const struct elf_image *img, uint64_t offset, uint64_t *vaddr);
/* Up to len bytes of the file's loaded contents at ELF vaddr (a readable PT_LOAD's file part):
 * how many were read, 0 when vaddr is in none. */
size_t elf_image_read_vaddr(const struct elf_image *img, uint64_t vaddr, void *buf, size_t len);
/* Hex of img->id into buf (2 * id_len + 1 bytes). */
void elf_image_id_hex(const struct elf_image *img, char *buf, size_t buflen);
/* The .gnu_debuglink file name, or NULL (pointer into libelf's data, valid until close). */
const char *elf_image_debuglink(const struct elf_image *img);

#endif
