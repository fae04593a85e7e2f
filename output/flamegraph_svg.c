/* SPDX-License-Identifier: MIT */
#include "output/flamegraph_svg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fnv1a.h"
#include "lib/grow_array.h"
#include "lib/percent.h"
#include "output/utf8_text.h"

/* ---- Geometry (px). The script reads what it needs from data-* attributes of the root. */
#define IMAGE_WIDTH 1200
#define PLOT_X 10
#define PLOT_WIDTH (IMAGE_WIDTH - 2 * PLOT_X)
#define HEADER_HEIGHT 72
#define FOOTER_HEIGHT 44
#define ROW_HEIGHT 16
#define BAR_HEIGHT 15
#define LABEL_BASELINE 11.5
#define LABEL_PADDING 3
/* Advance of one character of the 12 px monospace font, rounded up (DejaVu Sans Mono and
 * Liberation Mono advance 0.6 em), to fit labels into bars. */
#define CHAR_WIDTH 7.3

#define NO_PARENT SIZE_MAX
#define UNDRAWN_NAMESPACE "urn:lua-perf:flamegraph"

/* ---- The tree of frames: one node per distinct path from the root. */

struct node {
	const char *name; /* not NUL-terminated: points into a folded line */
	size_t name_len;
	size_t parent;    /* index in graph.nodes, NO_PARENT for the root */
	size_t depth;     /* root 0 */
	uint64_t x;       /* samples laid out left of it */
	uint64_t width;   /* its samples (self and callees) */
	uint64_t self;    /* samples whose stack ends here */
	uint64_t drawn_children; /* samples of its drawn callees */
	size_t drawn_index;      /* among the drawn frames, in document order */
	bool drawn;
};

/* Samples whose stack goes on, below a drawn frame, through frames too narrow to draw: listed in
 * the SVG so that search counts them too. */
struct undrawn_tail {
	size_t parent;       /* the deepest drawn node of the stack */
	const char *frames;  /* the rest of the folded line: the frames not drawn */
	uint64_t count;
};

struct graph {
	const struct folded_line **lines; /* those with samples, in frame_order */
	size_t line_count;
	struct node *nodes;  /* pre-order: a node comes after its caller, its callees after it */
	size_t count, cap;
	size_t *path;        /* the nodes of the current stack: path[0] = root */
	size_t path_len, path_cap;
	uint64_t total;      /* all samples */
	uint64_t laid_out;   /* samples placed so far, left to right */
	uint64_t min_width;  /* narrower nodes are dropped */
	size_t frames_seen;  /* nodes ever created, root excluded */
	size_t drawn;        /* drawn nodes, root included */
	size_t max_depth;    /* of drawn nodes */
	bool capped;         /* more than FLAMEGRAPH_MAX_FRAMES were wide enough */
	struct undrawn_tail *tails;
	size_t tail_count, tail_cap;
	bool tails_complete; /* every undrawn frame is in tails (within FLAMEGRAPH_MAX_LIST_BYTES) */
};

static int reserve_path(struct graph *g, size_t need)
{
	size_t *path = grow_array(g->path, &g->path_cap, need, sizeof(*path), 64);

	if (!path)
		return -ENOMEM;
	g->path = path;
	return 0;
}

static int open_node(struct graph *g, const char *name, size_t name_len)
{
	struct node *nodes = grow_array(g->nodes, &g->cap, g->count + 1, sizeof(*nodes), 64);

	if (!nodes)
		return -ENOMEM;
	g->nodes = nodes;
	if (reserve_path(g, g->path_len + 1) < 0)
		return -ENOMEM;
	size_t parent = g->path_len ? g->path[g->path_len - 1] : NO_PARENT;
	g->nodes[g->count] = (struct node){
		.name = name,
		.name_len = name_len,
		.parent = parent,
		.depth = g->path_len,
		.x = g->laid_out,
	};
	if (parent != NO_PARENT)
		g->frames_seen++;
	g->path[g->path_len++] = g->count++;
	return 0;
}

/* The innermost node of the path is complete. A node too narrow to draw goes, and with it its
 * callees: they come after it in pre-order and are narrower still. */
static void close_node(struct graph *g)
{
	size_t index = g->path[--g->path_len];
	struct node *n = &g->nodes[index];

	n->width = g->laid_out - n->x;
	if (n->width < g->min_width && n->parent != NO_PARENT)
		g->count = index;
}

static bool node_is(const struct node *n, const char *name, size_t len)
{
	return n->name_len == len && memcmp(n->name, name, len) == 0;
}

/* Lines come in frame order (see frame_order): the lines through one node are consecutive, so a
 * node is complete when the first line that leaves it arrives. */
static int add_line(struct graph *g, const struct folded_line *line)
{
	const char *frame = line->text;
	size_t depth = 1;
	bool more = true;

	while (more) {
		size_t len = strcspn(frame, ";");
		const char *name = frame;

		more = frame[len] == ';';
		frame += len + more;
		if (depth < g->path_len && node_is(&g->nodes[g->path[depth]], name, len)) {
			depth++;
			continue;
		}
		while (g->path_len > depth)
			close_node(g);
		if (open_node(g, name, len) < 0)
			return -ENOMEM;
		depth++;
	}
	while (g->path_len > depth)
		close_node(g);
	g->nodes[g->path[depth - 1]].self += line->count;
	g->laid_out += line->count;
	return 0;
}

static bool ends_frame(char c)
{
	return c == ';' || c == '\0';
}

/* Stacks compare frame by frame: names bytewise (a name before the longer names it begins),
 * and a stack before the stacks it begins (callees left, the caller's own samples right). The
 * lines through one node are then adjacent: that is what add_line needs. */
static int frame_order(const void *pa, const void *pb)
{
	const char *a = (*(const struct folded_line *const *)pa)->text;
	const char *b = (*(const struct folded_line *const *)pb)->text;

	while (*a && *a == *b)
		a++, b++;
	if (*a == *b)
		return 0;
	if (ends_frame(*a) && ends_frame(*b))
		return *a == ';' ? -1 : 1; /* same frames so far: the deeper stack first */
	if (ends_frame(*a) || ends_frame(*b))
		return ends_frame(*a) ? -1 : 1;
	return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
}

static int build_graph(struct graph *g, const struct folded_line *lines, size_t count)
{
	int rc = 0;

	for (size_t i = 0; i < count; i++) {
		if (lines[i].count > UINT64_MAX - g->total)
			return -EOVERFLOW;
		g->total += lines[i].count;
	}
	/* Keep a node when width / total >= 1 / divisor, i.e. width >= ceil(total / divisor). */
	g->min_width = g->total / FLAMEGRAPH_MIN_WIDTH_DIVISOR +
		       (g->total % FLAMEGRAPH_MIN_WIDTH_DIVISOR != 0);
	if (g->min_width == 0)
		g->min_width = 1;
	if (count > 0) {
		g->lines = calloc(count, sizeof(*g->lines));
		if (!g->lines)
			return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++)
		if (lines[i].count > 0)
			g->lines[g->line_count++] = &lines[i];
	if (g->line_count > 0)
		qsort(g->lines, g->line_count, sizeof(*g->lines), frame_order);
	rc = open_node(g, "all", 3);
	for (size_t i = 0; rc == 0 && i < g->line_count; i++)
		rc = add_line(g, g->lines[i]);
	while (rc == 0 && g->path_len > 0)
		close_node(g);
	return rc;
}

struct rank {
	uint64_t width;
	size_t depth;
	size_t index;
};

/* Wider first, then shallower: every node ranks after its caller (which is at least as wide and
 * shallower), so any prefix of this order is a tree. Then pre-order, for a stable choice. */
static int rank_order(const void *pa, const void *pb)
{
	const struct rank *a = pa, *b = pb;

	if (a->width != b->width)
		return a->width > b->width ? -1 : 1;
	if (a->depth != b->depth)
		return a->depth < b->depth ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* Mark the nodes to draw: all of them, or the FLAMEGRAPH_MAX_FRAMES first by rank_order. */
static int choose_drawn(struct graph *g)
{
	if (g->count <= FLAMEGRAPH_MAX_FRAMES) {
		for (size_t i = 0; i < g->count; i++)
			g->nodes[i].drawn = true;
	} else {
		struct rank *ranks = calloc(g->count, sizeof(*ranks));

		if (!ranks)
			return -ENOMEM;
		for (size_t i = 0; i < g->count; i++)
			ranks[i] = (struct rank){g->nodes[i].width, g->nodes[i].depth, i};
		qsort(ranks, g->count, sizeof(*ranks), rank_order);
		for (size_t i = 0; i < FLAMEGRAPH_MAX_FRAMES; i++)
			g->nodes[ranks[i].index].drawn = true;
		free(ranks);
		g->capped = true;
	}
	for (size_t i = 0; i < g->count; i++) {
		struct node *n = &g->nodes[i];

		if (!n->drawn)
			continue;
		n->drawn_index = g->drawn++;
		if (n->depth > g->max_depth)
			g->max_depth = n->depth;
		if (n->parent != NO_PARENT)
			g->nodes[n->parent].drawn_children += n->width;
	}
	return 0;
}

static int add_tail(struct graph *g, size_t parent, const char *frames, uint64_t count)
{
	struct undrawn_tail *tails = grow_array(g->tails, &g->tail_cap, g->tail_count + 1,
						sizeof(*tails), 64);

	if (!tails)
		return -ENOMEM;
	g->tails = tails;
	g->tails[g->tail_count++] = (struct undrawn_tail){parent, frames, count};
	return 0;
}

/* The stored node for the frame `name` at `depth` of the current line, if any. Lines come in the
 * order build_graph saw them: a node the previous line did not pass through is met for the
 * first time, so it is the next stored node in pre-order (*next). The path holds at most as many
 * nodes as in build_graph (reserved there). */
static size_t stored_node(struct graph *g, size_t depth, const char *name, size_t len, size_t *next)
{
	if (depth < g->path_len && node_is(&g->nodes[g->path[depth]], name, len))
		return g->path[depth];
	g->path_len = depth;
	if (*next < g->count && g->nodes[*next].parent == g->path[depth - 1] &&
	    node_is(&g->nodes[*next], name, len)) {
		g->path[g->path_len++] = *next;
		return (*next)++;
	}
	return NO_PARENT;
}

/* Bytes of the SVG's list for a tail (write_undrawn), markup estimated: 32 per tail, 13 per frame. */
static size_t tail_list_bytes(const char *tail)
{
	size_t bytes = 32 + 13;

	for (; *tail; tail++)
		bytes += *tail == ';' ? 13 : 1;
	return bytes;
}

/* Second pass over the lines: where a stack leaves the drawn frames, remember the rest. Beyond
 * FLAMEGRAPH_MAX_LIST_BYTES the list is dropped (search then gives a range). */
static int collect_undrawn(struct graph *g)
{
	size_t next = 1, bytes = 0; /* node 0, the root, is always on the path */

	g->path[0] = 0;
	g->path_len = 1;
	for (size_t i = 0; i < g->line_count; i++) {
		const char *frame = g->lines[i]->text, *tail = NULL;
		size_t depth = 1, deepest_drawn = 0;
		bool more = true;

		while (more) {
			size_t len = strcspn(frame, ";");
			size_t node = stored_node(g, depth, frame, len, &next);

			if (node == NO_PARENT) {
				if (!tail)
					tail = frame;
				break;
			}
			if (g->nodes[node].drawn)
				deepest_drawn = node;
			else if (!tail)
				tail = frame;
			more = frame[len] == ';';
			frame += len + more;
			depth++;
		}
		if (!more)
			g->path_len = depth;
		if (!tail)
			continue;
		bytes += tail_list_bytes(tail);
		if (bytes > FLAMEGRAPH_MAX_LIST_BYTES)
			return 0;
		if (add_tail(g, deepest_drawn, tail, g->lines[i]->count) < 0)
			return -ENOMEM;
	}
	/* Every stored node met again: the walk agreed with build_graph. */
	g->tails_complete = next == g->count;
	return 0;
}

/* ---- Text: frame names are untrusted bytes. */

static size_t char_count(const char *s, size_t len)
{
	size_t chars = 0;

	for (size_t i = 0; i < len; chars++) {
		size_t n = utf8_printable_length((const unsigned char *)s + i, len - i);
		i += n ? n : 1;
	}
	return chars;
}

/* The first max_chars characters of s[0..len) as XML character data (also fit for attribute
 * values): markup characters escaped, anything not printable as U+FFFD. */
static void write_text(FILE *out, const char *s, size_t len, size_t max_chars)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0, chars = 0; i < len && chars < max_chars; chars++) {
		size_t n = utf8_printable_length(u + i, len - i);

		if (n == 0) {
			fputs(UTF8_REPLACEMENT, out);
			i++;
			continue;
		}
		switch (u[i]) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default: fwrite(u + i, 1, n, out); break;
		}
		i += n;
	}
}

static void write_string(FILE *out, const char *s)
{
	write_text(out, s, strlen(s), SIZE_MAX);
}

/* As much of the name as fits a bar of width_px, "…" marking a cut; the script does the same
 * when zooming (fitLabel). */
static void write_label(FILE *out, const struct node *n, double width_px)
{
	double room = (width_px - 2 * LABEL_PADDING) / CHAR_WIDTH;

	if (!(room >= 3))
		return;
	size_t fit = (size_t)room;
	if (char_count(n->name, n->name_len) <= fit) {
		write_text(out, n->name, n->name_len, SIZE_MAX);
	} else {
		write_text(out, n->name, n->name_len, fit - 1);
		fputs("\xe2\x80\xa6", out);
	}
}

/* ---- Colours: one family per kind of frame (docs/output-format.md), the shade from a hash of
 * the name, so that a function has the same colour in every run. */

enum family { FAMILY_LUA, FAMILY_LUA_JIT, FAMILY_NATIVE, FAMILY_KERNEL, FAMILY_OTHER, FAMILY_COUNT };

struct palette {
	const char *legend;
	unsigned from[3], to[3]; /* RGB: the hash picks a point between them */
};

static const struct palette palettes[FAMILY_COUNT] = {
	[FAMILY_LUA] = {"Lua", {62, 160, 58}, {158, 212, 78}},
	[FAMILY_LUA_JIT] = {"Lua, JIT-compiled", {36, 160, 186}, {112, 212, 226}},
	[FAMILY_NATIVE] = {"native (C)", {222, 70, 40}, {240, 178, 52}},
	[FAMILY_KERNEL] = {"kernel", {104, 126, 226}, {176, 146, 234}},
	[FAMILY_OTHER] = {NULL, {172, 172, 172}, {206, 206, 206}},
};

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(s, prefix, n) == 0;
}

static bool has_suffix(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);
	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static enum family frame_family(const struct node *n)
{
	if (n->parent == NO_PARENT)
		return FAMILY_OTHER;
	if (has_suffix(n->name, n->name_len, "_[k]"))
		return FAMILY_KERNEL;
	if (has_prefix(n->name, n->name_len, "L:"))
		return has_suffix(n->name, n->name_len, "_[j]") ? FAMILY_LUA_JIT : FAMILY_LUA;
	if (n->name_len >= 2 && n->name[0] == '[' && n->name[n->name_len - 1] == ']')
		return FAMILY_OTHER; /* [unknown], [anon], [no stack] */
	return FAMILY_NATIVE;
}

static void write_colour(FILE *out, enum family family, uint32_t hash)
{
	const struct palette *p = &palettes[family];
	double t = (double)(hash & 0xffff) / 65535.0;
	double lighten = 0.2 * (double)(hash >> 24) / 255.0; /* towards white */
	unsigned rgb[3];

	for (int c = 0; c < 3; c++) {
		double v = p->from[c] + t * ((double)p->to[c] - p->from[c]);
		rgb[c] = (unsigned)(v + lighten * (255.0 - v) + 0.5);
	}
	fprintf(out, "rgb(%u,%u,%u)", rgb[0], rgb[1], rgb[2]);
}

/* ---- What the widths count: samples, or microseconds off CPU (lua-perf --off-cpu). Chosen once
 * per document (measure_of); the script reads data-unit and data-amount from the root. */

struct measure {
	const char *title;         /* before the targets */
	const char *unit;          /* data-unit: "samples", or "us" (the script writes times) */
	const char *amount;        /* data-amount: "samples" or "off-CPU time" ("its ...", "of ...") */
	const char *amount_counts; /* the footnote: "their ... in their callers' widths" */
	void (*write_amount)(FILE *out, uint64_t count);
	void (*write_subtitle)(FILE *out, const struct flamegraph_info *info, uint64_t total);
};

static void write_samples(FILE *out, uint64_t samples)
{
	fprintf(out, "%" PRIu64 " sample%s", samples, samples == 1 ? "" : "s");
}

/* us microseconds as "850 µs", "1.234 ms" or "12.345 s": cut, not rounded, as the script does. */
static void write_time(FILE *out, uint64_t us)
{
	if (us < 1000)
		fprintf(out, "%" PRIu64 " \xc2\xb5s", us);
	else if (us < 1000000)
		fprintf(out, "%" PRIu64 ".%03" PRIu64 " ms", us / 1000, us % 1000);
	else
		fprintf(out, "%" PRIu64 ".%03" PRIu64 " s", us / 1000000, us % 1000000 / 1000);
}

static void write_cpu_subtitle(FILE *out, const struct flamegraph_info *info, uint64_t total)
{
	fprintf(out, "%.2f s at %u Hz, ", info->duration, info->frequency);
	write_samples(out, total);
}

static void write_off_cpu_subtitle(FILE *out, const struct flamegraph_info *info, uint64_t total)
{
	fprintf(out, "%.2f s, ", info->duration);
	write_time(out, total);
	fputs(" off CPU", out);
}

static const struct measure *measure_of(const struct flamegraph_info *info)
{
	static const struct measure cpu = {
		"lua-perf flame graph: ", "samples", "samples", "samples count",
		write_samples, write_cpu_subtitle,
	};
	static const struct measure off_cpu = {
		"Off-CPU time: ", "us", "off-CPU time", "off-CPU time counts",
		write_time, write_off_cpu_subtitle,
	};

	return info->off_cpu ? &off_cpu : &cpu;
}

/* ---- The document. */

static const char style_sheet[] =
	"text{font-family:monospace;font-size:12px;fill:#000}\n"
	"#fg-title{font-size:17px;font-weight:bold}\n"
	".fg-button{fill:#1a5fb4;cursor:pointer;text-decoration:underline}\n"
	".fg-hidden{display:none}\n"
	"#fg-frames g{cursor:pointer}\n"
	"#fg-frames text{pointer-events:none}\n"
	"#fg-frames g:hover rect{stroke:#000;stroke-width:0.6}\n"
	".fg-caller rect{opacity:0.55}\n";

/* The interactive part. It takes everything from the document (frame names from the <title> of
 * each frame, numbers from data-* attributes) and writes text with textContent only. */
static const char script[] =
	"(function () {\n"
	"'use strict';\n"
	"var svg = document.getElementById('fg');\n"
	"var plotX = Number(svg.getAttribute('data-plot-x'));\n"
	"var plotWidth = Number(svg.getAttribute('data-plot-width'));\n"
	"var charWidth = Number(svg.getAttribute('data-char-width'));\n"
	"var total = Number(svg.getAttribute('data-total'));\n"
	"var unit = svg.getAttribute('data-unit'), amountName = svg.getAttribute('data-amount');\n"
	"var highlight = 'rgb(230,0,230)';\n"
	"var framesGroup = document.getElementById('fg-frames');\n"
	"var details = document.getElementById('fg-details');\n"
	"var matchedText = document.getElementById('fg-matched');\n"
	"var resetButton = document.getElementById('fg-reset');\n"
	"var searchButton = document.getElementById('fg-search');\n"
	"var idleDetails = details.textContent;\n"
	"var frames = [], byGroup = new Map(), lastTerm = '';\n"
	"Array.prototype.forEach.call(framesGroup.children, function (g) {\n"
	"  var title = g.getElementsByTagName('title')[0].textContent;\n"
	"  var cut = title.indexOf('\\n');\n"
	"  var rect = g.getElementsByTagName('rect')[0];\n"
	"  var f = {g: g, rect: rect, label: g.getElementsByTagName('text')[0],\n"
	"    name: cut < 0 ? title : title.slice(0, cut),\n"
	"    x: Number(g.getAttribute('data-x')), w: Number(g.getAttribute('data-w')),\n"
	"    depth: Number(g.getAttribute('data-d')),\n"
	"    omitted: Number(g.getAttribute('data-o') || 0), fill: rect.getAttribute('fill')};\n"
	"  frames.push(f);\n"
	"  byGroup.set(g, f);\n"
	"});\n"
	"var root = frames[0], zoomed = root;\n"
	"/* Stacks that go on below a drawn frame through frames too narrow to draw. */\n"
	"var undrawnList = document.getElementById('fg-undrawn'), undrawn = [];\n"
	"if (undrawnList)\n"
	"  Array.prototype.forEach.call(undrawnList.children, function (u) {\n"
	"    undrawn.push({parent: frames[Number(u.getAttribute('p'))],\n"
	"      count: Number(u.getAttribute('c')),\n"
	"      names: Array.prototype.map.call(u.children, function (f) { return f.textContent; })});\n"
	"  });\n"
	"\n"
	"function percent(n) { return (total > 0 ? 100 * n / total : 0).toFixed(2) + '%'; }\n"
	"/* Microseconds as the document writes them: cut to three decimals, not rounded. */\n"
	"function time(us) {\n"
	"  if (us < 1000) return us + ' \\u00b5s';\n"
	"  var div = us < 1e6 ? 1e3 : 1e6, thousandths = Math.floor(us % div / (div / 1000));\n"
	"  return Math.floor(us / div) + '.' + String(thousandths).padStart(3, '0') +\n"
	"    (div === 1e3 ? ' ms' : ' s');\n"
	"}\n"
	"function amount(n) {\n"
	"  return unit === 'us' ? time(n) : n + (n === 1 ? ' sample' : ' samples');\n"
	"}\n"
	"function describe(f) {\n"
	"  return f.name + ' \\u2014 ' + amount(f.w) + ' (' + percent(f.w) + ')';\n"
	"}\n"
	"function fitLabel(name, width) {\n"
	"  var room = Math.floor((width - 2 * 3) / charWidth);\n"
	"  if (!(room >= 3)) return '';\n"
	"  var chars = Array.from(name);\n"
	"  return chars.length <= room ? name : chars.slice(0, room - 1).join('') + '\\u2026';\n"
	"}\n"
	"function place(f, x, width) {\n"
	"  f.rect.setAttribute('x', x.toFixed(2));\n"
	"  f.rect.setAttribute('width', width.toFixed(2));\n"
	"  f.label.setAttribute('x', (x + 3).toFixed(2));\n"
	"  f.label.textContent = fitLabel(f.name, width);\n"
	"}\n"
	"/* Zoom: the target spans the plot; its callers (full width, faded) and callees stay. */\n"
	"function zoom(target) {\n"
	"  var start = target.x, span = target.w || 1, scale = plotWidth / span;\n"
	"  frames.forEach(function (f) {\n"
	"    var caller = f.depth < target.depth;\n"
	"    var show = caller ? f.x <= start && f.x + f.w >= start + span\n"
	"                      : f.x >= start && f.x + f.w <= start + span;\n"
	"    f.g.style.display = show ? '' : 'none';\n"
	"    f.g.classList.toggle('fg-caller', caller && show);\n"
	"    if (show)\n"
	"      place(f, caller ? plotX : plotX + (f.x - start) * scale,\n"
	"            caller ? plotWidth : f.w * scale);\n"
	"  });\n"
	"  zoomed = target;\n"
	"  resetButton.classList.toggle('fg-hidden', target === root);\n"
	"}\n"
	"function frameOf(event) {\n"
	"  for (var node = event.target; node && node !== framesGroup; node = node.parentNode)\n"
	"    if (byGroup.has(node)) return byGroup.get(node);\n"
	"  return null;\n"
	"}\n"
	"framesGroup.addEventListener('mouseover', function (e) {\n"
	"  var f = frameOf(e);\n"
	"  if (f) details.textContent = describe(f);\n"
	"});\n"
	"framesGroup.addEventListener('mouseout', function (e) {\n"
	"  if (frameOf(e)) details.textContent = idleDetails;\n"
	"});\n"
	"framesGroup.addEventListener('click', function (e) {\n"
	"  var f = frameOf(e);\n"
	"  if (f && f !== zoomed) zoom(f);\n"
	"});\n"
	"resetButton.addEventListener('click', function () { zoom(root); });\n"
	"\n"
	"function toRegExp(term) {\n"
	"  try { return new RegExp(term); }\n"
	"  catch (e) { return new RegExp(term.replace(/[.*+?^${}()|[\\]\\\\]/g, '\\\\$&')); }\n"
	"}\n"
	"/* Whether frame f lies within one of the spans (sorted by x, disjoint). */\n"
	"function covered(spans, f) {\n"
	"  var lo = 0, hi = spans.length - 1;\n"
	"  while (lo <= hi) {\n"
	"    var mid = (lo + hi) >> 1, s = spans[mid];\n"
	"    if (f.x < s.x) hi = mid - 1;\n"
	"    else if (f.x >= s.x + s.w) lo = mid + 1;\n"
	"    else return f.x + f.w <= s.x + s.w;\n"
	"  }\n"
	"  return false;\n"
	"}\n"
	"function clearSearch() {\n"
	"  frames.forEach(function (f) { f.rect.setAttribute('fill', f.fill); });\n"
	"  matchedText.textContent = '';\n"
	"  ['data-term', 'data-samples', 'data-upper'].forEach(function (a) {\n"
	"    matchedText.removeAttribute(a);\n"
	"  });\n"
	"}\n"
	"/* Highlight the frames whose name matches; count each sample once: a match among the\n"
	"   callees of another match adds nothing. Frames too narrow to draw count through the\n"
	"   list of undrawn stacks, or without it give an upper bound (their samples). */\n"
	"function search(term) {\n"
	"  if (!term) { clearSearch(); return; }\n"
	"  lastTerm = term;\n"
	"  var re = toRegExp(term), hits = [];\n"
	"  frames.forEach(function (f) {\n"
	"    var hit = f !== root && re.test(f.name);\n"
	"    f.rect.setAttribute('fill', hit ? highlight : f.fill);\n"
	"    if (hit) hits.push(f);\n"
	"  });\n"
	"  hits.sort(function (a, b) { return a.x - b.x || b.w - a.w; });\n"
	"  var spans = [], end = -1, matched = 0, unsure = 0;\n"
	"  hits.forEach(function (f) {\n"
	"    if (f.x < end) return;\n"
	"    spans.push(f);\n"
	"    matched += f.w;\n"
	"    end = f.x + f.w;\n"
	"  });\n"
	"  if (undrawnList) {\n"
	"    var seen = new Map();\n"
	"    var test = function (name) {\n"
	"      if (!seen.has(name)) seen.set(name, re.test(name));\n"
	"      return seen.get(name);\n"
	"    };\n"
	"    undrawn.forEach(function (u) {\n"
	"      if (!covered(spans, u.parent) && u.names.some(test)) matched += u.count;\n"
	"    });\n"
	"  } else {\n"
	"    frames.forEach(function (f) {\n"
	"      if (f.omitted > 0 && !covered(spans, f)) unsure += f.omitted;\n"
	"    });\n"
	"  }\n"
	"  matchedText.textContent = 'Matched: ' + percent(matched) + ' of ' + amountName +\n"
	"    (unsure > 0 ? ' (up to ' + percent(matched + unsure) +\n"
	"                  ' with frames too narrow to draw)' : '');\n"
	"  matchedText.setAttribute('data-term', term);\n"
	"  matchedText.setAttribute('data-samples', String(matched));\n"
	"  matchedText.setAttribute('data-upper', String(matched + unsure));\n"
	"}\n"
	"function askSearch() {\n"
	"  var term = window.prompt('Search frames (regular expression; empty to clear):', lastTerm);\n"
	"  if (term !== null) search(term);\n"
	"}\n"
	"searchButton.addEventListener('click', askSearch);\n"
	"document.addEventListener('keydown', function (e) {\n"
	"  if ((e.ctrlKey || e.metaKey) && (e.key === 'f' || e.key === 'F')) {\n"
	"    e.preventDefault();\n"
	"    askSearch();\n"
	"  } else if (e.key === 'Escape') {\n"
	"    clearSearch();\n"
	"  }\n"
	"});\n"
	"})();\n";

static int image_height(const struct graph *g)
{
	return HEADER_HEIGHT + (int)(g->max_depth + 1) * ROW_HEIGHT + FOOTER_HEIGHT;
}

static void write_header(FILE *out, const struct graph *g, const struct flamegraph_info *info,
			 const struct measure *m)
{
	int height = image_height(g);

	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n", out);
	fprintf(out,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" id=\"fg\" width=\"%d\" "
		"height=\"%d\" viewBox=\"0 0 %d %d\" data-total=\"%" PRIu64 "\" data-plot-x=\"%d\" "
		"data-plot-width=\"%d\" data-char-width=\"%.1f\" data-drawn=\"%zu\" "
		"data-omitted=\"%zu\" data-unit=\"%s\" data-amount=\"%s\">\n",
		IMAGE_WIDTH, height, IMAGE_WIDTH, height, g->total, PLOT_X, PLOT_WIDTH, CHAR_WIDTH,
		g->drawn, g->frames_seen + 1 - g->drawn, m->unit, m->amount);
	fprintf(out, "<style>\n%s</style>\n", style_sheet);
	fprintf(out, "<rect width=\"100%%\" height=\"100%%\" fill=\"#f7f7f2\"/>\n");
	fprintf(out, "<text id=\"fg-title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">", IMAGE_WIDTH / 2);
	fputs(m->title, out);
	write_string(out, info->targets ? info->targets : "?");
	fputs("</text>\n", out);
	fprintf(out, "<text id=\"fg-subtitle\" x=\"%d\" y=\"42\" text-anchor=\"middle\">",
		IMAGE_WIDTH / 2);
	m->write_subtitle(out, info, g->total);
	fputs("</text>\n", out);
	fprintf(out, "<text id=\"fg-reset\" class=\"fg-button fg-hidden\" x=\"%d\" y=\"24\">Reset "
		     "zoom</text>\n", PLOT_X);
	fprintf(out, "<text id=\"fg-search\" class=\"fg-button\" x=\"%d\" y=\"24\" "
		     "text-anchor=\"end\">Search (Ctrl-F)</text>\n", PLOT_X + PLOT_WIDTH);
	fprintf(out, "<text id=\"fg-matched\" x=\"%d\" y=\"42\" text-anchor=\"end\"></text>\n",
		PLOT_X + PLOT_WIDTH);
	fputs("<g id=\"fg-legend\">\n", out);
	for (int f = 0, x = PLOT_X; f < FAMILY_COUNT; f++) {
		if (!palettes[f].legend)
			continue;
		fprintf(out, "<rect x=\"%d\" y=\"52\" width=\"12\" height=\"12\" fill=\"", x);
		write_colour(out, (enum family)f, 0x7fff);
		fprintf(out, "\"/><text x=\"%d\" y=\"62\">%s</text>\n", x + 16, palettes[f].legend);
		x += 16 + (int)(strlen(palettes[f].legend) * CHAR_WIDTH) + 24;
	}
	fputs("</g>\n", out);
}

static void write_frame(FILE *out, const struct graph *g, const struct node *n,
			const struct measure *m)
{
	double scale = g->total ? (double)PLOT_WIDTH / (double)g->total : 0.0;
	double x = PLOT_X + (double)n->x * scale, width = (double)n->width * scale;
	uint64_t omitted = n->width - n->self - n->drawn_children;
	int y = HEADER_HEIGHT + (int)(g->max_depth - n->depth) * ROW_HEIGHT;

	fprintf(out, "<g data-x=\"%" PRIu64 "\" data-w=\"%" PRIu64 "\" data-d=\"%zu\"", n->x,
		n->width, n->depth);
	if (omitted)
		fprintf(out, " data-o=\"%" PRIu64 "\"", omitted);
	fputs("><title>", out);
	write_text(out, n->name, n->name_len, SIZE_MAX);
	fputc('\n', out);
	m->write_amount(out, n->width);
	fprintf(out, ", %.2f%%</title>", percent(n->width, g->total));
	fprintf(out, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"", x, y, width,
		BAR_HEIGHT);
	write_colour(out, frame_family(n), fnv1a_32(n->name, n->name_len));
	fprintf(out, "\"/><text x=\"%.2f\" y=\"%.1f\">", x + LABEL_PADDING, y + LABEL_BASELINE);
	write_label(out, n, width);
	fputs("</text></g>\n", out);
}

/* <fg:u p="drawn parent" c="samples"><fg:f>frame</fg:f>...</fg:u> for each undrawn tail. */
static void write_undrawn(FILE *out, const struct graph *g)
{
	fputs("<metadata id=\"fg-undrawn\" xmlns:fg=\"" UNDRAWN_NAMESPACE "\">\n", out);
	for (size_t i = 0; i < g->tail_count; i++) {
		const struct undrawn_tail *t = &g->tails[i];
		const char *frame = t->frames;
		bool more = true;

		fprintf(out, "<fg:u p=\"%zu\" c=\"%" PRIu64 "\">", g->nodes[t->parent].drawn_index,
			t->count);
		while (more) {
			size_t len = strcspn(frame, ";");

			fputs("<fg:f>", out);
			write_text(out, frame, len, SIZE_MAX);
			fputs("</fg:f>", out);
			more = frame[len] == ';';
			frame += len + more;
		}
		fputs("</fg:u>\n", out);
	}
	fputs("</metadata>\n", out);
}

static void write_footer(FILE *out, const struct graph *g, const struct measure *m)
{
	int y = image_height(g) - FOOTER_HEIGHT + 18;
	size_t omitted = g->frames_seen + 1 - g->drawn;

	fprintf(out, "<text id=\"fg-details\" x=\"%d\" y=\"%d\">Hover over a frame for its %s; "
		     "click to zoom; Ctrl-F to search, Esc to clear.</text>\n", PLOT_X, y, m->amount);
	fprintf(out, "<text id=\"fg-footnote\" x=\"%d\" y=\"%d\">", PLOT_X, y + 18);
	if (omitted == 0)
		fputs("All frames drawn.", out);
	else if (!g->capped)
		fprintf(out, "%zu frame%s narrower than %.1f%% of the %s not drawn", omitted,
			omitted == 1 ? "" : "s", 100.0 / FLAMEGRAPH_MIN_WIDTH_DIVISOR, m->amount);
	else
		fprintf(out, "%zu frames not drawn: narrower than %.1f%% of the %s, or beyond the "
			     "%d widest", omitted, 100.0 / FLAMEGRAPH_MIN_WIDTH_DIVISOR, m->amount,
			FLAMEGRAPH_MAX_FRAMES);
	if (omitted)
		fprintf(out, " (their %s in their callers' widths; search %s).", m->amount_counts,
			g->tails_complete ? "finds them" : "gives a range for them");
	fputs("</text>\n", out);
}

static void write_document(FILE *out, const struct graph *g, const struct flamegraph_info *info)
{
	const struct measure *m = measure_of(info);

	write_header(out, g, info, m);
	fputs("<g id=\"fg-frames\">\n", out);
	for (size_t i = 0; i < g->count; i++)
		if (g->nodes[i].drawn)
			write_frame(out, g, &g->nodes[i], m);
	fputs("</g>\n", out);
	if (g->tails_complete)
		write_undrawn(out, g);
	write_footer(out, g, m);
	fprintf(out, "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n</svg>\n", script);
}

int flamegraph_svg_write(FILE *out, const struct folded_line *lines, size_t count,
			 const struct flamegraph_info *info, struct flamegraph_stats *stats)
{
	struct graph g = {0};
	int rc = build_graph(&g, lines, count);

	if (rc == 0)
		rc = choose_drawn(&g);
	if (rc == 0)
		rc = collect_undrawn(&g);
	if (rc == 0) {
		write_document(out, &g, info);
		if (fflush(out) != 0 || ferror(out))
			rc = -EIO;
	}
	if (rc == 0 && stats)
		*stats = (struct flamegraph_stats){
			.frames_drawn = g.drawn,
			.frames_omitted = g.frames_seen + 1 - g.drawn,
			.omitted_listed = g.tails_complete,
			.samples = g.total,
		};
	free(g.lines);
	free(g.nodes);
	free(g.path);
	free(g.tails);
	return rc;
}
