/* SPDX-License-Identifier: MIT */
/* A fixed amount of CPU work done at a chosen native stack depth, for bench/bench.py.
 * Usage: bench_stack_depth DEPTH ROUNDS [DELAY]  -> idles DELAY seconds (so that a profiler can
 * attach first), prints "working", then prints the seconds the work took.
 * Built -O2 -fomit-frame-pointer like distro code; each level is a real frame (noipa, and a
 * volatile store after the call so that it is not a tail call). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

/* Each function a frame of its own: GCC's noipa also stops clones and interprocedural shortcuts;
 * clang has no such attribute (and does not clone across noinline). */
#if defined(__clang__)
#define KEEP_FRAME noinline
#else
#define KEEP_FRAME noinline, noipa
#endif

__attribute__((KEEP_FRAME)) static void work(unsigned long rounds)
{
	unsigned long x = sink;

	for (unsigned long i = 0; i < rounds; i++)
		x = x * 6364136223846793005ul + 1442695040888963407ul;
	sink = x;
}

__attribute__((KEEP_FRAME)) static void descend(int depth, unsigned long rounds)
{
	if (depth <= 1)
		work(rounds);
	else
		descend(depth - 1, rounds);
	sink += 1;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s DEPTH ROUNDS [DELAY]\n", argv[0]);
		return 2;
	}
	if (argc == 4) {
		double delay = atof(argv[3]);
		struct timespec ts = {.tv_sec = (time_t)delay,
				      .tv_nsec = (long)((delay - (double)(time_t)delay) * 1e9)};
		nanosleep(&ts, NULL);
	}
	int depth = atoi(argv[1]);
	unsigned long rounds = strtoul(argv[2], NULL, 10);
	/* bench.py times the work from this line */
	if (puts("working") == EOF || fflush(stdout) != 0)
		return 1;
	double start = now_seconds();

	/* main + libc start frames + descend levels + work: about depth + 4 frames */
	for (int i = 0; i < 100; i++)
		descend(depth, rounds / 100);
	printf("%.6f\n", now_seconds() - start);
	return 0;
}
