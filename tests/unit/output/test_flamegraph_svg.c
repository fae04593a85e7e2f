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
 *   test_flamegraph_svg off-cpu                an off-CPU profile (counts are microseconds): the
 *                                              title says "Off-CPU time", the subtitle, tooltips
 *                                              and footnote give times, never samples, the root
 *                                              tells the script (data-unit); the SVG parses
 *                                              (expat); a CPU profile of the same lines still
 *                                              speaks of samples
 * Exit status: 0 pass, 1 fail. */
#include <errno.h>
#include <expat.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grow_array.h"
#include "lib/strbuf.h"
#include "output/flamegraph_svg.h"
#include "tests/unit/support/test_check.h"

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

/* ---- off-cpu: the text of every <title> and <text> element of an SVG, read back by expat. */

struct svg_text {
	char *id;   /* the element's id, "" when none (a frame's <title>, a label) */
	char *text;
};

struct svg_texts {
	struct svg_text *items;
	size_t count, capacity;
	char *unit;              /* the root's data-unit */
	char *id;                /* of the element being read, NULL when none */
	struct strbuf text;
	bool failed;             /* out of memory */
};

static const char *attribute(const XML_Char **attrs, const char *name)
{
	for (size_t i = 0; attrs[i]; i += 2)
		if (strcmp(attrs[i], name) == 0)
			return attrs[i + 1];
	return NULL;
}

static char *copy_or_fail(struct svg_texts *t, const char *s)
{
	char *copy = strdup(s ? s : "");

	t->failed |= copy == NULL;
	return copy;
}

static void XMLCALL element_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
	struct svg_texts *t = data;

	if (strcmp(name, "svg") == 0)
		t->unit = copy_or_fail(t, attribute(attrs, "data-unit"));
	if (strcmp(name, "title") == 0 || strcmp(name, "text") == 0)
		t->id = copy_or_fail(t, attribute(attrs, "id"));
}

static void XMLCALL element_text(void *data, const XML_Char *s, int len)
{
	struct svg_texts *t = data;

	if (t->id)
		strbuf_appendf(&t->text, "%.*s", len, s);
}

static void XMLCALL element_end(void *data, const XML_Char *name)
{
	struct svg_texts *t = data;
	(void)name;

	if (!t->id)
		return;
	struct svg_text item = {t->id, t->text.len ? strbuf_take(&t->text) : strdup("")};
	t->id = NULL;
	if (!item.text || grow_array_append(t->items, t->count, t->capacity, 64, &item) < 0) {
		t->failed = true;
		free(item.id);
		free(item.text);
	}
}

static void free_texts(struct svg_texts *t)
{
	for (size_t i = 0; i < t->count; i++) {
		free(t->items[i].id);
		free(t->items[i].text);
	}
	free(t->items);
	free(t->unit);
	free(t->id);
	free(strbuf_take(&t->text));
}

/* The SVG of lines drawn with info, parsed: false when it cannot be written or is not
 * well-formed. */
static bool read_svg(const struct folded_line *lines, size_t count,
		     const struct flamegraph_info *info, struct svg_texts *t)
{
	char *svg = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&svg, &len);

	CHECK(out != NULL, "open_memstream: %s", strerror(errno));
	if (!out)
		return false;
	int rc = flamegraph_svg_write(out, lines, count, info, NULL);
	CHECK(fclose(out) == 0 && rc == 0, "flamegraph_svg_write: %d", rc);
	XML_Parser parser = XML_ParserCreate(NULL);
	bool ok = parser && rc == 0 && len < INT_MAX;
	if (ok) {
		XML_SetUserData(parser, t);
		XML_SetElementHandler(parser, element_start, element_end);
		XML_SetCharacterDataHandler(parser, element_text);
		ok = XML_Parse(parser, svg, (int)len, 1) == XML_STATUS_OK;
		CHECK(ok, "not well-formed XML: %s at line %lu",
		      XML_ErrorString(XML_GetErrorCode(parser)),
		      (unsigned long)XML_GetCurrentLineNumber(parser));
	}
	CHECK(!t->failed, "out of memory reading the SVG");
	if (parser)
		XML_ParserFree(parser);
	free(svg);
	return ok && !t->failed;
}

/* The text of the element of this id ("": the first without one), or "". */
static const char *text_of(const struct svg_texts *t, const char *id)
{
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->items[i].id, id) == 0)
			return t->items[i].text;
	return "";
}

static bool has_text(const struct svg_texts *t, const char *text)
{
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->items[i].text, text) == 0)
			return true;
	return false;
}

static size_t texts_containing(const struct svg_texts *t, const char *part)
{
	size_t n = 0;

	for (size_t i = 0; i < t->count; i++)
		n += strstr(t->items[i].text, part) != NULL;
	return n;
}

#define CHECK_TEXT(t, id, want)                                                                    \
	CHECK(strcmp(text_of(t, id), want) == 0, "%s: %s, want %s", id, text_of(t, id), want)
#define CHECK_TOOLTIP(t, want) CHECK(has_text(t, want), "no frame titled %s", want)

static int cmd_off_cpu(void)
{
	char blocked_read[] = "main;read;[blocked: read]";
	char blocked_poll[] = "main;poll;[blocked: poll]";
	char blocked_write[] = "main;write;[blocked: write]";
	char blocked_fsync[] = "main;[blocked uninterruptible: fsync]";
	char preempted[] = "main;[preempted]";
	struct folded_line lines[] = { /* microseconds; write is too narrow to draw (0.01%) */
		{.text = blocked_read, .count = 1234567}, {.text = blocked_poll, .count = 5000},
		{.text = preempted, .count = 12345}, {.text = blocked_write, .count = 100},
	};
	struct folded_line short_line[] = {{.text = blocked_fsync, .count = 850}};
	struct flamegraph_info info = {.targets = "lua5.4 (PID 42)", .duration = 30, .frequency = 99,
				       .off_cpu = true};
	struct svg_texts t = {0}, small = {0}, cpu = {0};

	if (read_svg(lines, 4, &info, &t)) {
		CHECK_TEXT(&t, "fg-title", "Off-CPU time: lua5.4 (PID 42)");
		CHECK_TEXT(&t, "fg-subtitle", "30.00 s, 1.252 s off CPU");
		CHECK_TEXT(&t, "fg-details", "Hover over a frame for its off-CPU time; click to zoom; "
			   "Ctrl-F to search, Esc to clear.");
		CHECK_TEXT(&t, "fg-footnote", "2 frames narrower than 0.1% of the off-CPU time not "
			   "drawn (their off-CPU time counts in their callers' widths; search finds them).");
		CHECK_TOOLTIP(&t, "all\n1.252 s, 100.00%");
		CHECK_TOOLTIP(&t, "read\n1.234 s, 98.61%");
		CHECK_TOOLTIP(&t, "[blocked: read]\n1.234 s, 98.61%");
		CHECK_TOOLTIP(&t, "[blocked: poll]\n5.000 ms, 0.40%");
		CHECK_TOOLTIP(&t, "[preempted]\n12.345 ms, 0.99%");
		CHECK(texts_containing(&t, "sample") == 0, "%zu texts speak of samples",
		      texts_containing(&t, "sample"));
		CHECK(t.unit && strcmp(t.unit, "us") == 0, "data-unit %s", t.unit ? t.unit : "none");
	}
	if (read_svg(short_line, 1, &info, &small)) {
		CHECK_TEXT(&small, "fg-subtitle", "30.00 s, 850 \xc2\xb5s off CPU");
		CHECK_TOOLTIP(&small, "[blocked uninterruptible: fsync]\n850 \xc2\xb5s, 100.00%");
	}
	info.off_cpu = false; /* the same lines as samples: as before off-CPU profiles existed */
	if (read_svg(lines, 4, &info, &cpu)) {
		CHECK_TEXT(&cpu, "fg-title", "lua-perf flame graph: lua5.4 (PID 42)");
		CHECK_TEXT(&cpu, "fg-subtitle", "30.00 s at 99 Hz, 1252012 samples");
		CHECK_TOOLTIP(&cpu, "read\n1234567 samples, 98.61%");
		CHECK(texts_containing(&cpu, "off-CPU") == 0, "a CPU profile speaks of off-CPU time");
		CHECK(cpu.unit && strcmp(cpu.unit, "samples") == 0, "data-unit %s",
		      cpu.unit ? cpu.unit : "none");
	}
	free_texts(&t);
	free_texts(&small);
	free_texts(&cpu);
	return check_finish("flamegraph_svg off-cpu");
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "write") == 0)
		return cmd_write(argv[2], argv[3], argv[4]);
	if (argc == 2 && strcmp(argv[1], "errors") == 0)
		return cmd_errors();
	if (argc == 2 && strcmp(argv[1], "off-cpu") == 0)
		return cmd_off_cpu();
	fprintf(stderr, "usage: %s write IN OUT TARGETS | errors | off-cpu\n", argv[0]);
	return 2;
}
