/* SPDX-License-Identifier: MIT */
/*
 * pipe_pingpong - the worst case for `lua-perf --off-cpu`: two threads pass one byte back and
 * forth through two pipes, so that every round trip is two blocking reads, two wake-ups and at
 * least two context switches (four when the threads share a CPU). Used by bench/off_cpu_bench.py.
 *
 * usage: pipe_pingpong [--wait] SECONDS
 *   with --wait, first reads a line on stdin (the benchmark writes it once the profiler is
 *   attached); then ping-pongs for SECONDS and prints "round_trips N seconds S rate R" (R round
 *   trips per second) and the context switches the two threads made while doing so (voluntary +
 *   involuntary, getrusage RUSAGE_THREAD): "switches N rate R".
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static volatile int stop;
static long ponger_switches;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long thread_switches(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

static void *ponger(void *arg)
{
	char c;
	long before = thread_switches();

	(void)arg;
	while (read(ping[0], &c, 1) == 1) {
		if (c == 'q')
			break;
		if (write(pong[1], &c, 1) != 1)
			break;
	}
	ponger_switches = thread_switches() - before;
	return NULL;
}

int main(int argc, char **argv)
{
	int wait = argc == 3 && strcmp(argv[1], "--wait") == 0;
	double seconds = argc >= 2 ? atof(argv[argc - 1]) : 0.0;
	pthread_t t;
	long trips = 0;
	char c = 'x';

	if (argc != 2 + wait || !(seconds > 0.0)) {
		fprintf(stderr, "usage: pipe_pingpong [--wait] SECONDS\n");
		return 2;
	}
	if (pipe(ping) != 0 || pipe(pong) != 0) {
		perror("pipe");
		return 1;
	}
	if (wait) {
		char line[16];

		if (!fgets(line, sizeof(line), stdin)) {
			fprintf(stderr, "pipe_pingpong: no go on stdin\n");
			return 1;
		}
	}
	if (pthread_create(&t, NULL, ponger, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	long before = thread_switches();
	double start = now(), end = start + seconds, t_now = start;

	while (t_now < end) {
		for (int i = 0; i < 256; i++) {
			if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) {
				perror("ping");
				return 1;
			}
		}
		trips += 256;
		t_now = now();
	}
	long mine = thread_switches() - before;
	c = 'q';
	if (write(ping[1], &c, 1) != 1)
		return 1;
	pthread_join(t, NULL);
	double took = t_now - start;
	printf("round_trips %ld seconds %.3f rate %.0f\n", trips, took, (double)trips / took);
	printf("switches %ld rate %.0f\n", mine + ponger_switches,
	       (double)(mine + ponger_switches) / took);
	return 0;
}
