/* SPDX-License-Identifier: MIT */
/* flamegraph_svg.h - an interactive flame graph from folded stacks: one self-contained SVG file
 * (inline CSS and JavaScript, no external resource). Hover shows a frame's samples (or its time
 * off CPU), click zooms, Ctrl-F searches (docs/output-format.md). Frame names are untrusted (they
 * come from the profiled processes): everything taken from them is escaped, invalid UTF-8 is
 * replaced. */
#ifndef LUA_PERF_FLAMEGRAPH_SVG_H
#define LUA_PERF_FLAMEGRAPH_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "output/process_samples.h"

/* One line of the folded output: frames root first, separated by ';', and its sample count;
 * those samples by thread (sorted by tgid then tid; a tid of 0 stands for a process whose
 * threads are not told apart; NULL/0 when not tracked, e.g. in the SVG's tests). */
struct folded_line {
	char *text;
	uint64_t count;
	struct process_samples *processes;
	size_t process_count;
	size_t process_capacity;
};

/* The title block. */
struct flamegraph_info {
	const char *targets;   /* who was profiled, e.g. "lua5.4 (PID 42)" */
	double duration;       /* seconds sampled */
	unsigned frequency;    /* samples per second per CPU */
	bool off_cpu;          /* counts are microseconds off CPU (lua-perf --off-cpu), not samples */
};

struct flamegraph_stats {
	size_t frames_drawn;   /* including the root frame "all" */
	size_t frames_omitted; /* too narrow to draw (said in the SVG's footnote) */
	bool omitted_listed;   /* the names of the omitted frames are in the SVG: search is exact */
	uint64_t samples;
};

/* Frames narrower than 1/FLAMEGRAPH_MIN_WIDTH_DIVISOR of all samples (0.1%) are not drawn, and
 * at most FLAMEGRAPH_MAX_FRAMES are (the widest, callers before callees): the SVG stays small
 * and fast on any profile. The SVG says how many frames it left out. Their names are listed
 * (not drawn) for search, in up to about FLAMEGRAPH_MAX_LIST_BYTES of the SVG; beyond that
 * search reports a range (at least the samples matched by drawn frames, at most those plus the
 * undrawn ones). */
#define FLAMEGRAPH_MIN_WIDTH_DIVISOR 1000
#define FLAMEGRAPH_MAX_FRAMES 10000
#define FLAMEGRAPH_MAX_LIST_BYTES (2u << 20)

/* Write the flame graph of lines[0..count) (any order; lines with the same text add up) to out.
 * Does not close out. Returns 0, -ENOMEM, -EOVERFLOW (sample counts sum beyond 64 bits) or -EIO
 * (out has its error flag set). stats may be NULL. */
int flamegraph_svg_write(FILE *out, const struct folded_line *lines, size_t count,
			 const struct flamegraph_info *info, struct flamegraph_stats *stats);

#endif
