/* SPDX-License-Identifier: MIT */
/* hostile_elf.h - runs a Lua runtime detector (runtime/lua_runtime.c, runtime/luajit/luajit_detect.c) on
 * truncated and corrupted copies of a real ELF file, for the "hostile" mode of
 * tests/fixtures/lua_detect/lua_detect_tool.c and tests/fixtures/luajit_detect/luajit_detect_tool.c.
 *
 * The tool gives a callback that runs its detector on one copy and checks what only it knows
 * (what an OK result must fill, what the others must leave empty); the harness checks the rest of
 * the contract every detector shares (a known result; UNSUPPORTED with a reason that never changes
 * afterwards, reasons being static strings that callers keep: profiler/mapped_files.c), counts the
 * results and prints one "FAIL ..." line per broken copy. The copies are made with a
 * deterministic generator, so a failure reproduces. */
#ifndef LUA_PERF_TEST_HOSTILE_ELF_H
#define LUA_PERF_TEST_HOSTILE_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/lua_runtime.h"
#include "tests/unit/support/test_files.h"

/* xorshift64* (Vigna 2014) on *state (any non-zero seed). */
uint64_t xorshift64s_next(uint64_t *state);

/* "none", "ok", "unsupported" or "?". */
const char *lua_detect_result_name(enum lua_detect_result r);

/* Detection on the copy at path. -1 when it does not open as an ELF file; else 0 with *result,
 * *reason (NULL or the detector's static string) and *valid: false when the result breaks the
 * tool's own part of the contract. */
typedef int (*hostile_detect_fn)(const char *path, enum lua_detect_result *result,
				 const char **reason, bool *valid);

#define HOSTILE_KEPT_REASONS 48
#define HOSTILE_REASON_MAX 160

struct hostile_stats {
	unsigned runs, ok, none, unsupported, unopenable, broken;
	/* The first UNSUPPORTED reasons seen, by pointer and a copy of their text then. */
	const char *kept[HOSTILE_KEPT_REASONS];
	char kept_text[HOSTILE_KEPT_REASONS][HOSTILE_REASON_MAX];
	unsigned kept_count;
};

struct hostile_run {
	const char *file;  /* the pristine file (trusted) */
	struct blob orig;  /* its bytes */
	uint8_t *work;     /* orig.size bytes where copies are made */
	char *path;        /* where each copy is written */
	uint64_t rng;      /* xorshift64s_next state */
	hostile_detect_fn detect;
	struct hostile_stats st;
};

/* Reads file and prepares copies written to DIR/NAME.PID. 0, or -1 after a "FAIL" line. */
int hostile_run_open(struct hostile_run *h, const char *file, const char *dir, const char *name,
		     hostile_detect_fn detect);
/* Removes the copy and frees what open allocated. */
void hostile_run_close(struct hostile_run *h);

/* data[0..size) written as the copy, detected and checked; what names it in a FAIL line. */
void hostile_try(struct hostile_run *h, const char *what, const uint8_t *data, size_t size);
/* A copy of the file with `bytes` random bytes set to random values in [off, off + size). */
void hostile_try_corrupt(struct hostile_run *h, const char *what, size_t off, size_t size,
			 unsigned bytes);

/* Copies cut at many lengths, dense near the start where the headers are. */
void hostile_truncations(struct hostile_run *h);
/* `copies` copies with `bytes` random bytes each in the first `region` bytes (the whole file, or
 * where the headers, .dynsym and .rodata of a small library are). */
void hostile_corruptions(struct hostile_run *h, size_t region, unsigned copies, unsigned bytes);
/* `copies` copies per section detection reads (symbols, strings, .rodata, CFI, .text,
 * .data.rel.ro): 4 random bytes in the first 8, 64 in the next 8, 1024 in the rest. */
void hostile_section_corruptions(struct hostile_run *h, unsigned copies);

/* [offset, offset + size) of a named section with bytes in file; false when absent. */
bool hostile_section_extent(const char *file, const char *name, size_t *offset, size_t *size);

/* Fails the reasons that changed since they were kept, then prints the summary line. True when
 * no copy broke the contract. */
bool hostile_report(struct hostile_run *h);

#endif
