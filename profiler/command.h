/* SPDX-License-Identifier: MIT */
/* command.h - `lua-perf -- CMD [ARGS...]`: CMD runs as lua-perf's child, with lua-perf's
 * environment, standard streams and process group, held before its execvp() until profiling is
 * ready, so that it is sampled from its first instruction. */
#ifndef LUA_PERF_COMMAND_H
#define LUA_PERF_COMMAND_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

struct command {
	pid_t pid;          /* 0: none */
	int release_fd;     /* a byte written: exec; closed without one: exit at once */
	int status_fd;      /* the errno of a failed execvp, or end of file once it succeeded */
	int wait_status;    /* waitpid()'s, once reaped */
	bool reaped;
};

/* The file execvp() would run for name: name itself when it has a '/', else the first
 * executable regular file name in $PATH (glibc's default when unset). malloc()ed; NULL if none. */
char *command_resolve(const char *name);
/* The program the kernel runs for the script at path: the interpreter its "#!" line names
 * (fs/binfmt_script.c), or, for "#!/usr/bin/env NAME", NAME looked up in $PATH as env does.
 * malloc()ed; NULL when path is no script (or cannot be read). */
char *command_script_interpreter(const char *path);
/* Fork the child that will run argv (argv[0] looked up in PATH). 0 or -errno (said). */
int command_spawn(struct command *c, char *const argv[]);
/* Let it exec. 0 when argv[0] runs, else -errno of the failed exec (said, naming it). */
int command_start(struct command *c, const char *name);
/* Has it exited? (reaps it; never blocks) */
bool command_exited(struct command *c);
/* Wait until it exits; a stop signal meanwhile (stop_flag set again) kills it. */
void command_wait(struct command *c, volatile sig_atomic_t *stop_count);
/* Send sig, if it still runs. */
void command_signal(struct command *c, int sig);
/* Not started: let it go, and reap it. */
void command_abandon(struct command *c);
/* Its exit status as a shell reports it: the exit code, or 128 + the signal that killed it. */
int command_exit_code(const struct command *c);

#endif
