/* SPDX-License-Identifier: MIT */
/* test_symbolize.c - tests of symbolize/symbolize.c; see tests/cmake/symbolize.cmake for the modes.
 * Exit status: 0 pass, 1 fail, 77 skipped (a system file the test needs is absent). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gelf.h>
#include <grp.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "symbolize/symbolize.h"
#include "tests/unit/support/test_check.h"
#include "unwind/elf_image.h"

#define SKIP 77
#define STATIC_NAME "fixture_static_leaf"

extern char **environ;

/* ---- Small helpers; the test aborts on allocation failure or broken scaffolding. */

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("test_symbolize: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

__attribute__((format(printf, 1, 2))) static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	return s;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

static void mkdir_p(const char *path)
{
	char *copy = xasprintf("%s", path);
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) != 0 && errno != EEXIST)
			die("mkdir %s: %s", copy, strerror(errno));
		*p = '/';
	}
	if (mkdir(copy, 0755) != 0 && errno != EEXIST)
		die("mkdir %s: %s", copy, strerror(errno));
	free(copy);
}

static char *make_temp_dir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir = xasprintf("%s/symbolize-test-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir))
		die("mkdtemp %s: %s", dir, strerror(errno));
	return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void remove_tree(char *dir)
{
	if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "cannot clean up %s\n", dir);
	free(dir);
}

/* Starts argv (PATH lookup) with stdout to out_fd (-1: inherited). */
static pid_t spawn_argv(char *const argv[], int out_fd)
{
	posix_spawn_file_actions_t actions;
	if (posix_spawn_file_actions_init(&actions) != 0)
		die("posix_spawn_file_actions_init");
	if (out_fd >= 0 && posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO) != 0)
		die("posix_spawn_file_actions_adddup2");
	pid_t pid;
	int err = posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	if (err)
		die("cannot run %s: %s", argv[0], strerror(err));
	return pid;
}

/* Exit status of pid, 128 when it did not exit normally. */
static int wait_child(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#define RUN(...) run_or_die((char *const[]){ __VA_ARGS__, NULL })

static void run_or_die(char *const argv[])
{
	int status = wait_child(spawn_argv(argv, -1));
	if (status != 0)
		die("%s %s ... exited with %d", argv[0], argv[1], status);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("open %s: %s", path, strerror(errno));
	unsigned char *buf = NULL;
	size_t used = 0, cap = 0;
	for (;;) {
		if (used == cap) {
			cap = cap ? cap * 2 : 1 << 16;
			buf = xrealloc(buf, cap);
		}
		size_t n = fread(buf + used, 1, cap - used, f);
		used += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
		die("read %s", path);
	fclose(f);
	*len = used;
	return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		die("create %s: %s", path, strerror(errno));
	if (fwrite(data, 1, len, f) != len || fclose(f) != 0)
		die("write %s", path);
}

/* Copies src to dst; with extra_byte, appends one byte (same ELF content, different CRC32). */
static void copy_file(const char *src, const char *dst, bool extra_byte)
{
	size_t len;
	unsigned char *data = read_file(src, &len);
	if (extra_byte) {
		data = xrealloc(data, len + 1);
		data[len++] = 0x5a;
	}
	write_file(dst, data, len);
	free(data);
}

static const struct symbol *find_by_name(const struct symbol_table *t, const char *name)
{
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->syms[i].name, name) == 0)
			return &t->syms[i];
	return NULL;
}

/* Sorted by strictly increasing address, names non-empty and inside the storage; with
 * clean_names also unversioned and free of whitespace (not so for corrupted string tables). */
static void check_table_invariants(const struct symbol_table *t, const char *what, bool clean_names)
{
	CHECK(t->count == 0 || (t->syms && t->strings), "%s: empty storage", what);
	for (size_t i = 0; i < t->count; i++) {
		const struct symbol *s = &t->syms[i];
		CHECK(i == 0 || t->syms[i - 1].addr < s->addr, "%s: not sorted at %zu", what, i);
		bool inside = s->name >= t->strings && s->name < t->strings + t->strings_len;
		CHECK(inside, "%s: name %zu outside the string storage", what, i);
		if (!inside)
			continue;
		CHECK(s->name[0] != '\0', "%s: empty name at %#" PRIx64, what, s->addr);
		if (!clean_names)
			continue;
		CHECK(!strchr(s->name, '@'), "%s: versioned name %s", what, s->name);
		CHECK(!strpbrk(s->name, " \t\n["), "%s: name with junk '%s'", what, s->name);
	}
}

/* Loads file (opened from host_path) with the given path argument and root. */
static int load_file(struct symbol_table *t, const char *host_path, const char *path, const char *root)
{
	struct elf_image img;
	int err = elf_image_open(&img, host_path);
	if (err)
		return err;
	err = symbol_table_load_elf(t, &img, path, root);
	elf_image_close(&img);
	return err;
}

/* ---- Reference symbol lists from nm. */

struct ref_sym {
	uint64_t addr;
	uint64_t size;
	char *name;
};

struct ref_list {
	struct ref_sym *syms;
	size_t count;
	size_t capacity;
};

static int compare_ref(const void *pa, const void *pb)
{
	const struct ref_sym *a = pa, *b = pb;
	if (a->addr != b->addr)
		return a->addr < b->addr ? -1 : 1;
	return strcmp(a->name, b->name);
}

static void ref_add(struct ref_list *list, uint64_t addr, uint64_t size, const char *name, size_t len)
{
	if (list->count == list->capacity) {
		list->capacity = list->capacity ? list->capacity * 2 : 1024;
		list->syms = xrealloc(list->syms, list->capacity * sizeof(*list->syms));
	}
	char *copy = strndup(name, len);
	if (!copy)
		die("out of memory");
	list->syms[list->count++] = (struct ref_sym){ .addr = addr, .size = size, .name = copy };
}

static void ref_free(struct ref_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->syms[i].name);
	free(list->syms);
	*list = (struct ref_list){ 0 };
}

/* The field between separators, blanks trimmed, NUL-terminated in place. */
static char *trimmed(char *field)
{
	while (*field == ' ')
		field++;
	size_t len = strlen(field);
	while (len > 0 && (field[len - 1] == ' ' || field[len - 1] == '\n'))
		field[--len] = '\0';
	return field;
}

/* nm -f sysv: "name|value|class|type|size|line|section". Functions are type FUNC or class i
 * (IFUNC); NOTYPE symbols count in .text only (nm cannot tell a section's flags). */
static void parse_nm_line(struct ref_list *list, char *line)
{
	char *fields[7];
	size_t n = 0;
	for (char *p = line; n < 7; n++) {
		fields[n] = p;
		char *bar = strchr(p, '|');
		if (!bar)
			break;
		*bar = '\0';
		p = bar + 1;
	}
	if (n != 6)
		return;
	for (size_t i = 0; i < 7; i++)
		fields[i] = trimmed(fields[i]);
	const char *name = fields[0], *type = fields[3], *section = fields[6];
	bool function = strcmp(type, "FUNC") == 0 || strcmp(fields[2], "i") == 0 ||
			(strcmp(type, "NOTYPE") == 0 && strncmp(section, ".text", 5) == 0);
	if (!function || !*fields[1])
		return;
	uint64_t addr = strtoull(fields[1], NULL, 16);
	uint64_t size = *fields[4] ? strtoull(fields[4], NULL, 16) : 0;
	const char *at = strchr(name, '@');
	ref_add(list, addr, size, name, at && at != name ? (size_t)(at - name) : strlen(name));
}

/* nm --defined-only -S -f sysv [-D] file, sorted by address then name. */
static struct ref_list nm_symbols(const char *nm, const char *file, bool dynamic)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	char *argv[] = { (char *)nm, "--defined-only", "-S", "-f", "sysv", dynamic ? "-D" : "--",
			 (char *)file, NULL };
	pid_t pid = spawn_argv(argv, fds[1]);
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	if (!f)
		die("fdopen: %s", strerror(errno));
	struct ref_list list = { 0 };
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0)
		parse_nm_line(&list, line);
	free(line);
	fclose(f);
	if (wait_child(pid) != 0)
		die("%s failed on %s", nm, file);
	if (list.count)
		qsort(list.syms, list.count, sizeof(*list.syms), compare_ref);
	return list;
}

/* Is there a reference symbol at addr (named name, unless NULL)? The list is sorted. */
static bool ref_has(const struct ref_list *list, uint64_t addr, const char *name)
{
	size_t lo = 0, hi = list->count; /* first entry at or above addr */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (list->syms[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < list->count && list->syms[i].addr == addr; i++)
		if (!name || strcmp(list->syms[i].name, name) == 0)
			return true;
	return false;
}

static const struct ref_sym *ref_find_name(const struct ref_list *list, const char *name)
{
	for (size_t i = 0; i < list->count; i++)
		if (strcmp(list->syms[i].name, name) == 0)
			return &list->syms[i];
	return NULL;
}

/* Does any symbol other than those at s->addr start in (s->addr, q] or cover q? */
static bool ref_other_at(const struct ref_list *list, const struct ref_sym *s, uint64_t q)
{
	for (size_t i = 0; i < list->count; i++) {
		const struct ref_sym *o = &list->syms[i];
		if (o->addr > s->addr && o->addr <= q)
			return true;
		if (o->size && o->addr <= q && q - o->addr < o->size && o->addr != s->addr)
			return true;
		if (o->addr == s->addr && o->size > s->size)
			return true; /* a larger alias: not "nothing else there" */
	}
	return false;
}

/* lookup(q) must be a symbol starting at s->addr and named like one of the references there. */
static bool lookup_is(const struct symbol_table *t, const struct ref_list *refs,
		      const struct ref_sym *s, uint64_t q)
{
	const struct symbol *got = symbol_table_lookup(t, q);
	bool ok = got && got->addr == s->addr && ref_has(refs, s->addr, got->name);
	CHECK(ok, "lookup(%#" PRIx64 ") for %s@%#" PRIx64 "+%#" PRIx64 " gave %s@%#" PRIx64, q, s->name,
	      s->addr, s->size, got ? got->name : "NULL", got ? got->addr : 0);
	return ok;
}

/* Every table entry is an nm symbol; every nm symbol is found over its whole range and not
 * past its end. Returns the number of symbols checked. */
static size_t check_against_nm(const struct symbol_table *t, const struct ref_list *refs)
{
	for (size_t i = 0; i < t->count; i++)
		CHECK(ref_has(refs, t->syms[i].addr, t->syms[i].name), "%s@%#" PRIx64 " not listed by nm",
		      t->syms[i].name, t->syms[i].addr);
	size_t checked = 0, past_end_null = 0;
	for (size_t i = 0; i < refs->count; i++) {
		const struct ref_sym *s = &refs->syms[i];
		lookup_is(t, refs, s, s->addr);
		if (s->size == 0)
			continue;
		lookup_is(t, refs, s, s->addr + s->size - 1);
		uint64_t end = s->addr + s->size;
		const struct symbol *past = symbol_table_lookup(t, end);
		if (!ref_other_at(refs, s, end)) {
			CHECK(!past, "lookup(%#" PRIx64 ") past the end of %s gave %s", end, s->name,
			      past ? past->name : "");
			past_end_null++;
		} else {
			CHECK(!past || past->addr != s->addr, "lookup past the end of %s gave %s", s->name,
			      past->name);
		}
		checked++;
	}
	CHECK(past_end_null > 0, "no symbol was followed by a gap: the past-the-end check never ran");
	return checked;
}

/* ---- Modes. */

static int test_lookup(void)
{
	struct symbol syms[] = {
		{ 0x1000, 0x10, "a" }, { 0x1010, 0, "b" }, { 0x2000, 0x100, "c" },
		{ 0x3000, 0, "d" },    { UINT64_MAX - 4, 0x10, "e" },
	};
	struct symbol_table t = { .syms = syms, .count = 4 };
	struct { uint64_t addr; const char *want; } cases[] = {
		{ 0, NULL },        { 0xfff, NULL },   { 0x1000, "a" }, { 0x100f, "a" },
		{ 0x1010, "b" },    { 0x1fff, "b" },   { 0x2000, "c" }, { 0x20ff, "c" },
		{ 0x2100, NULL },   { 0x2fff, NULL },  { 0x3000, "d" }, { UINT64_MAX, "d" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct symbol *got = symbol_table_lookup(&t, cases[i].addr);
		const char *name = got ? got->name : NULL;
		bool ok = name && cases[i].want ? strcmp(name, cases[i].want) == 0 : name == cases[i].want;
		CHECK(ok, "lookup(%#" PRIx64 ") = %s, want %s", cases[i].addr, name ? name : "NULL",
		      cases[i].want ? cases[i].want : "NULL");
	}
	t.count = 5; /* a sized symbol reaching the top of the address space: no overflow */
	const struct symbol *top = symbol_table_lookup(&t, UINT64_MAX);
	CHECK(top && strcmp(top->name, "e") == 0, "lookup(UINT64_MAX) with e");
	struct symbol_table empty = { 0 };
	CHECK(!symbol_table_lookup(&empty, 0x1000), "empty table");
	CHECK(!symbol_table_lookup(NULL, 0x1000), "NULL table");
	symbol_table_free(&empty);
	symbol_table_free(NULL);
	return check_finish("lookup");
}

/* The alias chosen for the address nm gives `name` must be `name` itself. */
static void check_preferred_name(const struct symbol_table *t, const struct ref_list *refs,
				 const char *name)
{
	const struct ref_sym *ref = ref_find_name(refs, name);
	CHECK(ref, "%s not exported", name);
	if (!ref)
		return;
	const struct symbol *got = symbol_table_lookup(t, ref->addr);
	CHECK(got && strcmp(got->name, name) == 0, "alias chosen for %s is %s", name,
	      got ? got->name : "NULL");
}

/* argv: file nm [preferred-name...]. With an empty root, only the file's own tables count. */
static int test_dynsym(int argc, char **argv)
{
	if (argc < 2)
		die("usage: dynsym FILE NM [NAME...]");
	const char *file = argv[0];
	if (access(file, R_OK) != 0) {
		printf("%s absent: skipped\n", file);
		return SKIP;
	}
	struct ref_list refs = nm_symbols(argv[1], file, true);
	char *empty_root = make_temp_dir();
	struct symbol_table t;
	int err = load_file(&t, file, file, empty_root);
	CHECK(err == 0, "load %s: %s", file, strerror(-err));
	if (!err) {
		check_table_invariants(&t, file, true);
		size_t checked = check_against_nm(&t, &refs);
		CHECK(checked >= 100, "only %zu sized symbols checked", checked);
		printf("%s: %zu symbols in the table, %zu sized nm symbols checked\n", file, t.count,
		       checked);
		for (int i = 2; i < argc; i++)
			check_preferred_name(&t, &refs, argv[i]);
	}
	symbol_table_free(&t);
	ref_free(&refs);
	remove_tree(empty_root);
	return check_finish("dynsym");
}

/* argv: file nm. The host's debug file for file (by build-id) adds the local symbols. */
static int test_debugdir(int argc, char **argv)
{
	if (argc < 2)
		die("usage: debugdir FILE NM");
	const char *file = argv[0];
	struct elf_image img;
	if (access(file, R_OK) != 0 || elf_image_open(&img, file) != 0)
		return SKIP;
	char hex[2 * ELF_ID_MAX + 1];
	elf_image_id_hex(&img, hex, sizeof(hex));
	char *debug = xasprintf("/usr/lib/debug/.build-id/%.2s/%s.debug", hex, hex + 2);
	if (!img.id_is_build_id || access(debug, R_OK) != 0) {
		printf("no debug file %s: skipped\n", debug);
		free(debug);
		elf_image_close(&img);
		return SKIP;
	}
	struct symbol_table plain, full;
	char *empty_root = make_temp_dir();
	CHECK(symbol_table_load_elf(&plain, &img, file, empty_root) == 0, "load without debug file");
	CHECK(symbol_table_load_elf(&full, &img, file, "/") == 0, "load with debug file");
	check_table_invariants(&full, "with debug file", true);
	CHECK(full.count > plain.count + 1000, "%zu symbols with the debug file, %zu without",
	      full.count, plain.count);
	/* Local functions of the debug file that are not exported are now named. */
	struct ref_list dynamic = nm_symbols(argv[1], file, true);
	struct ref_list all = nm_symbols(argv[1], debug, false);
	size_t locals = 0;
	for (size_t i = 0; i < all.count; i++) {
		const struct ref_sym *s = &all.syms[i];
		if (ref_has(&dynamic, s->addr, NULL) || (i > 0 && all.syms[i - 1].addr == s->addr))
			continue;
		locals += lookup_is(&full, &all, s, s->addr);
	}
	CHECK(locals > 1000, "only %zu local functions named through the debug file", locals);
	const struct ref_sym *start = ref_find_name(&dynamic, "__libc_start_main");
	if (start) { /* public name beats the local __libc_start_main_impl at the same address */
		const struct symbol *got = symbol_table_lookup(&full, start->addr);
		CHECK(got && strcmp(got->name, "__libc_start_main") == 0, "got %s",
		      got ? got->name : "NULL");
	}
	printf("%zu symbols without, %zu with %s; %zu local functions checked\n", plain.count,
	       full.count, debug, locals);
	ref_free(&dynamic);
	ref_free(&all);
	symbol_table_free(&plain);
	symbol_table_free(&full);
	remove_tree(empty_root);
	free(debug);
	elf_image_close(&img);
	return check_finish("debugdir");
}

/* argv: fixture nm. The fixture's labels (tests/cmake/symbolize.cmake) exercise each alias rule. */
static int test_aliases(int argc, char **argv)
{
	if (argc < 2)
		die("usage: aliases FIXTURE NM");
	struct ref_list refs = nm_symbols(argv[1], argv[0], false);
	struct symbol_table t;
	int err = load_file(&t, argv[0], argv[0], "/nonexistent-root");
	CHECK(err == 0, "load %s: %s", argv[0], strerror(-err));
	check_table_invariants(&t, argv[0], true);
	struct { const char *member, *kept; } groups[] = {
		{ "rule1_unsized", "zz_rule1_sized" }, { "rule2_local", "__rule2_external" },
		{ "__GI_rule3", "____rule3_internal" }, { "__rule4", "rule4_longer_name" },
		{ "rule5a_long", "rule5bb" },           { "rule6b", "rule6a" },
		{ "rule7_label", "rule7_function" },    { "rule9_versioned_implementation", "rule9_versioned" },
	};
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		const struct ref_sym *member = ref_find_name(&refs, groups[i].member);
		CHECK(member, "nm does not list %s", groups[i].member);
		if (!member)
			continue;
		const struct symbol *got = symbol_table_lookup(&t, member->addr);
		CHECK(got && strcmp(got->name, groups[i].kept) == 0, "%s: kept %s, want %s",
		      groups[i].member, got ? got->name : "NULL", groups[i].kept);
		CHECK(!find_by_name(&t, groups[i].member), "the table still has %s", groups[i].member);
	}
	const struct ref_sym *unsized = ref_find_name(&refs, "rule8_unsized");
	const struct symbol *got = unsized ? symbol_table_lookup(&t, unsized->addr + 2) : NULL;
	CHECK(got && strcmp(got->name, "rule8_unsized") == 0, "rule8_unsized+2 gave %s",
	      got ? got->name : "NULL");
	CHECK(!find_by_name(&t, "rule10_data"), "a data label is in the table");
	symbol_table_free(&t);
	ref_free(&refs);
	return check_finish("aliases");
}

struct fixture {
	const char *unstripped;
	const char *other; /* same source, other build-id and code */
	const char *objcopy;
	const char *strip;
	uint64_t static_addr; /* of STATIC_NAME in unstripped */
};

static void fixture_init(struct fixture *fx, int argc, char **argv)
{
	if (argc < 4)
		die("usage: MODE FIXTURE OTHER_FIXTURE OBJCOPY STRIP");
	*fx = (struct fixture){ argv[0], argv[1], argv[2], argv[3], 0 };
	struct symbol_table t;
	if (load_file(&t, fx->unstripped, fx->unstripped, "") != 0)
		die("cannot load %s", fx->unstripped);
	const struct symbol *s = find_by_name(&t, STATIC_NAME);
	if (!s)
		die("%s has no %s", fx->unstripped, STATIC_NAME);
	fx->static_addr = s->addr;
	symbol_table_free(&t);
}

/* Does loading host_path (passed as path) under root name the fixture's static function? */
static bool names_static(const struct fixture *fx, const char *host_path, const char *path,
			 const char *root)
{
	struct symbol_table t;
	int err = load_file(&t, host_path, path, root);
	CHECK(err == 0, "load %s: %s", host_path, strerror(-err));
	if (err)
		return false;
	check_table_invariants(&t, host_path, true);
	const struct symbol *by_name = find_by_name(&t, STATIC_NAME);
	const struct symbol *by_addr = symbol_table_lookup(&t, fx->static_addr);
	bool named_at_addr = by_addr && strcmp(by_addr->name, STATIC_NAME) == 0;
	CHECK(!by_name || by_name->addr == fx->static_addr, "%s at %#" PRIx64 ", expected %#" PRIx64,
	      STATIC_NAME, by_name->addr, fx->static_addr);
	CHECK(!by_name == !named_at_addr, "lookup and name search disagree");
	symbol_table_free(&t);
	return named_at_addr;
}

static char *build_id_debug_path(const char *root, const char *binary)
{
	struct elf_image img;
	if (elf_image_open(&img, binary) != 0)
		die("cannot open %s", binary);
	if (!img.id_is_build_id)
		die("%s has no build-id", binary);
	char hex[2 * ELF_ID_MAX + 1];
	elf_image_id_hex(&img, hex, sizeof(hex));
	elf_image_close(&img);
	return xasprintf("%s/usr/lib/debug/.build-id/%.2s/%s.debug", root, hex, hex + 2);
}

static void place_debug_file(const struct fixture *fx, const char *binary, const char *dest)
{
	char *dir = xasprintf("%s", dest);
	*strrchr(dir, '/') = '\0';
	mkdir_p(dir);
	free(dir);
	RUN((char *)fx->objcopy, "--only-keep-debug", (char *)binary, (char *)dest);
}

/* A symbolic link at `at` (its directory created) pointing to `target`, as given. */
static void make_symlink(const char *target, const char *at)
{
	char *dir = xasprintf("%s", at);
	*strrchr(dir, '/') = '\0';
	mkdir_p(dir);
	free(dir);
	if (symlink(target, at) != 0)
		die("symlink %s -> %s: %s", at, target, strerror(errno));
}

static int test_buildid(int argc, char **argv)
{
	struct fixture fx;
	fixture_init(&fx, argc, argv);
	char *tmp = make_temp_dir();
	char *stripped = xasprintf("%s/prog", tmp);
	RUN((char *)fx.strip, "--strip-all", "-o", stripped, (char *)fx.unstripped);
	char *root = xasprintf("%s/root", tmp), *empty = xasprintf("%s/empty", tmp);
	char *root_slash = xasprintf("%s/", root), *wrong = xasprintf("%s/wrong", tmp);
	mkdir_p(empty);

	char *debug = build_id_debug_path(root, stripped);
	place_debug_file(&fx, fx.unstripped, debug);
	CHECK(names_static(&fx, stripped, stripped, root), "not named through %s", debug);
	CHECK(names_static(&fx, stripped, stripped, root_slash), "root with a trailing slash");
	CHECK(names_static(&fx, stripped, NULL, root), "no path: build-id still works");
	CHECK(!names_static(&fx, stripped, stripped, empty), "named without a debug file");

	/* The other fixture's debug file under this build-id's name must be rejected. */
	char *decoy = build_id_debug_path(wrong, stripped);
	char *other_id = build_id_debug_path(wrong, fx.other);
	CHECK(strcmp(decoy, other_id) != 0, "both fixtures have the same build-id");
	place_debug_file(&fx, fx.other, decoy);
	CHECK(!names_static(&fx, stripped, stripped, wrong), "a mismatching build-id was trusted");

	/* Symlinks resolve inside the root, as the container that owns it sees them: an absolute
	 * link to /real/prog.debug is <root>/real/prog.debug; a link to a host path that only the
	 * host has, or one climbing out with "..", finds nothing (the host's file is never read). */
	char *linked = xasprintf("%s/linked", tmp), *hostonly = xasprintf("%s/hostonly/prog.debug", tmp);
	char *real = xasprintf("%s/real/prog.debug", linked);
	place_debug_file(&fx, fx.unstripped, real);
	place_debug_file(&fx, fx.unstripped, hostonly);
	char *link = build_id_debug_path(linked, stripped);
	make_symlink("/real/prog.debug", link);
	CHECK(names_static(&fx, stripped, stripped, linked), "absolute symlink inside the root");
	char *escape = xasprintf("%s/escape", tmp), *climb = xasprintf("%s/climb", tmp);
	char *escape_link = build_id_debug_path(escape, stripped);
	make_symlink(hostonly, escape_link);
	CHECK(!names_static(&fx, stripped, stripped, escape),
	      "an absolute symlink was followed to the host's %s", hostonly);
	char *up = xasprintf("../../../../../../../../../../../../../../..%s", hostonly);
	char *climb_link = build_id_debug_path(climb, stripped);
	make_symlink(up, climb_link);
	CHECK(!names_static(&fx, stripped, stripped, climb), "a symlink climbed out of the root");

	/* A FIFO where the debug file would be is never opened (a read open would block until a
	 * writer comes: the alarm's default action ends the test if it ever does). */
	char *fifo_root = xasprintf("%s/fifo", tmp);
	char *fifo = build_id_debug_path(fifo_root, stripped);
	make_symlink("/unused", fifo); /* creates the directories */
	if (unlink(fifo) != 0 || mkfifo(fifo, 0644) != 0)
		die("mkfifo %s: %s", fifo, strerror(errno));
	alarm(20);
	CHECK(!names_static(&fx, stripped, stripped, fifo_root), "a FIFO was taken for a debug file");
	alarm(0);
	free(fifo);
	free(fifo_root);

	free(up);
	free(climb_link);
	free(escape_link);
	free(escape);
	free(climb);
	free(link);
	free(real);
	free(hostonly);
	free(linked);
	free(decoy);
	free(other_id);
	free(debug);
	free(stripped);
	free(root);
	free(root_slash);
	free(empty);
	free(wrong);
	remove_tree(tmp);
	return check_finish("buildid");
}

/* Installs the debuglinked binary as <root><inner> and returns the host path. */
static char *install_binary(const char *linked, const char *root, const char *inner)
{
	char *host = xasprintf("%s%s", root, inner);
	char *dir = xasprintf("%s", host);
	*strrchr(dir, '/') = '\0';
	mkdir_p(dir);
	free(dir);
	copy_file(linked, host, false);
	return host;
}

static void install_copy(const char *src, const char *dst_dir, const char *name, bool tamper)
{
	mkdir_p(dst_dir);
	char *dst = xasprintf("%s/%s", dst_dir, name);
	copy_file(src, dst, tamper);
	free(dst);
}

static int test_debuglink(int argc, char **argv)
{
	struct fixture fx;
	fixture_init(&fx, argc, argv);
	char *tmp = make_temp_dir();
	char *debug = xasprintf("%s/prog.debug", tmp), *other_debug = xasprintf("%s/other.debug", tmp);
	char *stage = xasprintf("%s/stage", tmp), *linked = xasprintf("%s/linked", tmp);
	RUN((char *)fx.objcopy, "--only-keep-debug", (char *)fx.unstripped, debug);
	RUN((char *)fx.objcopy, "--only-keep-debug", (char *)fx.other, other_debug);
	RUN((char *)fx.strip, "--strip-all", "-o", stage, (char *)fx.unstripped);
	char *link_opt = xasprintf("--add-gnu-debuglink=%s", debug);
	RUN((char *)fx.objcopy, link_opt, stage, linked);
	free(link_opt);
	const char *inner = "/opt/app/prog";

	/* Each case: its own root with the binary at <root>/opt/app/prog. */
	struct {
		const char *what;
		const char *dir;     /* where under root the debug file goes */
		const char *decoy;   /* tampered copy placed first, or NULL */
		bool other;          /* the decoy is the other fixture's debug file, not tampered */
		bool expect;
	} cases[] = {
		{ "same directory", "/opt/app", NULL, false, true },
		{ ".debug subdirectory", "/opt/app/.debug", NULL, false, true },
		{ "global debug directory", "/usr/lib/debug/opt/app", NULL, false, true },
		{ "no debug file", NULL, NULL, false, false },
		{ "CRC mismatch (one byte appended)", NULL, "/opt/app", false, false },
		{ "CRC mismatch (other build)", NULL, "/opt/app", true, false },
		{ "bad copy first, good one later", "/opt/app/.debug", "/opt/app", false, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *root = xasprintf("%s/root%zu", tmp, i);
		char *host = install_binary(linked, root, inner);
		char *dir;
		if (cases[i].dir) {
			dir = xasprintf("%s%s", root, cases[i].dir);
			install_copy(debug, dir, "prog.debug", false);
			free(dir);
		}
		if (cases[i].decoy) {
			dir = xasprintf("%s%s", root, cases[i].decoy);
			install_copy(cases[i].other ? other_debug : debug, dir, "prog.debug", !cases[i].other);
			free(dir);
		}
		/* path as seen inside root, and as seen from the host: both conventions work */
		bool inside = names_static(&fx, host, inner, root);
		bool outside = names_static(&fx, host, host, root);
		CHECK(inside == cases[i].expect, "%s (path inside root): named=%d", cases[i].what, inside);
		CHECK(outside == cases[i].expect, "%s (host path): named=%d", cases[i].what, outside);
		free(host);
		free(root);
	}
	/* The binary's directory through a symlink inside root (<root>/opt/app -> /srv/app): its
	 * debug file is <root>/srv/app/prog.debug, found whichever way the path is given. */
	char *sroot = xasprintf("%s/symroot", tmp), *srv = xasprintf("%s/symroot/srv/app", tmp);
	char *opt_app = xasprintf("%s/opt/app", sroot), *sprog = xasprintf("%s/prog", srv);
	mkdir_p(srv);
	copy_file(linked, sprog, false);
	install_copy(debug, srv, "prog.debug", false);
	make_symlink("/srv/app", opt_app);
	char *shost = xasprintf("%s%s", sroot, inner);
	CHECK(names_static(&fx, sprog, inner, sroot), "directory symlink inside root (inner path)");
	CHECK(names_static(&fx, sprog, shost, sroot), "directory symlink inside root (host path)");
	free(shost);
	free(sprog);
	free(opt_app);
	free(srv);
	free(sroot);

	/* Host root: the binary's own directory is searched as is. */
	char *host_dir = xasprintf("%s/hostroot/bin", tmp);
	char *host = install_binary(linked, host_dir, "/prog");
	install_copy(debug, host_dir, "prog.debug", false);
	CHECK(names_static(&fx, host, host, "/"), "host root, same directory");
	CHECK(names_static(&fx, host, host, NULL), "NULL root, same directory");
	free(host);
	free(host_dir);

	free(debug);
	free(other_debug);
	free(stage);
	free(linked);
	remove_tree(tmp);
	return check_finish("debuglink");
}

/* ---- Hostile input: corrupted copies of the fixture must load or fail cleanly. */

struct symtab_layout {
	uint64_t shoff;     /* section header table */
	uint64_t shentsize;
	size_t symtab_index;
	uint64_t symtab_offset, symtab_size;
	uint64_t strtab_size;
	size_t strtab_index;
};

static struct symtab_layout find_symtab(const char *file)
{
	struct elf_image img;
	if (elf_image_open(&img, file) != 0)
		die("cannot open %s", file);
	struct symtab_layout layout = { 0 };
	GElf_Ehdr ehdr;
	if (!gelf_getehdr(img.elf, &ehdr) || ehdr.e_ident[EI_CLASS] != ELFCLASS64)
		die("%s: not ELF64", file);
	layout.shoff = ehdr.e_shoff;
	layout.shentsize = ehdr.e_shentsize;
	for (Elf_Scn *scn = elf_nextscn(img.elf, NULL); scn; scn = elf_nextscn(img.elf, scn)) {
		GElf_Shdr shdr;
		if (gelf_getshdr(scn, &shdr) && shdr.sh_type == SHT_SYMTAB) {
			layout.symtab_index = elf_ndxscn(scn);
			layout.symtab_offset = shdr.sh_offset;
			layout.symtab_size = shdr.sh_size;
			layout.strtab_index = shdr.sh_link;
		}
	}
	if (!layout.symtab_index)
		die("%s has no .symtab", file);
	elf_image_close(&img);
	return layout;
}

static void *shdr_field(unsigned char *data, const struct symtab_layout *l, size_t index, size_t field)
{
	return data + l->shoff + index * l->shentsize + field;
}

/* Writes data to path, loads it, and checks what can be checked. Returns whether it loaded. */
static bool load_mutant(const char *path, const void *data, size_t len, bool expect_static)
{
	write_file(path, data, len);
	struct symbol_table t;
	int err = load_file(&t, path, path, "/nonexistent-root");
	if (err)
		return false;
	check_table_invariants(&t, path, false);
	if (!expect_static)
		CHECK(!find_by_name(&t, STATIC_NAME), "%s named despite the corruption", STATIC_NAME);
	for (size_t i = 0; i < t.count; i++) { /* every entry is found by its own address */
		const struct symbol *got = symbol_table_lookup(&t, t.syms[i].addr);
		CHECK(got == &t.syms[i], "lookup of entry %zu", i);
	}
	symbol_table_free(&t);
	return true;
}

typedef void (*mutation_fn)(unsigned char *data, const struct symtab_layout *l);

static void set_u32(void *p, uint32_t v) { memcpy(p, &v, sizeof(v)); }
static void set_u64(void *p, uint64_t v) { memcpy(p, &v, sizeof(v)); }

static void names_out_of_range(unsigned char *d, const struct symtab_layout *l)
{
	for (uint64_t off = sizeof(Elf64_Sym); off + sizeof(Elf64_Sym) <= l->symtab_size; off += sizeof(Elf64_Sym))
		set_u32(d + l->symtab_offset + off + offsetof(Elf64_Sym, st_name), 0xfffffff0u);
}

static void link_out_of_range(unsigned char *d, const struct symtab_layout *l)
{
	set_u32(shdr_field(d, l, l->symtab_index, offsetof(Elf64_Shdr, sh_link)), 0xffffu);
}

static void link_to_itself(unsigned char *d, const struct symtab_layout *l)
{
	set_u32(shdr_field(d, l, l->symtab_index, offsetof(Elf64_Shdr, sh_link)), (uint32_t)l->symtab_index);
}

static void symtab_beyond_file(unsigned char *d, const struct symtab_layout *l)
{
	set_u64(shdr_field(d, l, l->symtab_index, offsetof(Elf64_Shdr, sh_size)), UINT64_MAX / 2);
}

static void strtab_one_byte(unsigned char *d, const struct symtab_layout *l)
{
	set_u64(shdr_field(d, l, l->strtab_index, offsetof(Elf64_Shdr, sh_size)), 1);
}

static void strtab_unterminated(unsigned char *d, const struct symtab_layout *l)
{
	GElf_Shdr shdr;
	memcpy(&shdr.sh_offset, shdr_field(d, l, l->strtab_index, offsetof(Elf64_Shdr, sh_offset)), 8);
	memcpy(&shdr.sh_size, shdr_field(d, l, l->strtab_index, offsetof(Elf64_Shdr, sh_size)), 8);
	memset(d + shdr.sh_offset, 'A', shdr.sh_size);
}

static void huge_sizes(unsigned char *d, const struct symtab_layout *l)
{
	for (uint64_t off = sizeof(Elf64_Sym); off + sizeof(Elf64_Sym) <= l->symtab_size; off += sizeof(Elf64_Sym)) {
		set_u64(d + l->symtab_offset + off + offsetof(Elf64_Sym, st_value), UINT64_MAX - 8);
		set_u64(d + l->symtab_offset + off + offsetof(Elf64_Sym, st_size), UINT64_MAX);
	}
}

/* Every symbol named by one 64 KiB string appended to the file (the new .strtab): each name is
 * stored cut to SYMBOL_NAME_MAX, so the table's names take at most that much a symbol instead of
 * 64 KiB a symbol. */
static void check_one_long_name(const char *path, const unsigned char *orig, size_t len,
				const struct symtab_layout *l)
{
	const size_t long_len = 64 * 1024;
	unsigned char *d = xrealloc(NULL, len + long_len + 1);
	memcpy(d, orig, len);
	memset(d + len, 'A', long_len);
	d[len + long_len] = '\0';
	set_u64(shdr_field(d, l, l->strtab_index, offsetof(Elf64_Shdr, sh_offset)), len);
	set_u64(shdr_field(d, l, l->strtab_index, offsetof(Elf64_Shdr, sh_size)), long_len + 1);
	for (uint64_t off = sizeof(Elf64_Sym); off + sizeof(Elf64_Sym) <= l->symtab_size; off += sizeof(Elf64_Sym))
		set_u32(d + l->symtab_offset + off + offsetof(Elf64_Sym, st_name), 0);
	write_file(path, d, len + long_len + 1);
	struct symbol_table t;
	if (load_file(&t, path, path, "/nonexistent-root") != 0) {
		CHECK(false, "one long name: not loaded");
		free(d);
		return;
	}
	size_t cut = 0;
	for (size_t i = 0; i < t.count; i++)
		cut += strlen(t.syms[i].name) == SYMBOL_NAME_MAX;
	CHECK(t.count > 10 && cut + 1 >= t.count, "one long name: %zu of %zu names cut", cut, t.count);
	CHECK(t.strings_len <= t.count * (SYMBOL_NAME_MAX + 1), "one long name: %zu bytes of names for %zu symbols",
	      t.strings_len, t.count);
	symbol_table_free(&t);
	free(d);
}

static uint64_t xorshift(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static int test_hostile(int argc, char **argv)
{
	if (argc < 1)
		die("usage: hostile FIXTURE");
	size_t len;
	unsigned char *orig = read_file(argv[0], &len);
	struct symtab_layout layout = find_symtab(argv[0]);
	if (layout.shoff + (layout.symtab_index + 1) * layout.shentsize > len ||
	    layout.symtab_offset + layout.symtab_size > len)
		die("unexpected layout of %s", argv[0]);
	unsigned char *data = xrealloc(NULL, len);
	char *tmp = make_temp_dir();
	char *path = xasprintf("%s/mutant", tmp);

	memcpy(data, orig, len);
	CHECK(load_mutant(path, data, len, true), "the unmodified copy does not load");
	struct { const char *what; mutation_fn fn; } mutations[] = {
		{ "names out of range", names_out_of_range }, { "sh_link out of range", link_out_of_range },
		{ "sh_link to itself", link_to_itself },     { ".symtab beyond the file", symtab_beyond_file },
		{ ".strtab of 1 byte", strtab_one_byte },    { ".strtab unterminated", strtab_unterminated },
		{ "sizes overflowing", huge_sizes },
	};
	for (size_t i = 0; i < sizeof(mutations) / sizeof(mutations[0]); i++) {
		memcpy(data, orig, len);
		mutations[i].fn(data, &layout);
		bool expect_static = mutations[i].fn == huge_sizes;
		CHECK(load_mutant(path, data, len, expect_static), "%s: not loaded", mutations[i].what);
	}
	check_one_long_name(path, orig, len, &layout);
	/* Truncations and random byte changes; libelf's and elf_image's warnings go to /dev/null. */
	fflush(stderr);
	int saved_stderr = dup(STDERR_FILENO);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (saved_stderr < 0 || devnull < 0 || dup2(devnull, STDERR_FILENO) < 0)
		die("cannot redirect stderr");
	int failures_before = check_failures;
	size_t cuts[] = { 0, 1, 16, 63, 64, 65, 200, len / 4, len / 2, len - 64, len - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		if (cuts[i] < len)
			load_mutant(path, orig, cuts[i], false);
	uint64_t state = 0x9e3779b97f4a7c15ull;
	size_t loaded = 0;
	for (int round = 0; round < 400; round++) {
		memcpy(data, orig, len);
		for (int k = 0; k < 16; k++)
			data[xorshift(&state) % len] ^= (unsigned char)(1u + xorshift(&state) % 255u);
		loaded += load_mutant(path, data, len, true);
	}
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	close(devnull);
	CHECK(check_failures == failures_before, "%d check(s) failed on truncated or random mutants",
	      check_failures - failures_before);
	printf("random mutants: %zu of 400 loaded\n", loaded);

	free(path);
	remove_tree(tmp);
	free(data);
	free(orig);
	return check_finish("hostile");
}

/* ---- Kernel symbols. */

static struct ref_list kallsyms_reference(void)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	if (!f)
		die("/proc/kallsyms: %s", strerror(errno));
	struct ref_list list = { 0 };
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		char type, name[600];
		unsigned long long addr;
		if (sscanf(line, "%llx %c %599s", &addr, &type, name) == 3 && strchr("tTwW", type))
			ref_add(&list, addr, 0, name, strlen(name));
	}
	free(line);
	fclose(f);
	if (list.count)
		qsort(list.syms, list.count, sizeof(*list.syms), compare_ref);
	return list;
}

static int test_kallsyms(void)
{
	struct ref_list refs = kallsyms_reference();
	const struct ref_sym *schedule = ref_find_name(&refs, "schedule");
	if (!refs.count || refs.syms[refs.count - 1].addr == 0 || !schedule) {
		printf("kallsyms addresses hidden or no schedule: skipped\n");
		ref_free(&refs);
		return SKIP;
	}
	struct symbol_table t;
	int err = symbol_table_load_kallsyms(&t);
	CHECK(err == 0, "load: %s", strerror(-err));
	check_table_invariants(&t, "kallsyms", true);
	CHECK(t.count > 10000, "only %zu kernel symbols", t.count);
	const struct symbol *got = symbol_table_lookup(&t, schedule->addr + 1);
	CHECK(got && got->addr == schedule->addr, "schedule+1 resolved to %s", got ? got->name : "NULL");
	bool schedule_unique = !(schedule > refs.syms && schedule[-1].addr == schedule->addr) &&
			       !(schedule + 1 < refs.syms + refs.count && schedule[1].addr == schedule->addr);
	if (schedule_unique)
		CHECK(got && strcmp(got->name, "schedule") == 0, "schedule resolved to %s",
		      got ? got->name : "NULL");
	/* Every text symbol resolves to itself or an alias at its address (module names too). */
	size_t checked = 0;
	for (size_t i = 0; i < refs.count; i++) {
		const struct ref_sym *s = &refs.syms[i];
		if (i > 0 && refs.syms[i - 1].addr == s->addr)
			continue;
		checked += lookup_is(&t, &refs, s, s->addr);
	}
	if (refs.syms[0].addr > 0)
		CHECK(!symbol_table_lookup(&t, refs.syms[0].addr - 1), "below the first kernel symbol");
	printf("kallsyms: %zu symbols, %zu addresses checked\n", t.count, checked);
	symbol_table_free(&t);
	ref_free(&refs);
	return check_finish("kallsyms");
}

/* As an unprivileged user the kernel shows zero addresses (unless kptr_restrict=0 and
 * perf_event_paranoid<=1): the load must then fail with -EPERM, not build a useless table. */
static int test_kallsyms_unprivileged(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
			_exit(SKIP);
		struct ref_list refs = kallsyms_reference();
		bool visible = refs.count && refs.syms[refs.count - 1].addr != 0;
		struct symbol_table t;
		int err = symbol_table_load_kallsyms(&t);
		CHECK(visible ? err == 0 : err == -EPERM, "visible=%d, load returned %d", visible, err);
		CHECK(visible || (t.count == 0 && !t.syms), "a table was built from zero addresses");
		printf("kallsyms as uid 65534: addresses %s, load returned %d\n",
		       visible ? "visible" : "hidden", err);
		symbol_table_free(&t);
		ref_free(&refs);
		fflush(NULL);
		_exit(check_finish("kallsyms_unprivileged"));
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: test_symbolize MODE [ARGS...]");
	const char *mode = argv[1];
	int rest = argc - 2;
	char **args = argv + 2;
	if (strcmp(mode, "lookup") == 0)
		return test_lookup();
	if (strcmp(mode, "aliases") == 0)
		return test_aliases(rest, args);
	if (strcmp(mode, "dynsym") == 0)
		return test_dynsym(rest, args);
	if (strcmp(mode, "debugdir") == 0)
		return test_debugdir(rest, args);
	if (strcmp(mode, "buildid") == 0)
		return test_buildid(rest, args);
	if (strcmp(mode, "debuglink") == 0)
		return test_debuglink(rest, args);
	if (strcmp(mode, "hostile") == 0)
		return test_hostile(rest, args);
	if (strcmp(mode, "kallsyms") == 0)
		return test_kallsyms();
	if (strcmp(mode, "kallsyms_unprivileged") == 0)
		return test_kallsyms_unprivileged();
	die("unknown mode %s", mode);
}
