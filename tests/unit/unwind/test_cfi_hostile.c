/* SPDX-License-Identifier: MIT */
/* test_cfi_hostile - elf_image_open + cfi_table_build on hostile inputs must fail cleanly or give
 * a well-formed table, never crash, hang or leak (run it under -DLUA_PERF_SANITIZE=ON).
 *
 * Usage: test_cfi_hostile LIBC_PATH WORK_DIR
 * Inputs: an empty file, random bytes, truncated copies of libc, ELF headers claiming huge
 * section / program header counts, a .eh_frame whose size lies, libc with randomly corrupted
 * .eh_frame bytes, and libc itself; libc without section headers (or with damaged ones, or no
 * section named .eh_frame): the same rows, found through PT_GNU_EH_FRAME, and 0 rows without
 * that header too; the content hash that names a file without a build-id; an FDE nesting
 * DW_CFA_remember_state 16, 17 and 150,000 deep (refused from 17 on, in bounded memory); and CFA
 * programs long enough for libdwarf's row-by-row interpretation to take minutes (refused by the
 * limits of unwind/fde_cost.h in under 2 s of CPU, their neighbours' rows kept). */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libdwarf/dwarf.h>

#include "lib/log.h"
#include "tests/unit/support/cfi_table_shape.h"
#include "tests/unit/support/hostile_elf.h"
#include "tests/unit/support/test_check.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"
#include "unwind/fde_cost.h"

/* ---- the property under test */

static void check_table_shape(const char *what, const struct cfi_table *t)
{
	char why[160];

	CHECK(!cfi_table_shape_error(t, why, sizeof(why)), "%s: %s", what, why);
}

/* Open + compile; returns the row count, or -1 when either step failed (which is fine). */
static long try_file(const char *what, const char *path)
{
	struct elf_image img;
	if (elf_image_open(&img, path) != 0)
		return -1;
	CHECK(img.id_len > 0 && img.id_len <= ELF_ID_MAX, "%s: id_len %zu", what, img.id_len);
	struct cfi_table table;
	int err = cfi_table_build(&img, &table);
	long rows = -1;
	if (err == 0) {
		check_table_shape(what, &table);
		rows = (long)table.count;
		cfi_table_free(&table);
	} else {
		CHECK(err < 0 && table.count == 0 && table.rows == NULL, "%s: failed build left rows", what);
	}
	elf_image_close(&img);
	return rows;
}

static long try_blob(const char *what, const char *path, const uint8_t *data, size_t size)
{
	if (blob_write_file(path, data, size) != 0) {
		CHECK(false, "%s: cannot write %s", what, path);
		return -1;
	}
	return try_file(what, path);
}

/* ---- xorshift64s_next state (tests/hostile_elf.h): deterministic, so that failures reproduce */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

/* ---- section lookup in the pristine libc copy (trusted input) */

struct section_loc {
	uint64_t shdr_offset; /* file offset of its Elf64_Shdr */
	uint64_t addr;
	uint64_t offset;
	uint64_t size;
	uint64_t name_offset; /* file offset of its name in .shstrtab */
};

static int locate_section(const char *path, const char *name, struct section_loc *loc)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = -ENOENT;
	Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
	GElf_Ehdr ehdr;
	size_t shstrndx;
	if (elf && gelf_getehdr(elf, &ehdr) && elf_getshdrstrndx(elf, &shstrndx) == 0) {
		GElf_Shdr strtab;
		Elf_Scn *strscn = elf_getscn(elf, shstrndx);
		Elf_Scn *scn = NULL;
		while (strscn && gelf_getshdr(strscn, &strtab) && (scn = elf_nextscn(elf, scn)) != NULL) {
			GElf_Shdr shdr;
			const char *n = gelf_getshdr(scn, &shdr) ? elf_strptr(elf, shstrndx, shdr.sh_name) : NULL;
			if (n && strcmp(n, name) == 0) {
				loc->shdr_offset = ehdr.e_shoff + elf_ndxscn(scn) * (uint64_t)ehdr.e_shentsize;
				loc->addr = shdr.sh_addr;
				loc->offset = shdr.sh_offset;
				loc->size = shdr.sh_size;
				loc->name_offset = strtab.sh_offset + shdr.sh_name;
				err = 0;
				break;
			}
		}
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return err;
}

/* ---- the cases */

static void test_empty_and_random(const char *dir, char *path, size_t path_size)
{
	snprintf(path, path_size, "%s/empty", dir);
	CHECK(try_blob("empty file", path, NULL, 0) == -1, "empty file opened");

	uint8_t random_bytes[65536];
	for (size_t i = 0; i < sizeof(random_bytes); i++)
		random_bytes[i] = (uint8_t)xorshift64s_next(&rng_state);
	snprintf(path, path_size, "%s/random", dir);
	CHECK(try_blob("random bytes", path, random_bytes, sizeof(random_bytes)) == -1, "random bytes opened");
	/* Random bytes behind a valid-looking ELF identification. */
	static const uint8_t ident[] = {0x7f, 'E', 'L', 'F', ELFCLASS64, ELFDATA2LSB, EV_CURRENT};
	memcpy(random_bytes, ident, sizeof(ident));
	try_blob("random bytes with ELF magic", path, random_bytes, sizeof(random_bytes));
}

static void test_truncated(const char *dir, char *path, size_t path_size, const struct blob *libc,
			   const struct section_loc *eh)
{
	size_t lengths[] = {1, 4, 16, 63, 64, 65, 200, 4096, 0x10000, (size_t)eh->offset, (size_t)eh->offset + 1,
			    (size_t)(eh->offset + eh->size / 2), (size_t)(eh->offset + eh->size - 1),
			    libc->size / 2, libc->size - 64, libc->size - 1};
	snprintf(path, path_size, "%s/truncated", dir);
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		if (lengths[i] == 0 || lengths[i] >= libc->size)
			continue;
		char what[64];
		snprintf(what, sizeof(what), "libc truncated to %zu", lengths[i]);
		try_blob(what, path, libc->data, lengths[i]);
	}
	for (int i = 0; i < 24; i++) { /* random lengths */
		size_t len = 1 + (size_t)(xorshift64s_next(&rng_state) % (libc->size - 1));
		char what[64];
		snprintf(what, sizeof(what), "libc truncated to %zu", len);
		try_blob(what, path, libc->data, len);
	}
}

/* Write n little-endian bytes of v at p; returns the end. */
static uint8_t *put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

/* Elf64_Ehdr field offsets (gABI): e_phoff 32, e_shoff 40, e_phnum 56, e_shnum 60, e_shstrndx 62. */
static void test_huge_counts(const char *dir, char *path, size_t path_size, const struct blob *libc)
{
	uint8_t buf[8192];
	memset(buf, 0, sizeof(buf));
	memcpy(buf, libc->data, 64);
	snprintf(path, path_size, "%s/huge_counts", dir);

	(void)put_le(buf + 60, 0xffff, 2); /* e_shnum */
	(void)put_le(buf + 40, 64, 8);     /* e_shoff */
	(void)put_le(buf + 56, 0xffff, 2); /* e_phnum */
	(void)put_le(buf + 32, 64, 8);     /* e_phoff */
	CHECK(try_blob("huge e_shnum/e_phnum", path, buf, sizeof(buf)) <= 0, "huge counts gave rows");

	/* Extended numbering: e_shnum 0 and section 0's sh_size holds the real count (gABI). */
	(void)put_le(buf + 60, 0, 2);
	(void)put_le(buf + 62, 0xffff, 2);       /* SHN_XINDEX: real index in section 0's sh_link */
	(void)put_le(buf + 64 + 32, UINT64_MAX, 8); /* shdr[0].sh_size */
	buf[64 + 40] = 0xff;              /* shdr[0].sh_link */
	CHECK(try_blob("extended section count", path, buf, sizeof(buf)) <= 0, "extended count gave rows");

	/* Headers pointing past the end of the file. */
	(void)put_le(buf + 40, UINT64_MAX - 8, 8);
	(void)put_le(buf + 32, UINT64_MAX - 8, 8);
	(void)put_le(buf + 60, 3, 2);
	(void)put_le(buf + 56, 3, 2);
	CHECK(try_blob("headers past EOF", path, buf, sizeof(buf)) <= 0, "headers past EOF gave rows");
}

static void test_lying_eh_frame(const char *dir, char *path, size_t path_size, const struct blob *libc,
				const struct section_loc *eh)
{
	uint8_t *copy = malloc(libc->size);
	if (!copy) {
		CHECK(false, "out of memory");
		return;
	}
	snprintf(path, path_size, "%s/lying", dir);
	uint64_t lies[] = {UINT64_MAX, libc->size, libc->size - eh->offset + 1, 0, 7};
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		memcpy(copy, libc->data, libc->size);
		(void)put_le(copy + eh->shdr_offset + 32, lies[i], 8); /* Elf64_Shdr.sh_size */
		char what[64];
		snprintf(what, sizeof(what), ".eh_frame sh_size %#llx", (unsigned long long)lies[i]);
		try_blob(what, path, copy, libc->size);
	}
	memcpy(copy, libc->data, libc->size);
	(void)put_le(copy + eh->shdr_offset + 24, UINT64_MAX - 16, 8); /* sh_offset */
	try_blob(".eh_frame sh_offset past EOF", path, copy, libc->size);

	free(copy);
}

/* ---- .eh_frame found through PT_GNU_EH_FRAME (unwind/eh_frame_locate.h) */

static uint64_t get_le(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The file offset of the PT_GNU_EH_FRAME program header of a trusted ELF64 blob, or 0. */
static size_t eh_frame_phdr_offset(const struct blob *elf)
{
	uint64_t phoff = get_le(elf->data + 0x20, 8);
	unsigned entsize = (unsigned)get_le(elf->data + 0x36, 2), count = (unsigned)get_le(elf->data + 0x38, 2);
	for (unsigned i = 0; i < count; i++)
		if (get_le(elf->data + phoff + (uint64_t)i * entsize, 4) == PT_GNU_EH_FRAME)
			return (size_t)(phoff + (uint64_t)i * entsize);
	return 0;
}

/* The copy at path compiles to exactly the rows of want. */
static void check_same_rows(const char *what, const char *path, const uint8_t *data, size_t size,
			    const struct cfi_table *want)
{
	struct elf_image img;
	if (blob_write_file(path, data, size) != 0 || elf_image_open(&img, path) != 0) {
		CHECK(false, "%s: does not open", what);
		return;
	}
	struct cfi_table got;
	int err = cfi_table_build(&img, &got);
	CHECK(err == 0 && got.count == want->count &&
		      memcmp(got.rows, want->rows, got.count * sizeof(*got.rows)) == 0,
	      "%s: %zu rows (error %d), want the %zu rows of the pristine file", what, got.count, err,
	      want->count);
	if (err == 0)
		cfi_table_free(&got);
	elf_image_close(&img);
}

/* Without section headers (sstrip), with section headers past the end of the file, or with no
 * section named .eh_frame, the rows are those of the pristine file; without PT_GNU_EH_FRAME as
 * well there is no CFI (0 rows); a damaged .eh_frame_hdr fails cleanly. */
static void test_eh_frame_from_program_headers(const char *dir, char *path, size_t path_size,
					       const struct blob *libc, const char *libc_path,
					       const struct section_loc *eh)
{
	struct elf_image img;
	struct cfi_table want;
	if (elf_image_open(&img, libc_path) != 0 || cfi_table_build(&img, &want) != 0) {
		CHECK(false, "pristine libc does not compile");
		return;
	}
	elf_image_close(&img);
	size_t phdr = eh_frame_phdr_offset(libc);
	uint8_t *copy = malloc(libc->size);
	CHECK(phdr != 0 && copy != NULL, "no PT_GNU_EH_FRAME in libc, or out of memory");
	if (phdr == 0 || !copy) {
		free(copy);
		cfi_table_free(&want);
		return;
	}
	snprintf(path, path_size, "%s/no_sections", dir);
	memcpy(copy, libc->data, libc->size);
	(void)put_le(copy + 0x28, 0, 8); /* e_shoff */
	(void)put_le(copy + 0x3c, 0, 2); /* e_shnum */
	(void)put_le(copy + 0x3e, 0, 2); /* e_shstrndx */
	check_same_rows("no section headers", path, copy, libc->size, &want);

	memcpy(copy, libc->data, libc->size);
	(void)put_le(copy + 0x28, libc->size + 4096, 8); /* e_shoff past the end */
	check_same_rows("section headers past the end", path, copy, libc->size, &want);

	memcpy(copy, libc->data, libc->size);
	copy[eh->name_offset + 1] = 'x'; /* ".eh_frame" -> ".xh_frame" */
	check_same_rows("no section named .eh_frame", path, copy, libc->size, &want);

	(void)put_le(copy + phdr, PT_NULL, 8); /* p_type, and p_flags (0) */
	CHECK(try_blob("no .eh_frame, no PT_GNU_EH_FRAME", path, copy, libc->size) == 0,
	      "a file without CFI must give 0 rows");

	uint64_t hdr_offset = get_le(libc->data + phdr + 8, 8); /* p_offset */
	for (int round = 0; round < 64; round++) {
		memcpy(copy, libc->data, libc->size);
		copy[eh->name_offset + 1] = 'x';
		for (int i = 0; i < 1 + round % 4; i++) /* version, encodings, eh_frame_ptr */
			copy[hdr_offset + xorshift64s_next(&rng_state) % 8] = (uint8_t)xorshift64s_next(&rng_state);
		try_blob("damaged .eh_frame_hdr", path, copy, libc->size);
	}
	free(copy);
	cfi_table_free(&want);
}

static void test_corrupted_eh_frame(const char *dir, char *path, size_t path_size, const struct blob *libc,
				    const struct section_loc *eh)
{
	uint8_t *copy = malloc(libc->size);
	if (!copy) {
		CHECK(false, "out of memory");
		return;
	}
	snprintf(path, path_size, "%s/corrupted", dir);
	int compiled = 0;
	for (int round = 0; round < 48; round++) {
		memcpy(copy, libc->data, libc->size);
		/* One byte mostly breaks a single FDE (libdwarf then rejects that FDE only); many bytes
		 * usually hit a length field, and libdwarf rejects the whole section. */
		int flips = round < 24 ? 1 : 1 + (int)(xorshift64s_next(&rng_state) % 64);
		for (int i = 0; i < flips; i++) {
			uint64_t at = eh->offset + xorshift64s_next(&rng_state) % eh->size;
			copy[at] = (uint8_t)xorshift64s_next(&rng_state);
		}
		char what[64];
		snprintf(what, sizeof(what), "corrupted .eh_frame round %d", round);
		if (try_blob(what, path, copy, libc->size) > 0)
			compiled++;
	}
	CHECK(compiled > 0, "no corrupted copy compiled at all: the per-FDE error path went untested");
	free(copy);
}

/* ---- DW_CFA_remember_state nesting (unwind/cfa_scan.h): bounded, whatever the bytes */

/* FDEs of a crafted .eh_frame: `copies` FDEs in a row, each over `range` bytes of .text (after
 * those of the specs before) with a program of `repeats` copies of pattern. */
struct fde_spec {
	const uint8_t *pattern;
	size_t pattern_len;
	size_t repeats;
	uint64_t range;
	size_t copies;
};

static uint8_t *write_fde(uint8_t *p, uint8_t *start, uint64_t section_addr, uint64_t lo,
			  const struct fde_spec *spec)
{
	size_t program = spec->pattern_len * spec->repeats, fde_body = 4 + 4 + 4 + 1 + program;
	size_t fde_pad = (8 - (4 + fde_body) % 8) % 8;
	size_t fde_offset = (size_t)(p - start);
	p = put_le(p, fde_body + fde_pad, 4);
	p = put_le(p, fde_offset + 4, 4); /* back to the CIE, at the section's start */
	uint64_t field_addr = section_addr + fde_offset + 8;
	p = put_le(p, (uint64_t)(int64_t)(lo - field_addr), 4); /* pc_begin, pc-relative */
	p = put_le(p, spec->range, 4);                           /* pc_range */
	*p++ = 0;                                                /* augmentation data */
	for (size_t i = 0; i < spec->repeats; i++, p += spec->pattern_len)
		memcpy(p, spec->pattern, spec->pattern_len);
	return p + fde_pad; /* DW_CFA_nop padding: already zero */
}

/* Over the .eh_frame at eh (in copy): one CIE ("zR", pc-relative sdata4 pointers, cfa = rsp + 8,
 * return address at cfa - 8) and the FDEs of specs from text_addr on, then the terminator and
 * zeros. Returns false when they do not fit. */
static bool write_fdes(uint8_t *copy, const struct section_loc *eh, uint64_t text_addr,
		       const struct fde_spec *specs, size_t spec_count)
{
	static const uint8_t cie_body[] = {0, 0, 0, 0, /* CIE id */ 1, 'z', 'R', 0, 1, 0x78, 16, 1, 0x1b,
					   0x0c, 7, 8, 0x90, 1, 0, 0};
	size_t total = 4 + sizeof(cie_body) + 4;
	for (size_t i = 0; i < spec_count; i++) {
		size_t fde = 4 + 4 + 4 + 4 + 1 + specs[i].pattern_len * specs[i].repeats + 8;
		total += fde * specs[i].copies;
	}
	if (total > eh->size)
		return false;
	uint8_t *start = copy + eh->offset, *p = start;
	memset(start, 0, eh->size);
	p = put_le(p, sizeof(cie_body), 4);
	memcpy(p, cie_body, sizeof(cie_body));
	p += sizeof(cie_body);
	uint64_t lo = text_addr;
	for (size_t i = 0; i < spec_count; i++)
		for (size_t k = 0; k < specs[i].copies; k++, lo += specs[i].range)
			p = write_fde(p, start, eh->addr, lo, &specs[i]);
	return true; /* the zero terminator: already zero */
}

/* One FDE for the first 256 bytes of .text whose program is `repeats` copies of pattern. */
static bool write_one_fde(uint8_t *copy, const struct section_loc *eh, uint64_t text_addr,
			  const uint8_t *pattern, size_t pattern_len, size_t repeats)
{
	struct fde_spec spec = {.pattern = pattern, .pattern_len = pattern_len, .repeats = repeats,
				.range = 256, .copies = 1};
	return write_fdes(copy, eh, text_addr, &spec, 1);
}

static long peak_rss_kib(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

static void test_remember_state_nesting(const char *dir, char *path, size_t path_size,
					const struct blob *libc, const char *libc_path,
					const struct section_loc *eh)
{
	static const uint8_t remember[] = {DW_CFA_remember_state};
	static const uint8_t pair[] = {DW_CFA_remember_state, DW_CFA_restore_state};
	struct section_loc text;
	uint8_t *copy = malloc(libc->size);
	if (!copy || locate_section(libc_path, ".text", &text) != 0) {
		CHECK(false, "out of memory, or no .text in libc");
		free(copy);
		return;
	}
	snprintf(path, path_size, "%s/remember_state", dir);
	memcpy(copy, libc->data, libc->size);
	CHECK(write_one_fde(copy, eh, text.addr, remember, 1, 16) &&
	      try_blob("nesting 16 deep", path, copy, libc->size) > 0, "nesting 16 deep was refused");
	CHECK(write_one_fde(copy, eh, text.addr, remember, 1, 17) &&
	      try_blob("nesting 17 deep", path, copy, libc->size) == -1, "nesting 17 deep was accepted");
	CHECK(write_one_fde(copy, eh, text.addr, pair, 2, 1000) &&
	      try_blob("1000 remember/restore pairs", path, copy, libc->size) > 0, "pairs were refused");
	/* The whole section of DW_CFA_remember_state: libdwarf alone would take about 4 KiB a byte
	 * (over 600 MiB for libc's 150 KiB). */
	size_t most = eh->size - 64;
	long before = peak_rss_kib();
	CHECK(write_one_fde(copy, eh, text.addr, remember, 1, most) &&
	      try_blob("a section of DW_CFA_remember_state", path, copy, libc->size) == -1,
	      "%zu nested DW_CFA_remember_state accepted", most);
	long grown = peak_rss_kib() - before;
	CHECK(grown < 32 * 1024, "%zu bytes of DW_CFA_remember_state took %ld KiB", most, grown);
	free(copy);
}

/* ---- long CFA programs: libdwarf interprets an FDE's program again for every row */

static double cpu_seconds(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A copy of libc (*size bytes, malloc'ed) whose .eh_frame is `bytes` zeros appended to the file,
 * at the same address; *moved locates them. */
static uint8_t *grown_eh_frame(const struct blob *libc, const struct section_loc *eh, size_t bytes,
			       struct section_loc *moved, size_t *size)
{
	size_t at = (libc->size + 7) & ~(size_t)7;
	uint8_t *copy = calloc(1, at + bytes);
	if (!copy)
		return NULL;
	memcpy(copy, libc->data, libc->size);
	*moved = *eh;
	moved->offset = at;
	moved->size = bytes;
	(void)put_le(copy + eh->shdr_offset + 24, at, 8);    /* Elf64_Shdr.sh_offset */
	(void)put_le(copy + eh->shdr_offset + 32, bytes, 8); /* sh_size */
	*size = at + bytes;
	return copy;
}

/* Compile the copy at path within file_steps; returns the CPU seconds it took, the table in
 * *table (empty when the build failed). */
static double timed_build(const char *what, const char *path, const uint8_t *data, size_t size,
			  uint64_t file_steps, struct cfi_table *table)
{
	struct elf_image img;
	memset(table, 0, sizeof(*table));
	if (blob_write_file(path, data, size) != 0 || elf_image_open(&img, path) != 0) {
		CHECK(false, "%s: does not open", what);
		return 0;
	}
	double start = cpu_seconds();
	if (cfi_table_build_within(&img, file_steps, table) == 0)
		check_table_shape(what, table);
	double took = cpu_seconds() - start;
	elf_image_close(&img);
	printf("%s: %zu rows in %.3f s\n", what, table->count, took);
	return took;
}

static enum cfa_type cfa_type_at(const struct cfi_table *t, uint64_t pc)
{
	const struct cfi_row *row = cfi_table_lookup(t, pc);
	return row ? (enum cfa_type)row->rule.cfa_type : CFA_GAP;
}

#define LONG_PROGRAM_SECONDS 2.0

/* A copy of libc whose .eh_frame holds the FDEs of specs, compiled within file_steps; the CPU
 * seconds it took, the table in *t. */
static double build_crafted(const char *what, const char *path, const struct blob *libc,
			    const struct section_loc *eh, uint64_t text_addr, const struct fde_spec *specs,
			    size_t spec_count, uint64_t file_steps, struct cfi_table *t)
{
	size_t bytes = 4096;
	for (size_t i = 0; i < spec_count; i++)
		bytes += (specs[i].pattern_len * specs[i].repeats + 32) * specs[i].copies;
	struct section_loc moved;
	size_t size;
	uint8_t *copy = grown_eh_frame(libc, eh, bytes, &moved, &size);
	memset(t, 0, sizeof(*t));
	if (!copy || !write_fdes(copy, &moved, text_addr, specs, spec_count)) {
		CHECK(false, "%s: out of memory, or the FDEs do not fit", what);
		free(copy);
		return 0;
	}
	double took = timed_build(what, path, copy, size, file_steps, t);
	free(copy);
	return took;
}

static const uint8_t ordinary_program[] = {DW_CFA_advance_loc | 4, DW_CFA_def_cfa_offset, 16};

/* One FDE of 1 MiB of DW_CFA_advance_loc1 (512 Ki rows) between two ordinary ones: refused in
 * bounded time, its range a gap; the ordinary ones keep their rows. */
static void test_one_long_program(const char *path, const struct blob *libc, const struct section_loc *eh,
				  uint64_t text_addr)
{
	static const uint8_t advance1[] = {DW_CFA_advance_loc1, 1};
	const size_t rows = 512 * 1024;
	const struct fde_spec specs[] = {
		{.pattern = ordinary_program, .pattern_len = sizeof(ordinary_program), .repeats = 1, .range = 64,
		 .copies = 1},
		{.pattern = advance1, .pattern_len = sizeof(advance1), .repeats = rows, .range = rows, .copies = 1},
		{.pattern = ordinary_program, .pattern_len = sizeof(ordinary_program), .repeats = 1, .range = 64,
		 .copies = 1},
	};
	struct cfi_table t;
	double took = build_crafted("a 1 MiB CFA program", path, libc, eh, text_addr, specs, 3, FILE_STEPS_MAX, &t);
	CHECK(took < LONG_PROGRAM_SECONDS, "a 1 MiB CFA program took %.1f s", took);
	uint64_t after = text_addr + 64 + rows;
	CHECK(cfa_type_at(&t, text_addr + 4) == CFA_REG_OFF && cfa_type_at(&t, after + 4) == CFA_REG_OFF,
	      "the ordinary FDEs around a 1 MiB CFA program lost their rows");
	CHECK(cfa_type_at(&t, text_addr + 64) == CFA_GAP && cfa_type_at(&t, after - 1) == CFA_GAP,
	      "the FDE of a 1 MiB CFA program was not left as a gap");
	cfi_table_free(&t);
}

/* 8 FDEs of 128 KiB of DW_CFA_advance_loc (128 Ki rows each, 1.7e10 steps) then an ordinary one:
 * each long one over the limit of one FDE, refused before libdwarf decodes it. */
static void test_costly_fdes(const char *path, const struct blob *libc, const struct section_loc *eh,
			     uint64_t text_addr)
{
	static const uint8_t advance[] = {DW_CFA_advance_loc | 1};
	const size_t rows = 128 * 1024;
	const struct fde_spec specs[] = {
		{.pattern = advance, .pattern_len = sizeof(advance), .repeats = rows, .range = rows, .copies = 8},
		{.pattern = ordinary_program, .pattern_len = sizeof(ordinary_program), .repeats = 1, .range = 64,
		 .copies = 1},
	};
	struct cfi_table t;
	double took = build_crafted("8 FDEs of 128 Ki rows", path, libc, eh, text_addr, specs, 2,
				    FILE_STEPS_MAX, &t);
	CHECK(took < LONG_PROGRAM_SECONDS, "8 FDEs of 128 Ki rows took %.1f s", took);
	uint64_t last = text_addr + 8 * rows;
	CHECK(cfa_type_at(&t, text_addr) == CFA_GAP && cfa_type_at(&t, last - 1) == CFA_GAP,
	      "FDEs of 128 Ki rows were compiled");
	CHECK(cfa_type_at(&t, last + 4) == CFA_REG_OFF, "the ordinary FDE after them lost its rows");
	cfi_table_free(&t);
}

/* 16 FDEs of 4,096 rows (12 KiB programs, 5e7 steps each) within a budget of 2^27 steps: the
 * first two compiled, the budget's end leaves the rest out. */
static void test_file_budget(const char *path, const struct blob *libc, const struct section_loc *eh,
			     uint64_t text_addr)
{
	static const uint8_t step[] = {DW_CFA_def_cfa_offset, 16, DW_CFA_advance_loc | 1};
	const size_t rows = 4096, copies = 16;
	const struct fde_spec spec = {.pattern = step, .pattern_len = sizeof(step), .repeats = rows,
				      .range = rows, .copies = copies};
	struct cfi_table t;
	double took = build_crafted("16 FDEs of 4 Ki rows, 2^27 steps", path, libc, eh, text_addr, &spec, 1,
				    UINT64_C(1) << 27, &t);
	CHECK(took < LONG_PROGRAM_SECONDS, "16 FDEs of 4 Ki rows within 2^27 steps took %.1f s", took);
	CHECK(cfa_type_at(&t, text_addr + 1) == CFA_REG_OFF, "the first FDE within the budget lost its rows");
	CHECK(cfa_type_at(&t, text_addr + copies * rows - 1) == CFA_GAP, "the budget did not end");
	cfi_table_free(&t);
}

/* The arithmetic of unwind/fde_cost.h. */
static void test_step_counting(void)
{
	struct cfa_scan scan;
	static const uint8_t program[] = {DW_CFA_remember_state, DW_CFA_advance_loc | 1, DW_CFA_restore_state,
					  DW_CFA_remember_state};
	cfa_scan_program(program, sizeof(program), &scan);
	CHECK(scan.remember_count == 2 && scan.remember_depth == 1 && scan.advance_count == 1,
	      "scan: %zu remembered, %zu deep, %zu advances", scan.remember_count, scan.remember_depth,
	      scan.advance_count);
	CHECK(cfa_program_steps(sizeof(program), &scan) == 2 + 2 * REMEMBER_STEPS, "program steps");
	static const uint8_t set_loc[] = {DW_CFA_advance_loc | 1, DW_CFA_set_loc, 0, 0, 0, 0};
	cfa_scan_program(set_loc, sizeof(set_loc), &scan);
	CHECK(scan.advance_count == sizeof(set_loc), "from DW_CFA_set_loc on, every byte may advance: %zu",
	      scan.advance_count);
	CHECK(fde_steps(UINT64_C(1) << 40, SIZE_MAX) == UINT64_MAX, "fde_steps overflowed");
	struct fde_budget budget;
	fde_budget_init(&budget, 10);
	CHECK(fde_budget_take(&budget, 6) && !fde_budget_take(&budget, 5) && fde_budget_take(&budget, 4) &&
		      !fde_budget_take(&budget, 1),
	      "budget of 10 steps");
}

static void test_long_programs(const char *dir, char *path, size_t path_size, const struct blob *libc,
			       const char *libc_path, const struct section_loc *eh)
{
	struct section_loc text;
	if (locate_section(libc_path, ".text", &text) != 0) {
		CHECK(false, "no .text in libc");
		return;
	}
	snprintf(path, path_size, "%s/long_programs", dir);
	test_one_long_program(path, libc, eh, text.addr);
	test_costly_fdes(path, libc, eh, text.addr);
	test_file_budget(path, libc, eh, text.addr);
	test_step_counting();
}

/* The small accessors of elf_image on a well-formed file. */
static void test_accessors(const char *libc_path)
{
	struct elf_image img;
	if (elf_image_open(&img, libc_path) != 0) {
		CHECK(false, "cannot open %s", libc_path);
		return;
	}
	CHECK(img.id_is_build_id && img.id_len == 20, "libc has a 20-byte build-id, got %zu", img.id_len);
	CHECK(img.load_count > 0, "no PT_LOAD");
	for (size_t i = 0; i < img.load_count; i++) {
		const struct elf_segment *seg = &img.loads[i];
		uint64_t vaddr = 0;
		if (seg->filesz == 0)
			continue;
		CHECK(elf_image_offset_to_vaddr(&img, seg->offset + seg->filesz - 1, &vaddr) == 0 &&
			      vaddr == seg->vaddr + seg->filesz - 1,
		      "offset_to_vaddr in PT_LOAD %zu", i);
	}
	uint64_t vaddr;
	CHECK(elf_image_offset_to_vaddr(&img, UINT64_MAX, &vaddr) == -ENOENT, "offset past the file mapped");
	char hex[2 * ELF_ID_MAX + 1];
	elf_image_id_hex(&img, hex, sizeof(hex));
	CHECK(strlen(hex) == 2 * img.id_len, "id hex '%s'", hex);
	char small[7];
	elf_image_id_hex(&img, small, sizeof(small));
	CHECK(strlen(small) == 6 && strncmp(small, hex, 6) == 0, "short id hex '%s'", small);
	const char *link = elf_image_debuglink(&img);
	CHECK(!link || (strlen(link) > 6 && strcmp(link + strlen(link) - 6, ".debug") == 0), "debuglink '%s'",
	      link ? link : "");
	GElf_Shdr shdr;
	CHECK(elf_image_section(&img, ".eh_frame", &shdr) != NULL && shdr.sh_size > 0, "no .eh_frame");
	CHECK(elf_image_section(&img, ".no_such_section", &shdr) == NULL, "found a missing section");
	elf_image_close(&img);
	elf_image_close(&img); /* closing twice is harmless */
}

static int open_id(const char *path, struct elf_image *img)
{
	int err = elf_image_open(img, path);
	CHECK(err == 0, "%s: cannot open: %d", path, err);
	return err;
}

/* Without NT_GNU_BUILD_ID the id is a 16-byte content hash: stable, and sensitive to one byte. */
static void test_content_hash(const char *dir, char *path, size_t path_size, const struct blob *libc,
			      const char *libc_path)
{
	struct section_loc note;
	if (locate_section(libc_path, ".note.gnu.build-id", &note) != 0 || note.offset + 12 > libc->size) {
		CHECK(false, "libc has no .note.gnu.build-id to remove");
		return;
	}
	uint8_t *copy = malloc(libc->size);
	if (!copy) {
		CHECK(false, "out of memory");
		return;
	}
	memcpy(copy, libc->data, libc->size);
	copy[note.offset + 8] = 0x99; /* Elf64_Nhdr.n_type: no longer NT_GNU_BUILD_ID */
	snprintf(path, path_size, "%s/no_build_id", dir);
	struct elf_image a, b;
	if (blob_write_file(path, copy, libc->size) == 0 && open_id(path, &a) == 0) {
		CHECK(!a.id_is_build_id && a.id_len == 16, "expected a content hash, got %zu bytes", a.id_len);
		struct cfi_table table;
		CHECK(cfi_table_build(&a, &table) == 0 && table.count > 1000, "no rows without a build-id");
		cfi_table_free(&table);
		if (open_id(path, &b) == 0) {
			CHECK(memcmp(a.id, b.id, 16) == 0, "content hash is not stable");
			elf_image_close(&b);
		}
		copy[libc->size - 1] ^= 1;
		if (blob_write_file(path, copy, libc->size) == 0 && open_id(path, &b) == 0) {
			CHECK(memcmp(a.id, b.id, 16) != 0, "content hash missed a one-bit change");
			elf_image_close(&b);
		}
		elf_image_close(&a);
	}
	free(copy);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: test_cfi_hostile LIBC_PATH WORK_DIR\n");
		return 2;
	}
	lp_set_log_level(LOG_QUIET); /* hostile inputs warn a lot; the verdict is the checks */
	const char *libc_path = argv[1], *dir = argv[2];
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (elf_version(EV_CURRENT) == EV_NONE)
		return 1;
	struct blob libc;
	struct section_loc eh = {0};
	if (blob_read_file(libc_path, &libc) != 0 || locate_section(libc_path, ".eh_frame", &eh) != 0 ||
	    eh.size == 0 || eh.offset + eh.size > libc.size) {
		fprintf(stderr, "%s: cannot read it or its .eh_frame\n", libc_path);
		return 1;
	}
	size_t path_size = strlen(dir) + 64;
	char *path = malloc(path_size);
	if (!path)
		return 1;

	test_accessors(libc_path);
	long rows = try_file("pristine libc", libc_path);
	CHECK(rows > 1000, "pristine libc gave %ld rows", rows);
	test_empty_and_random(dir, path, path_size);
	test_truncated(dir, path, path_size, &libc, &eh);
	test_huge_counts(dir, path, path_size, &libc);
	test_lying_eh_frame(dir, path, path_size, &libc, &eh);
	test_corrupted_eh_frame(dir, path, path_size, &libc, &eh);
	test_eh_frame_from_program_headers(dir, path, path_size, &libc, libc_path, &eh);
	test_content_hash(dir, path, path_size, &libc, libc_path);
	test_remember_state_nesting(dir, path, path_size, &libc, libc_path, &eh);
	test_long_programs(dir, path, path_size, &libc, libc_path, &eh);

	free(path);
	free(libc.data);
	return check_finish("hostile inputs");
}
