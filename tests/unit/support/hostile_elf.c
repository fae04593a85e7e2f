/* SPDX-License-Identifier: MIT */
#include "tests/unit/support/hostile_elf.h"

#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unwind/elf_image.h"

uint64_t xorshift64s_next(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dull;
}

const char *lua_detect_result_name(enum lua_detect_result r)
{
	switch (r) {
	case LUA_DETECT_NONE: return "none";
	case LUA_DETECT_OK: return "ok";
	case LUA_DETECT_UNSUPPORTED: return "unsupported";
	}
	return "?";
}

int hostile_run_open(struct hostile_run *h, const char *file, const char *dir, const char *name,
		     hostile_detect_fn detect)
{
	memset(h, 0, sizeof(*h));
	h->file = file;
	h->rng = 0x9e3779b97f4a7c15ull;
	h->detect = detect;
	if (blob_read_file(file, &h->orig) != 0) {
		printf("FAIL cannot read %s\n", file);
		return -1;
	}
	size_t path_len = strlen(dir) + strlen(name) + 32;
	h->work = malloc(h->orig.size);
	h->path = malloc(path_len);
	if (!h->work || !h->path) {
		printf("FAIL out of memory\n");
		hostile_run_close(h);
		return -1;
	}
	snprintf(h->path, path_len, "%s/%s.%ld", dir, name, (long)getpid());
	return 0;
}

void hostile_run_close(struct hostile_run *h)
{
	if (h->path)
		unlink(h->path);
	free(h->path);
	free(h->work);
	free(h->orig.data);
	h->path = NULL;
	h->work = NULL;
	h->orig.data = NULL;
}

static void keep_reason(struct hostile_stats *st, const char *reason)
{
	for (unsigned i = 0; i < st->kept_count; i++)
		if (st->kept[i] == reason)
			return;
	if (st->kept_count < HOSTILE_KEPT_REASONS && strlen(reason) < sizeof(st->kept_text[0])) {
		st->kept[st->kept_count] = reason;
		strcpy(st->kept_text[st->kept_count++], reason);
	}
}

void hostile_try(struct hostile_run *h, const char *what, const uint8_t *data, size_t size)
{
	struct hostile_stats *st = &h->st;
	st->runs++;
	if (blob_write_file(h->path, data, size) != 0) {
		printf("FAIL %s: cannot write %s\n", what, h->path);
		st->broken++;
		return;
	}
	enum lua_detect_result r;
	const char *reason = NULL;
	bool good = false;
	if (h->detect(h->path, &r, &reason, &good) != 0) {
		st->unopenable++;
		return;
	}
	if (r == LUA_DETECT_OK) {
		st->ok++;
	} else if (r == LUA_DETECT_UNSUPPORTED) {
		st->unsupported++;
		good = good && reason && reason[0];
		if (good)
			keep_reason(st, reason);
	} else if (r == LUA_DETECT_NONE) {
		st->none++;
	} else {
		good = false;
	}
	if (!good) {
		printf("FAIL %s: result %s breaks the contract\n", what, lua_detect_result_name(r));
		st->broken++;
	}
}

void hostile_try_corrupt(struct hostile_run *h, const char *what, size_t off, size_t size,
			 unsigned bytes)
{
	memcpy(h->work, h->orig.data, h->orig.size);
	for (unsigned j = 0; j < bytes; j++) {
		uint8_t value = (uint8_t)xorshift64s_next(&h->rng);
		h->work[off + (size_t)(xorshift64s_next(&h->rng) % size)] = value;
	}
	hostile_try(h, what, h->work, h->orig.size);
}

void hostile_truncations(struct hostile_run *h)
{
	for (size_t len = 0; len < h->orig.size; len = len < 4096 ? len + 61 : len * 9 / 8 + 1) {
		char what[64];
		snprintf(what, sizeof(what), "truncated to %zu", len);
		hostile_try(h, what, h->orig.data, len);
	}
}

void hostile_corruptions(struct hostile_run *h, size_t region, unsigned copies, unsigned bytes)
{
	if (region > h->orig.size)
		region = h->orig.size;
	for (unsigned i = 0; i < copies; i++) {
		char what[64];
		snprintf(what, sizeof(what), "corrupt %u (%zu bytes region)", i, region);
		hostile_try_corrupt(h, what, 0, region, bytes);
	}
}

bool hostile_section_extent(const char *file, const char *name, size_t *offset, size_t *size)
{
	struct elf_image img;
	if (elf_image_open(&img, file) != 0)
		return false;
	GElf_Shdr shdr;
	bool found = elf_image_section(&img, name, &shdr) && shdr.sh_type != SHT_NOBITS &&
		     shdr.sh_size > 0;
	if (found) {
		*offset = (size_t)shdr.sh_offset;
		*size = (size_t)shdr.sh_size;
	}
	elf_image_close(&img);
	return found;
}

void hostile_section_corruptions(struct hostile_run *h, unsigned copies)
{
	static const char *const sections[] = {".dynsym", ".dynstr", ".symtab", ".strtab", ".rodata",
					       ".eh_frame_hdr", ".eh_frame", ".text", ".data.rel.ro"};
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		size_t off, size;
		if (!hostile_section_extent(h->file, sections[i], &off, &size) || off >= h->orig.size ||
		    size > h->orig.size - off)
			continue;
		for (unsigned copy = 0; copy < copies; copy++) {
			char what[64];
			snprintf(what, sizeof(what), "%s corrupt %u", sections[i], copy);
			hostile_try_corrupt(h, what, off, size, copy < 8 ? 4 : copy < 16 ? 64 : 1024);
		}
	}
}

bool hostile_report(struct hostile_run *h)
{
	struct hostile_stats *st = &h->st;
	for (unsigned i = 0; i < st->kept_count; i++) {
		if (strcmp(st->kept[i], st->kept_text[i]) != 0) {
			printf("FAIL reason \"%s\" changed into \"%s\"\n", st->kept_text[i], st->kept[i]);
			st->broken++;
		}
	}
	printf("%u runs: %u ok, %u none, %u unsupported, %u not ELF, %u contract failures\n", st->runs,
	       st->ok, st->none, st->unsupported, st->unopenable, st->broken);
	return st->broken == 0;
}
