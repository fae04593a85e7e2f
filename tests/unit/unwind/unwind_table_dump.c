/* SPDX-License-Identifier: MIT */
/* unwind_table_dump - print the unwind rows cfi_table_build compiles for an ELF file.
 *
 * Usage:
 *   unwind_table_dump FILE               every row, in address order
 *   unwind_table_dump FILE --at 0xPC...  the row in effect at each PC ("none" before the first row)
 *   unwind_table_dump --summary FILE...  one line per file: rows, FDEs, unsupported rows, time
 *   unwind_table_dump --vdso             every row of this process's vdso, compiled from a memfd copy
 *   unwind_table_dump --write-vdso PATH  save this process's vdso to PATH (to feed readelf)
 *
 * Row format (stable, one row per line, fields separated by one space):
 *   0x<pc> <cfa> <rbp> <rbx> <r12> <r13> <r14> <r15> <ra>
 * <pc> is the ELF virtual address (lowercase hex) where the rule starts to apply. <cfa> is
 *   <reg>+N / <reg>-N     CFA_REG_OFF, e.g. rsp+8, rbp+16 (x86_64 register names)
 *   *(<reg>+N)            CFA_DEREF_REG_OFF, e.g. *(rbp-8)
 *   plt(rsp+N,K)          CFA_PLT: rsp + N, plus 8 when (rip & 15) >= K
 *   signal                CFA_SIGNAL (kernel rt_sigframe at rsp)
 *   unsupported           CFA_UNSUPPORTED
 *   gap                   CFA_GAP (no unwind information from pc on)
 * and each register field is
 *   s                     same value (REG_SAME)
 *   u                     undefined (REG_UNDEFINED; for ra: outermost frame)
 *   b+N / b-N             saved at this frame's rbp + N (rbp_based bit)
 *   c-N / c+N             saved at CFA-N / CFA+N
 *   -                     not meaningful (gap, signal and unsupported rows)
 * Example: 0x1040 rsp+16 s c-16 s s s s c-8
 * In --summary mode, ms / cpu_ms are the wall-clock / process CPU time of elf_image_open +
 * cfi_table_build. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

static const char *const dwarf_reg_names[DW_REG_COUNT] = {
	"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8",
	"r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip",
};

static const char *reg_name(unsigned reg) { return reg < DW_REG_COUNT ? dwarf_reg_names[reg] : "r?"; }

static void print_cfa(const struct unwind_rule *r)
{
	switch (r->cfa_type) {
	case CFA_GAP:
		printf("gap");
		break;
	case CFA_REG_OFF:
		printf("%s%+" PRId32, reg_name(r->cfa_reg), r->cfa_off);
		break;
	case CFA_DEREF_REG_OFF:
		printf("*(%s%+" PRId32 ")", reg_name(r->cfa_reg), r->cfa_off);
		break;
	case CFA_PLT:
		printf("plt(rsp%+" PRId32 ",%u)", r->cfa_off, (unsigned)r->cfa_reg);
		break;
	case CFA_SIGNAL:
		printf("signal");
		break;
	default:
		printf("unsupported");
		break;
	}
}

static void print_reg(const struct unwind_rule *r, int i)
{
	int16_t off = r->reg_off[i];

	if (r->cfa_type == CFA_GAP || r->cfa_type == CFA_SIGNAL || r->cfa_type == CFA_UNSUPPORTED)
		printf(" -");
	else if (r->rbp_based & (1u << i))
		printf(" b%+d", (int)off);
	else if (off == REG_SAME)
		printf(" s");
	else if (off == REG_UNDEFINED)
		printf(" u");
	else
		printf(" c%+d", (int)off);
}

static void print_row(const struct cfi_row *row)
{
	/* Column order of the format: rbp rbx r12 r13 r14 r15 ra = enum saved_reg order. */
	printf("0x%" PRIx64 " ", row->pc);
	print_cfa(&row->rule);
	for (int i = 0; i < SREG_COUNT; i++)
		print_reg(&row->rule, i);
	putchar('\n');
}

static int build(const char *path, struct elf_image *img, struct cfi_table *table)
{
	int err = elf_image_open(img, path);
	if (err) {
		fprintf(stderr, "unwind_table_dump: %s: cannot open: %s\n", path, strerror(-err));
		return err;
	}
	err = cfi_table_build(img, table);
	if (err) {
		fprintf(stderr, "unwind_table_dump: %s: cannot compile: %s\n", path, strerror(-err));
		elf_image_close(img);
	}
	return err;
}

static int dump_all(const char *path)
{
	struct elf_image img;
	struct cfi_table table;
	if (build(path, &img, &table) != 0)
		return 1;
	for (size_t i = 0; i < table.count; i++)
		print_row(&table.rows[i]);
	cfi_table_free(&table);
	elf_image_close(&img);
	return ferror(stdout) ? 1 : 0;
}

static int parse_pc(const char *s, uint64_t *pc)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || !end || *end || end == s)
		return -EINVAL;
	*pc = v;
	return 0;
}

static int dump_at(const char *path, char **pcs, int count)
{
	struct elf_image img;
	struct cfi_table table;
	if (build(path, &img, &table) != 0)
		return 1;
	int status = 0;
	for (int i = 0; i < count; i++) {
		uint64_t pc;
		if (parse_pc(pcs[i], &pc) != 0) {
			fprintf(stderr, "unwind_table_dump: bad address '%s'\n", pcs[i]);
			status = 2;
			break;
		}
		const struct cfi_row *row = cfi_table_lookup(&table, pc);
		if (row)
			print_row(row);
		else
			printf("none\n");
	}
	cfi_table_free(&table);
	elf_image_close(&img);
	return status;
}

static double clock_ms(clockid_t clock)
{
	struct timespec ts;
	if (clock_gettime(clock, &ts) != 0)
		return 0;
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int summary(char **paths, int count)
{
	int status = 0;
	double total_ms = 0, total_cpu_ms = 0;
	size_t total_rows = 0;
	for (int i = 0; i < count; i++) {
		struct elf_image img;
		struct cfi_table table;
		double start = clock_ms(CLOCK_MONOTONIC), cpu_start = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
		if (build(paths[i], &img, &table) != 0) {
			status = 1;
			continue;
		}
		double ms = clock_ms(CLOCK_MONOTONIC) - start;
		double cpu_ms = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
		total_ms += ms;
		total_cpu_ms += cpu_ms;
		total_rows += table.count;
		char id[2 * ELF_ID_MAX + 1];
		elf_image_id_hex(&img, id, sizeof(id));
		printf("%s rows=%zu fdes=%zu unsupported=%zu debug_frame_fdes=%zu %s=%s ms=%.2f cpu_ms=%.2f\n",
		       paths[i], table.count, table.stats.fdes, table.stats.unsupported_rows,
		       table.stats.debug_frame_fdes, img.id_is_build_id ? "build_id" : "content_hash", id, ms,
		       cpu_ms);
		cfi_table_free(&table);
		elf_image_close(&img);
	}
	printf("total files=%d rows=%zu ms=%.2f cpu_ms=%.2f\n", count, total_rows, total_ms, total_cpu_ms);
	return status;
}

/* ---- vdso: [start, end) of the "[vdso]" line of /proc/self/maps, copied out of our own memory. */

static int find_vdso(uint64_t *start, uint64_t *end)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	if (!maps)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	int err = -ENOENT;
	while (getline(&line, &cap, maps) > 0) {
		if (!strstr(line, "[vdso]"))
			continue;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, start, end) == 2 && *start < *end)
			err = 0;
		break;
	}
	free(line);
	fclose(maps);
	return err;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write the vdso image to fd; returns 0 or a negative errno. */
static int copy_vdso(int fd)
{
	uint64_t start, end;
	int err = find_vdso(&start, &end);
	if (err) {
		fprintf(stderr, "unwind_table_dump: no [vdso] in /proc/self/maps\n");
		return err;
	}
	return write_all(fd, (const void *)(uintptr_t)start, (size_t)(end - start));
}

static int write_vdso(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "unwind_table_dump: %s: %s\n", path, strerror(errno));
		return 1;
	}
	int err = copy_vdso(fd);
	if (close(fd) != 0 && !err)
		err = -errno;
	return err ? 1 : 0;
}

static int dump_vdso(void)
{
	int fd = memfd_create("vdso", MFD_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "unwind_table_dump: memfd_create: %s\n", strerror(errno));
		return 1;
	}
	if (copy_vdso(fd) != 0) {
		close(fd);
		return 1;
	}
	struct elf_image img;
	int err = elf_image_open_fd(&img, fd, "[vdso]"); /* owns fd from here on */
	if (err) {
		fprintf(stderr, "unwind_table_dump: [vdso]: %s\n", strerror(-err));
		return 1;
	}
	struct cfi_table table;
	err = cfi_table_build(&img, &table);
	if (err) {
		fprintf(stderr, "unwind_table_dump: [vdso]: cannot compile: %s\n", strerror(-err));
		elf_image_close(&img);
		return 1;
	}
	size_t count = table.count;
	for (size_t i = 0; i < count; i++)
		print_row(&table.rows[i]);
	cfi_table_free(&table);
	elf_image_close(&img);
	return count == 0 ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: unwind_table_dump FILE [--at 0xPC...]\n"
			"       unwind_table_dump --summary FILE...\n"
			"       unwind_table_dump --vdso | --write-vdso PATH\n");
}

int main(int argc, char **argv)
{
	if (getenv("UNWIND_TABLE_DUMP_DEBUG"))
		lp_set_log_level(LOG_DEBUG);
	if (argc == 2 && strcmp(argv[1], "--vdso") == 0)
		return dump_vdso();
	if (argc == 3 && strcmp(argv[1], "--write-vdso") == 0)
		return write_vdso(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "--summary") == 0)
		return summary(argv + 2, argc - 2);
	if (argc == 2)
		return dump_all(argv[1]);
	if (argc >= 4 && strcmp(argv[2], "--at") == 0)
		return dump_at(argv[1], argv + 3, argc - 3);
	usage();
	return 2;
}
