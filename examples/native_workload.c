/* SPDX-License-Identifier: MIT */
/* The bundled example: a small C program with a recognizable profile. parse_input takes about a
 * quarter of the time, render_output about three quarters (through a libc qsort callback), so the
 * flame graph shows main -> run -> {parse_input, render_output -> qsort -> compare_rows}.
 * Usage: example_native_workload [SECONDS] (default: run until killed). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static void parse_input(unsigned rounds)
{
	uint64_t h = sink;

	for (unsigned i = 0; i < rounds; i++)
		h = h * 6364136223846793005ull + i;
	sink = h;
}

static int compare_rows(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	for (int i = 0; i < 20; i++) /* make each comparison cost something */
		sink += (x ^ (uint32_t)i) * y;
	return (x > y) - (x < y);
}

__attribute__((noinline)) static void render_output(uint32_t *rows, size_t count)
{
	for (size_t i = 0; i < count; i++)
		rows[i] = (uint32_t)(i * 2654435761u);
	qsort(rows, count, sizeof(*rows), compare_rows);
}

__attribute__((noinline)) static void run(double seconds)
{
	static uint32_t rows[4096];
	double end = now_seconds() + seconds;

	while (seconds <= 0 || now_seconds() < end) {
		parse_input(200000);
		render_output(rows, sizeof(rows) / sizeof(rows[0]));
	}
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0;

	run(seconds);
	printf("%llu\n", (unsigned long long)sink);
	return 0;
}
