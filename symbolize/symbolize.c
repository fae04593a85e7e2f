/* SPDX-License-Identifier: MIT */
/* symbolize.c - function symbol tables for ELF files and the kernel.
 *
 * Aliases (several names at one address) collapse to one entry, chosen by these rules in order:
 *   1. a symbol with a size beats one without (it knows where the function ends);
 *   2. an external name (global, weak or unique binding) beats a local one, so
 *      __libc_start_main beats __libc_start_main_impl;
 *   3. glibc's hidden internal aliases "__GI_*" lose (include/libc-symbols.h, hidden_def), and
 *      the vDSO's "__vdso_*" names win over their weak short aliases;
 *   4. fewer leading underscores win: malloc beats __libc_malloc, read beats __read (global and
 *      weak rank equal on purpose: glibc makes the public name the weak one);
 *   5. the shorter name wins, then the strcmp-smaller one, then the larger size.
 * Unsized symbols that start inside a sized one (labels in hand-written assembly) are dropped so
 * the enclosing function keeps its whole range. Sized symbols nested in sized ones are kept as
 * they are (Debian 12's libc and nginx have none): past the inner one's end, lookup gives NULL.
 *
 * Debug files, first one found wins: <root>/usr/lib/debug/.build-id/xx/rest.debug (its build-id
 * must match), then the .gnu_debuglink name (its CRC32 must match) in the file's directory, in
 * its .debug/ subdirectory, and in <root>/usr/lib/debug/<directory>. `path` may be the path inside
 * root (as the process sees it) or a host path that starts with root. Everything is resolved
 * inside root: symlinks and ".." never lead out of it. */
#include "symbolize/symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/u64_array.h"
#include "lib/whole_file.h"
#include "proc/process_root.h"
#include "unwind/elf_symbols.h"

#define KALLSYMS_PATH "/proc/kallsyms"
/* Far above any kernel's: about 50 bytes a symbol, a few hundred thousand symbols. */
#define KALLSYMS_LIMIT (1u << 30)
#define DEBUG_DIR "/usr/lib/debug"
#define CRC_CHUNK (64 * 1024)

/* A candidate symbol while a table is being built; name points into data that outlives the build
 * (libelf section data or the kallsyms file buffer) and is not NUL-terminated at name_len. */
struct raw_sym {
	uint64_t addr;
	uint64_t size;
	const char *name;
	size_t name_len;
	bool external;
};

struct raw_vec {
	struct raw_sym *items;
	size_t count;
	size_t capacity;
};

/* ---- Choosing among aliases and building the final table. */

static size_t leading_underscores(const struct raw_sym *sym)
{
	size_t n = 0;
	while (n < sym->name_len && sym->name[n] == '_')
		n++;
	return n;
}

static bool is_glibc_hidden_alias(const struct raw_sym *sym)
{
	return sym->name_len > 5 && memcmp(sym->name, "__GI_", 5) == 0;
}

/* The vDSO exports each function twice, `__vdso_clock_gettime` and a weak `clock_gettime`
 * (arch/x86/entry/vdso/vclock_gettime.c); the short alias would read like libc's wrapper of the
 * same name, which is the frame right below it. */
static bool is_vdso_name(const struct raw_sym *sym)
{
	return sym->name_len > 7 && memcmp(sym->name, "__vdso_", 7) == 0;
}

static int compare_u64(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }

static int compare_names(const struct raw_sym *a, const struct raw_sym *b)
{
	size_t common = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, common);
	if (c)
		return c;
	return compare_u64(a->name_len, b->name_len);
}

/* Ascending address; at one address the preferred alias first (rules in the file comment). */
static int compare_raw(const void *pa, const void *pb)
{
	const struct raw_sym *a = pa, *b = pb;
	int c = compare_u64(a->addr, b->addr);
	if (c)
		return c;
	if ((a->size != 0) != (b->size != 0))
		return a->size ? -1 : 1;
	if (a->external != b->external)
		return a->external ? -1 : 1;
	if (is_glibc_hidden_alias(a) != is_glibc_hidden_alias(b))
		return is_glibc_hidden_alias(a) ? 1 : -1;
	if (is_vdso_name(a) != is_vdso_name(b))
		return is_vdso_name(a) ? -1 : 1;
	c = compare_u64(leading_underscores(a), leading_underscores(b));
	if (c)
		return c;
	c = compare_u64(a->name_len, b->name_len);
	if (c)
		return c;
	c = compare_names(a, b);
	if (c)
		return c;
	return compare_u64(b->size, a->size);
}

static uint64_t saturating_end(const struct raw_sym *sym)
{
	return sym->size > UINT64_MAX - sym->addr ? UINT64_MAX : sym->addr + sym->size;
}

/* Sorts, keeps the preferred alias per address and drops unsized symbols inside sized ones. */
static void normalize(struct raw_vec *vec)
{
	if (vec->count == 0)
		return;
	qsort(vec->items, vec->count, sizeof(*vec->items), compare_raw);
	size_t kept = 0;
	uint64_t covered_end = 0; /* end of the furthest-reaching sized symbol kept so far */
	for (size_t i = 0; i < vec->count; i++) {
		const struct raw_sym *sym = &vec->items[i];
		if (kept && vec->items[kept - 1].addr == sym->addr)
			continue;
		if (sym->size == 0 && sym->addr < covered_end)
			continue;
		if (sym->size && saturating_end(sym) > covered_end)
			covered_end = saturating_end(sym);
		vec->items[kept++] = *sym;
	}
	vec->count = kept;
}

static int build_table(struct symbol_table *table, struct raw_vec *vec)
{
	normalize(vec);
	if (vec->count == 0)
		return 0;
	size_t bytes = 0;
	for (size_t i = 0; i < vec->count; i++) {
		if (vec->items[i].name_len >= SIZE_MAX - bytes)
			return -ENOMEM;
		bytes += vec->items[i].name_len + 1;
	}
	struct symbol *syms = calloc(vec->count, sizeof(*syms));
	char *strings = malloc(bytes);
	if (!syms || !strings) {
		free(syms);
		free(strings);
		return -ENOMEM;
	}
	size_t offset = 0;
	for (size_t i = 0; i < vec->count; i++) {
		const struct raw_sym *raw = &vec->items[i];
		memcpy(strings + offset, raw->name, raw->name_len);
		strings[offset + raw->name_len] = '\0';
		syms[i] = (struct symbol){ .addr = raw->addr, .size = raw->size, .name = strings + offset };
		offset += raw->name_len + 1;
	}
	table->syms = syms;
	table->count = vec->count;
	table->strings = strings;
	table->strings_len = bytes;
	return 0;
}

/* ---- ELF symbol tables. */

/* "memcpy@@GLIBC_2.14" -> "memcpy"; .symtab of shared libraries keeps such names. At most
 * SYMBOL_NAME_MAX. */
static size_t stored_length(const char *name, size_t len)
{
	const char *at = memchr(name, '@', len);
	if (at && at != name)
		len = (size_t)(at - name);
	return len < SYMBOL_NAME_MAX ? len : SYMBOL_NAME_MAX;
}

static bool section_is_executable(Elf *elf, size_t shnum, size_t index)
{
	if (index == SHN_UNDEF || index >= SHN_LORESERVE || index >= shnum)
		return false;
	GElf_Shdr shdr;
	Elf_Scn *scn = elf_getscn(elf, index);
	return scn && gelf_getshdr(scn, &shdr) && (shdr.sh_flags & SHF_EXECINSTR);
}

static bool is_function_symbol(Elf *elf, size_t shnum, const GElf_Sym *sym)
{
	if (sym->st_shndx == SHN_UNDEF)
		return false;
	switch (GELF_ST_TYPE(sym->st_info)) {
	case STT_FUNC:
		return true;
	case STT_GNU_IFUNC: /* the resolver's code */
	case STT_NOTYPE:    /* assembly labels; only those in code count */
		return section_is_executable(elf, shnum, sym->st_shndx);
	default:
		return false;
	}
}

/* ARM/AArch64/RISC-V mapping symbols ($x, $d, $a.1) mark code/data, they are not functions. */
static bool is_mapping_symbol(const char *name) { return name[0] == '$'; }

/* What collect_symbol adds to: the file's symbols so far, and its sections for their flags. */
struct symbol_sink {
	struct raw_vec *out;
	Elf *elf;
	size_t shnum;
};

static int collect_symbol(void *ctx, const struct elf_symbol *symbol)
{
	const struct symbol_sink *sink = ctx;
	const GElf_Sym *sym = symbol->sym;
	if (!is_function_symbol(sink->elf, sink->shnum, sym) || is_mapping_symbol(symbol->name))
		return 0;
	int bind = GELF_ST_BIND(sym->st_info);
	struct raw_sym raw = {
		.addr = sym->st_value,
		.size = sym->st_size,
		.name = symbol->name,
		.name_len = stored_length(symbol->name, symbol->name_len),
		.external = bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE,
	};
	return grow_array_append(sink->out->items, sink->out->count, sink->out->capacity, 1024, &raw);
}

/* Appends the function symbols of .symtab and .dynsym. Malformed tables are skipped; only
 * allocation failures are errors. */
static int collect_elf_symbols(struct raw_vec *out, Elf *elf, const char *file)
{
	struct symbol_sink sink = {.out = out, .elf = elf};
	if (elf_getshdrnum(elf, &sink.shnum) != 0) {
		lp_debug("%s: no section headers: %s", file, elf_errmsg(-1));
		return 0;
	}
	return elf_symbols_walk(elf, file, collect_symbol, &sink);
}

/* ---- Separate debug files (gdb manual, "Separate Debug Files").
 *
 * Every candidate is opened inside the root (proc/process_root.h, open_regular_in_root): a
 * container's symlinks (Fedora's .build-id entries are symlinks), absolute or climbing with "..",
 * resolve in the container, never on the host; only regular files are opened. */

/* Where debug files are looked for: the root directory, open, and its path to strip from paths
 * given as host paths. */
struct debug_root {
	int fd;     /* O_PATH directory */
	char *dir;  /* without trailing slashes; "" for the host root */
};

/* -ENOENT when root is no directory (then there is no debug file to find), or -ENOMEM. */
static int debug_root_open(const char *root, struct debug_root *dr)
{
	size_t len = root ? strlen(root) : 0;
	while (len > 0 && root[len - 1] == '/')
		len--;
	dr->dir = strndup(len ? root : "", len);
	if (!dr->dir)
		return -ENOMEM;
	dr->fd = open(len ? dr->dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dr->fd < 0) {
		free(dr->dir);
		return -ENOENT;
	}
	return 0;
}

static void debug_root_close(struct debug_root *dr)
{
	(void)close(dr->fd); /* O_PATH: nothing to lose */
	free(dr->dir);
}

/* path as seen inside the root: "/proc/PID/root/usr/lib/x.so" with that root is "/usr/lib/x.so". */
static const char *path_inside(const struct debug_root *dr, const char *path)
{
	size_t len = strlen(dr->dir);
	return len && strncmp(path, dr->dir, len) == 0 && path[len] == '/' ? path + len : path;
}

/* Directory part of path without the trailing slash: "/a/b" -> "/a", "/b" -> "", "b" -> ".". */
static char *directory_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	return strndup(path, (size_t)(slash - path));
}

static bool same_file_as_image(const struct elf_image *img, const struct stat *st)
{
	struct stat img_st;
	return img->fd >= 0 && fstat(img->fd, &img_st) == 0 && img_st.st_dev == st->st_dev &&
	       img_st.st_ino == st->st_ino;
}

/* The regular file at `inner` (an absolute path inside the root; a relative one from the current
 * directory) other than img itself, open for reading; a negative errno (quietly) otherwise. */
static int open_candidate(const struct elf_image *img, const struct debug_root *dr,
			  const char *inner)
{
	struct stat st;
	int fd = open_regular_in_root(inner[0] == '/' ? dr->fd : AT_FDCWD, inner, &st);
	if (fd >= 0 && same_file_as_image(img, &st)) {
		(void)close(fd); /* read-only */
		return -ENOENT;
	}
	return fd;
}

static bool build_ids_match(const struct elf_image *a, const struct elf_image *b)
{
	return a->id_is_build_id && b->id_is_build_id && a->id_len == b->id_len &&
	       memcmp(a->id, b->id, a->id_len) == 0;
}

/* <root>/usr/lib/debug/.build-id/xx/rest.debug, checked to carry the same build-id. */
static int open_by_build_id(const struct elf_image *img, const struct debug_root *dr,
			    struct elf_image *dbg)
{
	if (!img->id_is_build_id || img->id_len < 2 || img->id_len > ELF_ID_MAX)
		return -ENOENT;
	char hex[2 * ELF_ID_MAX + 1];
	elf_image_id_hex(img, hex, sizeof(hex));
	char *inner;
	if (asprintf(&inner, DEBUG_DIR "/.build-id/%.2s/%s.debug", hex, hex + 2) < 0)
		return -ENOMEM;
	int err = -ENOENT;
	int fd = open_candidate(img, dr, inner);
	if (fd >= 0 && elf_image_open_fd(dbg, fd, inner) == 0) { /* it owns fd, even on failure */
		if (build_ids_match(img, dbg)) {
			lp_debug("debug file %s%s", dr->dir, inner);
			err = 0;
		} else {
			lp_warn("%s%s: build-id does not match its name, ignoring it", dr->dir, inner);
			elf_image_close(dbg);
		}
	}
	free(inner);
	return err;
}

struct debuglink {
	const char *name;
	uint32_t crc;
};

static bool is_plain_file_name(const char *name)
{
	return name[0] != '\0' && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

/* .gnu_debuglink: the file name, NUL, padding to 4 bytes, then a CRC32 in the file's byte order
 * (binutils objcopy --add-gnu-debuglink). */
static int read_debuglink(const struct elf_image *img, struct debuglink *link)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = elf_image_section(img, ".gnu_debuglink", &shdr);
	Elf_Data *data = scn && shdr.sh_type != SHT_NOBITS ? elf_getdata(scn, NULL) : NULL;
	if (!data || !data->d_buf)
		return -ENOENT;
	const unsigned char *bytes = data->d_buf;
	const unsigned char *nul = memchr(bytes, '\0', data->d_size);
	if (!nul)
		return -ENOENT;
	size_t crc_offset = ((size_t)(nul - bytes) + 1 + 3) & ~(size_t)3;
	if (crc_offset > data->d_size || data->d_size - crc_offset < 4)
		return -ENOENT;
	const unsigned char *c = bytes + crc_offset;
	const char *ident = elf_getident(img->elf, NULL);
	bool big_endian = ident && ident[EI_DATA] == ELFDATA2MSB;
	link->crc = big_endian ? (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3]
			       : (uint32_t)c[3] << 24 | (uint32_t)c[2] << 16 | (uint32_t)c[1] << 8 | c[0];
	link->name = (const char *)bytes;
	return is_plain_file_name(link->name) ? 0 : -ENOENT;
}

/* CRC32 of the whole file; it is zlib's crc32 (binutils bfd/opncls.c, bfd_calc_gnu_debuglink_crc32). */
static int file_crc32(int fd, uint32_t *crc_out)
{
	unsigned char *buf = malloc(CRC_CHUNK);
	if (!buf)
		return -ENOMEM;
	uLong crc = crc32(0L, Z_NULL, 0);
	int err = 0;
	for (off_t at = 0;;) {
		ssize_t n = pread_retrying(fd, buf, CRC_CHUNK, at);
		if (n <= 0) {
			err = n < 0 ? (int)n : 0;
			break;
		}
		crc = crc32(crc, buf, (uInt)n);
		at += n;
	}
	free(buf);
	*crc_out = (uint32_t)crc;
	return err;
}

static int try_debuglink_candidate(const struct elf_image *img, const struct debug_root *dr,
				   const char *inner, const struct debuglink *link,
				   struct elf_image *dbg)
{
	int fd = open_candidate(img, dr, inner);
	if (fd < 0)
		return -ENOENT;
	uint32_t crc = 0;
	int err = file_crc32(fd, &crc);
	if (!err && crc != link->crc) {
		lp_warn("%s%s: CRC32 %08x does not match .gnu_debuglink's %08x, ignoring it", dr->dir,
			inner, crc, link->crc);
		err = -ENOENT;
	} else if (err) {
		lp_debug("%s%s: cannot read: %s", dr->dir, inner, strerror(-err));
	}
	if (err) {
		(void)close(fd); /* read-only */
		return err == -ENOMEM ? err : -ENOENT;
	}
	if (elf_image_open_fd(dbg, fd, inner) != 0) /* it owns fd, even on failure */
		return -ENOENT;
	lp_debug("debug file %s%s", dr->dir, inner);
	return 0;
}

static void free_candidates(char *candidates[3])
{
	for (size_t i = 0; i < 3; i++) {
		free(candidates[i]);
		candidates[i] = NULL;
	}
}

/* gdb's order: the file's directory, its .debug subdirectory, then the global debug directory
 * (only for an absolute path, it mirrors the file's directory). Paths inside the root. */
static int debuglink_candidates(const char *inner_path, const char *name, char *candidates[3])
{
	char *dir = directory_of(inner_path);
	if (!dir)
		return -ENOMEM;
	bool global = inner_path[0] == '/';
	int err = 0;
	if (asprintf(&candidates[0], "%s/%s", dir, name) < 0)
		candidates[0] = NULL;
	if (asprintf(&candidates[1], "%s/.debug/%s", dir, name) < 0)
		candidates[1] = NULL;
	if (global && asprintf(&candidates[2], DEBUG_DIR "%s/%s", dir, name) < 0)
		candidates[2] = NULL;
	if (!candidates[0] || !candidates[1] || (global && !candidates[2])) {
		free_candidates(candidates);
		err = -ENOMEM;
	}
	free(dir);
	return err;
}

static int open_by_debuglink(const struct elf_image *img, const char *path,
			     const struct debug_root *dr, struct elf_image *dbg)
{
	struct debuglink link;
	if (read_debuglink(img, &link) != 0)
		return -ENOENT;
	char *candidates[3] = { NULL, NULL, NULL };
	int err = debuglink_candidates(path_inside(dr, path), link.name, candidates);
	if (err)
		return err;
	err = -ENOENT; /* try_debuglink_candidate: 0, -ENOENT, or -ENOMEM which ends the search */
	for (size_t i = 0; i < 3 && err == -ENOENT; i++) {
		if (candidates[i])
			err = try_debuglink_candidate(img, dr, candidates[i], &link, dbg);
	}
	free_candidates(candidates);
	return err;
}

/* 0 with dbg open, -ENOENT when there is no (valid) debug file, or another negative errno. */
static int open_debug_file(const struct elf_image *img, const char *path, const char *root,
			   struct elf_image *dbg)
{
	struct debug_root dr;
	int err = debug_root_open(root, &dr);
	if (err)
		return err;
	err = open_by_build_id(img, &dr, dbg);
	if (err == -ENOENT && path)
		err = open_by_debuglink(img, path, &dr, dbg);
	debug_root_close(&dr);
	return err;
}

/* Stripped executables still say where _start is: the ELF entry point (e_entry). Named only when
 * no symbol already covers it, so that a stripped program's outermost frame reads `_start`.
 * Sized, or it would cover the whole stripped text: glibc's x86_64 _start (sysdeps/x86_64/start.S)
 * is 38 bytes, musl's shorter. */
#define ENTRY_POINT_SIZE 48
/* A program rather than a library: ET_EXEC, or a PIE (DF_1_PIE in DT_FLAGS_1; libc.so.6 is
 * ET_DYN with an entry point too, but is no PIE). */
static bool is_executable(Elf *elf, const GElf_Ehdr *ehdr)
{
	if (ehdr->e_type == ET_EXEC)
		return true;
	for (size_t i = 0; i < ehdr->e_phnum; i++) {
		GElf_Phdr phdr;

		if (!gelf_getphdr(elf, (int)i, &phdr) || phdr.p_type != PT_DYNAMIC)
			continue;
		Elf_Data *data = elf_getdata_rawchunk(elf, (int64_t)phdr.p_offset, phdr.p_filesz, ELF_T_DYN);
		GElf_Dyn dyn;
		for (int j = 0; data && gelf_getdyn(data, j, &dyn); j++)
			if (dyn.d_tag == DT_FLAGS_1)
				return dyn.d_un.d_val & DF_1_PIE;
	}
	return false;
}

static int add_entry_point(struct raw_vec *vec, Elf *elf)
{
	static const char name[] = "_start";
	GElf_Ehdr ehdr;

	if (!gelf_getehdr(elf, &ehdr) || ehdr.e_entry == 0 || !is_executable(elf, &ehdr))
		return 0;
	for (size_t i = 0; i < vec->count; i++) {
		const struct raw_sym *sym = &vec->items[i];

		if (sym->addr == ehdr.e_entry ||
		    (sym->addr < ehdr.e_entry && ehdr.e_entry - sym->addr < sym->size))
			return 0;
	}
	struct raw_sym entry = {
		.addr = ehdr.e_entry, .size = ENTRY_POINT_SIZE, .name = name, .name_len = sizeof(name) - 1,
	};
	return grow_array_append(vec->items, vec->count, vec->capacity, 1024, &entry);
}

int symbol_table_load_elf(struct symbol_table *table, const struct elf_image *img, const char *path,
			  const char *root)
{
	if (!table)
		return -EINVAL;
	*table = (struct symbol_table){ 0 };
	if (!img || !img->elf)
		return -EINVAL;
	const char *file = path ? path : "ELF image";
	struct raw_vec vec = { 0 };
	int err = collect_elf_symbols(&vec, img->elf, file);
	struct elf_image dbg;
	bool have_dbg = false;
	if (!err) {
		err = open_debug_file(img, path, root, &dbg);
		have_dbg = err == 0;
		err = err == -ENOENT ? 0 : err;
	}
	if (!err && have_dbg)
		err = collect_elf_symbols(&vec, dbg.elf, file);
	if (!err)
		err = add_entry_point(&vec, img->elf);
	if (!err) /* names still point into dbg's data: build before closing it */
		err = build_table(table, &vec);
	if (have_dbg)
		elf_image_close(&dbg);
	free(vec.items);
	if (err)
		lp_warn("%s: cannot load symbols: %s", file, strerror(-err));
	return err;
}

/* ---- Kernel symbols. */

static bool is_text_type(char type)
{
	return type == 't' || type == 'T' || type == 'w' || type == 'W';
}

/* One line "ffffffff81000000 T _stext" or "... t name\t[module]"; line is NUL-terminated.
 * Returns true with sym filled for a text symbol. */
static bool parse_kallsyms_line(char *line, struct raw_sym *sym)
{
	char *end;
	errno = 0;
	unsigned long long addr = strtoull(line, &end, 16);
	if (end == line || errno || end[0] != ' ' || end[1] == '\0' || end[2] != ' ')
		return false;
	char type = end[1];
	char *name = end + 3;
	size_t len = strcspn(name, " \t");
	if (!is_text_type(type) || len == 0)
		return false;
	*sym = (struct raw_sym){
		.addr = addr,
		.name = name,
		.name_len = len,
		.external = type == 'T' || type == 'W',
	};
	return true;
}

static int parse_kallsyms(char *text, struct raw_vec *vec, bool *any_address)
{
	*any_address = false;
	for (char *line = text; *line;) {
		char *newline = strchr(line, '\n');
		if (newline)
			*newline = '\0';
		struct raw_sym sym;
		if (parse_kallsyms_line(line, &sym)) {
			int err = grow_array_append(vec->items, vec->count, vec->capacity, 1024, &sym);
			if (err)
				return err;
			*any_address |= sym.addr != 0;
		}
		if (!newline)
			break;
		line = newline + 1;
	}
	return 0;
}

int symbol_table_load_kallsyms(struct symbol_table *table)
{
	if (!table)
		return -EINVAL;
	*table = (struct symbol_table){ 0 };
	char *text = NULL;
	size_t len = 0;
	int err = read_whole_file(KALLSYMS_PATH, KALLSYMS_LIMIT, &text, &len);
	if (err) {
		lp_warn(KALLSYMS_PATH ": %s", strerror(-err));
		return err;
	}
	struct raw_vec vec = { 0 };
	bool any_address;
	err = parse_kallsyms(text, &vec, &any_address);
	if (!err && vec.count && !any_address) {
		/* kallsyms_show_value() hides addresses without CAP_SYSLOG (kernel/kallsyms.c) */
		lp_warn(KALLSYMS_PATH " shows only zero addresses: run as root or lower "
			"kernel.kptr_restrict; kernel frames will not be named");
		err = -EPERM;
	}
	if (!err)
		err = build_table(table, &vec);
	free(vec.items);
	free(text);
	return err;
}

void symbol_table_free(struct symbol_table *table)
{
	if (!table)
		return;
	free(table->syms);
	free(table->strings);
	*table = (struct symbol_table){ 0 };
}

const struct symbol *symbol_table_lookup(const struct symbol_table *table, uint64_t addr)
{
	if (!table || table->count == 0)
		return NULL;
	size_t above = u64_field_upper_bound(table->syms, table->count, sizeof(*table->syms),
					     offsetof(struct symbol, addr), addr);
	if (above == 0)
		return NULL;
	const struct symbol *sym = &table->syms[above - 1];
	/* unsized: extends to the next symbol, which by construction starts above addr */
	if (sym->size == 0 || addr - sym->addr < sym->size)
		return sym;
	return NULL;
}
