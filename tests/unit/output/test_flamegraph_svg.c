/* SPDX-License-Identifier: MIT */
/* test_flamegraph_svg - drives output/flamegraph_svg.c for tests/e2e/flamegraph_svg_test.py, which
 * writes hostile folded inputs, runs this program and checks the SVG it produces.
 *
 *   test_flamegraph_svg write IN OUT TARGETS   folded lines of IN (any bytes: the stack is all
 *                                              before the last space, then a decimal count) ->
 *                                              flame graph OUT; prints "drawn N omitted M
 *                                              listed 0|1 samples S" (flamegraph_stats)
 *   test_flamegraph_svg errors                 the writer reports a full disk (/dev/full) and
 *                                              sample counts whose sum overflows 64 bits
 * Exit status: 0 pass, 1 fail. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/flamegraph_svg.h"

struct lines {
	struct folded_line *items;
	size_t count, cap;
};

static int add(struct lines *ls, char *text, uint64_t count)
{
	if (ls->count == ls->cap) {
		size_t cap = ls->cap ? ls->cap * 2 : 64;
		struct folded_line *grown = realloc(ls->items, cap * sizeof(*grown));

		if (!grown)
			return -1;
		ls->items = grown;
		ls->cap = cap;
	}
	ls->items[ls->count++] = (struct folded_line){.text = text, .count = count};
	return 0;
}

static void free_lines(struct lines *ls)
{
	for (size_t i = 0; i < ls->count; i++)
		free(ls->items[i].text);
	free(ls->items);
}

/* One line of the file (without its '\n'); embedded NUL bytes end the stack text early, as they
 * would for any C string. */
static int parse_line(struct lines *ls, char *line, size_t len, size_t number)
{
	char *space = NULL;

	for (size_t i = len; i-- > 0;)
		if (line[i] == ' ') {
			space = line + i;
			break;
		}
	char *end;
	errno = 0;
	unsigned long long count = space ? strtoull(space + 1, &end, 10) : 0;
	if (!space || errno || end == space + 1 || *end) {
		fprintf(stderr, "line %zu: no ' COUNT' at the end\n", number);
		return -1;
	}
	*space = '\0';
	char *text = strdup(line);
	if (!text || add(ls, text, count) < 0) {
		free(text);
		fprintf(stderr, "out of memory\n");
		return -1;
	}
	return 0;
}

static int read_lines(const char *path, struct lines *ls)
{
	FILE *f = fopen(path, "rb");
	char *line = NULL;
	size_t cap = 0, number = 0;
	ssize_t len;
	int rc = 0;

	if (!f) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		number++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		rc = parse_line(ls, line, (size_t)len, number);
	}
	free(line);
	fclose(f);
	return rc;
}

static int cmd_write(const char *in, const char *out_path, const char *targets)
{
	struct lines ls = {0};
	struct flamegraph_stats stats;
	struct flamegraph_info info = {.targets = targets, .duration = 1.5, .frequency = 997};
	int rc = read_lines(in, &ls);

	if (rc == 0) {
		FILE *out = fopen(out_path, "w");

		if (!out) {
			fprintf(stderr, "cannot create %s: %s\n", out_path, strerror(errno));
			rc = -1;
		} else {
			rc = flamegraph_svg_write(out, ls.items, ls.count, &info, &stats);
			if (fclose(out) != 0 && rc == 0)
				rc = -errno;
			if (rc < 0)
				fprintf(stderr, "flamegraph_svg_write: %s\n", strerror(-rc));
			else
				printf("drawn %zu omitted %zu listed %d samples %" PRIu64 "\n",
				       stats.frames_drawn, stats.frames_omitted, stats.omitted_listed,
				       stats.samples);
		}
	}
	free_lines(&ls);
	return rc == 0 ? 0 : 1;
}

static int expect(const char *what, int got, int want)
{
	if (got == want) {
		printf("ok: %s -> %d\n", what, got);
		return 0;
	}
	fprintf(stderr, "FAIL: %s returned %d (%s), want %d (%s)\n", what, got, strerror(-got),
		want, strerror(-want));
	return 1;
}

static int cmd_errors(void)
{
	char a[] = "main;work", b[] = "main;other";
	struct folded_line big[] = {{.text = a, .count = UINT64_MAX - 1}, {.text = b, .count = 2}};
	struct folded_line small[] = {{.text = a, .count = 3}, {.text = b, .count = 1}};
	struct flamegraph_info info = {.targets = "x", .duration = 1, .frequency = 1};
	int failures = 0;

	FILE *full = fopen("/dev/full", "w");
	if (!full) {
		fprintf(stderr, "cannot open /dev/full: %s\n", strerror(errno));
		return 1;
	}
	failures += expect("write to /dev/full", flamegraph_svg_write(full, small, 2, &info, NULL),
			   -EIO);
	fclose(full);

	FILE *null = fopen("/dev/null", "w");
	if (!null) {
		fprintf(stderr, "cannot open /dev/null: %s\n", strerror(errno));
		return 1;
	}
	failures += expect("counts summing beyond 64 bits",
			   flamegraph_svg_write(null, big, 2, &info, NULL), -EOVERFLOW);
	failures += expect("no lines at all", flamegraph_svg_write(null, NULL, 0, &info, NULL), 0);
	fclose(null);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "write") == 0)
		return cmd_write(argv[2], argv[3], argv[4]);
	if (argc == 2 && strcmp(argv[1], "errors") == 0)
		return cmd_errors();
	fprintf(stderr, "usage: %s write IN OUT TARGETS | errors\n", argv[0]);
	return 2;
}
