/* SPDX-License-Identifier: MIT */
#include "profiler/command.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/strbuf.h"
#include "lib/whole_file.h"

/* In the child, between fork and exec: only async-signal-safe calls. */
static void run_child(int release_fd, int status_fd, char *const argv[])
{
	char go;

	if (read_retrying(release_fd, &go, 1) != 1)
		_exit(127); /* lua-perf gave up before starting it */
	execvp(argv[0], argv);
	int err = errno;
	ssize_t written = write(status_fd, &err, sizeof(err));
	(void)written; /* nothing to do: the parent then sees a clean exit status of 127 */
	_exit(127);
}

int command_spawn(struct command *c, char *const argv[])
{
	int release[2], status[2];

	*c = (struct command){.release_fd = -1, .status_fd = -1};
	if (pipe2(release, O_CLOEXEC) != 0) {
		lp_error("cannot start %s: %s", argv[0], strerror(errno));
		return -errno;
	}
	if (pipe2(status, O_CLOEXEC) != 0) {
		int err = errno;

		close(release[0]);
		close(release[1]);
		lp_error("cannot start %s: %s", argv[0], strerror(err));
		return -err;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(release[1]);
		close(status[0]);
		run_child(release[0], status[1], argv);
	}
	int err = errno;
	close(release[0]);
	close(status[1]);
	c->release_fd = release[1];
	c->status_fd = status[0];
	if (pid < 0) {
		command_abandon(c);
		lp_error("cannot start %s: %s", argv[0], strerror(err));
		return -err;
	}
	c->pid = pid;
	return 0;
}

static bool is_executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *command_resolve(const char *name)
{
	const char *path = getenv("PATH");
	struct strbuf sb = {0};

	if (strchr(name, '/'))
		return strdup(name);
	if (!path)
		path = "/bin:/usr/bin"; /* glibc's execvp default (posix/execvpe.c) */
	for (const char *dir = path;; dir++) {
		size_t len = strcspn(dir, ":");

		sb.len = 0;
		if (len)
			strbuf_appendf(&sb, "%.*s/%s", (int)len, dir, name);
		else /* an empty entry is the current directory (execvp(3)) */
			strbuf_appendf(&sb, "./%s", name);
		if (sb.data && !sb.failed && is_executable_file(sb.data))
			return strbuf_take(&sb);
		dir += len;
		if (*dir == '\0')
			break;
	}
	free(sb.data);
	return NULL;
}

/* The kernel reads this much of a script for its "#!" line (BINPRM_BUF_SIZE,
 * include/uapi/linux/binfmts.h). */
#define SHEBANG_MAX 256

static void trim_trailing_blanks(char *s)
{
	size_t len = strlen(s);

	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
}

/* line: the "#!" line without its "#!" and newline. The interpreter as the kernel splits it
 * (its name up to a blank; the rest of the line, trimmed, is one argument), env's NAME resolved.
 * cut: the line goes on past what the kernel reads, which it accepts only if the interpreter's
 * name ends before (fs/binfmt_script.c, since Linux 5.1). */
static char *interpreter_of_line(char *line, bool cut)
{
	char *interp = line + strspn(line, " \t");
	size_t len = strcspn(interp, " \t");
	char *arg = interp + len;

	if (len == 0 || (cut && *arg == '\0'))
		return NULL;
	if (*arg != '\0') {
		*arg++ = '\0';
		arg += strspn(arg, " \t");
		trim_trailing_blanks(arg);
	}
	const char *slash = strrchr(interp, '/');
	bool is_env = strcmp(slash ? slash + 1 : interp, "env") == 0;
	/* env with options (-S) or assignments (VAR=x) is not followed */
	if (is_env && arg[0] != '\0' && arg[0] != '-' && !strpbrk(arg, " \t="))
		return command_resolve(arg);
	return strdup(interp);
}

char *command_script_interpreter(const char *path)
{
	char buf[SHEBANG_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	ssize_t n = pread(fd, buf, SHEBANG_MAX, 0);
	close(fd);
	if (n < 2 || buf[0] != '#' || buf[1] != '!')
		return NULL;
	buf[n] = '\0';
	char *newline = memchr(buf, '\n', (size_t)n);
	if (newline)
		*newline = '\0';
	return interpreter_of_line(buf + 2, !newline && n == SHEBANG_MAX);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int command_start(struct command *c, const char *name)
{
	char go = 1;
	int err = 0;

	if (write(c->release_fd, &go, 1) != 1)
		err = errno;
	close_fd(&c->release_fd);
	if (err == 0 && read_retrying(c->status_fd, &err, sizeof(err)) != (ssize_t)sizeof(err))
		err = 0; /* end of file: the exec closed the pipe */
	close_fd(&c->status_fd);
	if (err) {
		lp_error("cannot run %s: %s", name, strerror(err));
		return -err;
	}
	return 0;
}

static bool reap(struct command *c, int options)
{
	if (c->reaped || c->pid <= 0)
		return true;
	int status;
	pid_t got = waitpid(c->pid, &status, options);
	if (got == c->pid) {
		c->reaped = true;
		c->wait_status = status;
	} else if (got < 0 && errno == ECHILD) {
		c->reaped = true; /* reaped elsewhere: no status */
	}
	return c->reaped;
}

bool command_exited(struct command *c)
{
	return reap(c, WNOHANG);
}

void command_wait(struct command *c, volatile sig_atomic_t *stop_count)
{
	int seen = *stop_count;

	while (!reap(c, 0)) {
		if (*stop_count != seen) /* asked to stop again: do not wait any longer */
			command_signal(c, SIGKILL);
		seen = *stop_count;
	}
}

void command_signal(struct command *c, int sig)
{
	if (c->pid > 0 && !c->reaped)
		kill(c->pid, sig);
}

void command_abandon(struct command *c)
{
	close_fd(&c->release_fd);
	close_fd(&c->status_fd);
	if (c->pid > 0)
		reap(c, 0);
}

int command_exit_code(const struct command *c)
{
	if (!c->reaped)
		return 1;
	if (WIFEXITED(c->wait_status))
		return WEXITSTATUS(c->wait_status);
	if (WIFSIGNALED(c->wait_status))
		return 128 + WTERMSIG(c->wait_status);
	return 1;
}
