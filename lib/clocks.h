/* clocks.h - the clocks lua-perf measures itself with. */
#ifndef LUA_PERF_CLOCKS_H
#define LUA_PERF_CLOCKS_H

/* Seconds on CLOCK_MONOTONIC. */
double now_seconds(void);
/* CPU seconds (user + system) this process has used so far; 0 if the kernel does not say. */
double own_cpu_seconds(void);

#endif
