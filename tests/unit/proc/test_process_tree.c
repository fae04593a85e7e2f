/* SPDX-License-Identifier: MIT */
/* test_process_tree.c - tests of proc/process_tree.c against real processes (no root, no BPF).
 *
 *   test_process_tree children|proc_scan   discovery by either method: a root with a child, a
 *       grandchild and a child forked by a second thread; a child forked later; exits (a zombie
 *       counts as exited); a grandchild whose parent exits stays followed; comm made printable.
 *   test_process_tree limit                max_live reached: refused processes are counted once
 *       and never followed later; duplicate and missing roots.
 *
 * The test is a child subreaper: every process it starts ends up reaped by it. Exit status: 0
 * pass, 1 fail. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc/process_tree.h"
#include "tests/unit/support/test_check.h"

#define WAIT_TIMEOUT_MS 10000

__attribute__((noreturn)) static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* ---- The processes under test: each reports (tag, pid) on a pipe once it runs. */

struct report {
	char tag[8];
	pid_t pid;
};

static int report_fds[2];
static volatile sig_atomic_t fork_requested;

static void on_usr1(int sig)
{
	(void)sig;
	fork_requested = 1;
}

static void report_self(const char *tag)
{
	struct report r = {.pid = getpid()};

	snprintf(r.tag, sizeof(r.tag), "%s", tag);
	if (write(report_fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r)) /* < PIPE_BUF: atomic */
		_exit(1);
}

static void idle_forever(void)
{
	for (;;)
		pause();
}

/* Fork a process named name; it runs body (or idles) after reporting. It dies with its parent,
 * except an orphan-to-be: that one lives until killed or for 60 s at most. */
static pid_t spawn_process(const char *name, const char *tag, void (*body)(void), bool orphan)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid > 0)
		return pid;
	if (orphan)
		alarm(60);
	else if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		_exit(1);
	if (getppid() != parent)
		_exit(1);
	if (prctl(PR_SET_NAME, name) != 0)
		_exit(1);
	if (body)
		body();
	report_self(tag);
	idle_forever();
	_exit(0);
}

static pid_t spawn(const char *name, const char *tag, void (*body)(void))
{
	return spawn_process(name, tag, body, false);
}

static void k1_body(void)
{
	spawn_process("pt-g", "g", NULL, true);
}

static void *thread_forker(void *arg)
{
	(void)arg;
	spawn("pt-k2", "k2", NULL);
	idle_forever(); /* children die with the thread that forked them (PR_SET_PDEATHSIG) */
	return NULL;
}

/* The root: children k1 (with a child g) and k2 (forked by a second thread); k3 on SIGUSR1. */
static void root_body(void)
{
	pthread_t thread;
	sigset_t usr1, old;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	spawn("pt-k1", "k1", k1_body);
	if (pthread_create(&thread, NULL, thread_forker, NULL) != 0)
		_exit(1);
	report_self("r");
	for (;;) {
		sigsuspend(&old);
		if (fork_requested) {
			fork_requested = 0;
			spawn("pt-k3", "k3", NULL);
		}
	}
}

/* ---- Test-side helpers */

static pid_t wait_report(const char *tag)
{
	struct pollfd pfd = {.fd = report_fds[0], .events = POLLIN};
	struct report r;

	if (poll(&pfd, 1, WAIT_TIMEOUT_MS) != 1 || read(report_fds[0], &r, sizeof(r)) != sizeof(r))
		die("no report from a test process");
	if (strncmp(r.tag, tag, sizeof(r.tag)) != 0) {
		fprintf(stderr, "expected a report from %s, got %.8s\n", tag, r.tag);
		exit(1);
	}
	return r.pid;
}

/* Tags come in any order: fill pids[i] for tags[i]. */
static void wait_reports(const char *const *tags, pid_t *pids, size_t n)
{
	for (size_t got = 0; got < n; got++) {
		struct pollfd pfd = {.fd = report_fds[0], .events = POLLIN};
		struct report r;
		size_t i;

		if (poll(&pfd, 1, WAIT_TIMEOUT_MS) != 1 || read(report_fds[0], &r, sizeof(r)) != sizeof(r))
			die("missing reports from the test processes");
		for (i = 0; i < n && strncmp(r.tag, tags[i], sizeof(r.tag)) != 0; i++)
			;
		if (i == n || pids[i]) {
			fprintf(stderr, "unexpected report %.8s\n", r.tag);
			exit(1);
		}
		pids[i] = r.pid;
	}
}

/* /proc/PID/stat state, or 0 when the process is gone. */
static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[32], buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *close = strrchr(buf, ')');
	char state = 0;
	int parent = 0;
	if (!close || sscanf(close + 1, " %c %d", &state, &parent) != 2)
		return 0;
	if (ppid)
		*ppid = parent;
	return state;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* SIGKILL pid and wait until it is a zombie or gone (we may not be the one to reap it). */
static void kill_and_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	for (int ms = 0; ms < WAIT_TIMEOUT_MS; ms += 5) {
		char state = proc_state(pid, NULL);

		if (state == 0 || state == 'Z')
			return;
		sleep_ms(5);
	}
	fprintf(stderr, "PID %d does not die\n", (int)pid);
	exit(1);
}

/* After its parent died, pid is reparented (to us, the subreaper). */
static void wait_reparented(pid_t pid, pid_t old_parent)
{
	for (int ms = 0; ms < WAIT_TIMEOUT_MS; ms += 5) {
		pid_t ppid = old_parent;

		if (proc_state(pid, &ppid) == 0 || ppid != old_parent)
			return;
		sleep_ms(5);
	}
	fprintf(stderr, "PID %d is not reparented\n", (int)pid);
	exit(1);
}

static void reap_all(void)
{
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
}

static void start_root(pid_t pids[5])
{
	static const char *const tags[] = {"r", "k1", "k2", "g"};

	pids[0] = pids[1] = pids[2] = pids[3] = pids[4] = 0;
	if (pipe(report_fds) != 0)
		die("pipe");
	struct sigaction sa = {.sa_handler = on_usr1};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	spawn("pt (r)\n", "r", root_body);
	wait_reports(tags, pids, 4);
}

static void stop_all(const pid_t *pids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	reap_all();
	close(report_fds[0]);
	close(report_fds[1]);
}

static bool joined(const struct process_tree *tree, const struct tree_changes *ch, pid_t pid)
{
	for (size_t i = ch->first_joined; i < tree->count; i++)
		if (tree->procs[i].pid == pid)
			return true;
	return false;
}

static bool left(const struct process_tree *tree, const struct tree_changes *ch, pid_t pid)
{
	for (size_t i = 0; i < ch->left_count; i++)
		if (tree->procs[ch->left[i]].pid == pid)
			return true;
	return false;
}

static void check_process(const struct process_tree *tree, pid_t pid, pid_t ppid, const char *comm,
			  bool live)
{
	const struct tree_process *p = process_tree_find(tree, pid);

	CHECK(p != NULL, "PID %d (%s) is not in the tree", (int)pid, comm);
	if (!p)
		return;
	CHECK(p->ppid == ppid, "PID %d: ppid %d, want %d", (int)pid, (int)p->ppid, (int)ppid);
	CHECK(strcmp(p->comm, comm) == 0, "PID %d: comm '%s', want '%s'", (int)pid, p->comm, comm);
	CHECK(p->live == live, "PID %d: live %d, want %d", (int)pid, p->live, live);
	CHECK(p->start_time > 0, "PID %d: no start time", (int)pid);
}

static size_t joined_count(const struct process_tree *tree, const struct tree_changes *ch)
{
	return tree->count - ch->first_joined;
}

static void scan(struct process_tree *tree, struct tree_changes *ch)
{
	int rc = process_tree_scan(tree, ch);

	CHECK(rc == 0, "process_tree_scan: %s", strerror(-rc));
}

/* ---- Modes */

static void test_discovery(enum tree_discovery method)
{
	struct process_tree tree;
	struct tree_changes ch;
	pid_t p[5]; /* r, k1, k2, g, k3 */

	start_root(p);
	pid_t r = p[0], k1 = p[1], k2 = p[2], g = p[3];
	if (process_tree_init(&tree, &r, 1, 64, method) != 0)
		die("process_tree_init");

	scan(&tree, &ch);
	CHECK(ch.first_joined == 0 && tree.count == 4 && ch.left_count == 0,
	      "first scan: %zu joined, %zu left; want 4, 0", joined_count(&tree, &ch), ch.left_count);
	check_process(&tree, r, 0, "pt (r)?", true);
	check_process(&tree, k1, r, "pt-k1", true);
	check_process(&tree, k2, r, "pt-k2", true); /* forked by r's second thread */
	check_process(&tree, g, k1, "pt-g", true);
	CHECK(tree.procs[0].pid == r, "the root joins first");

	scan(&tree, &ch);
	CHECK(joined_count(&tree, &ch) == 0 && ch.left_count == 0, "nothing changed, yet %zu joined, "
	      "%zu left", joined_count(&tree, &ch), ch.left_count);

	kill(r, SIGUSR1);
	p[4] = wait_report("k3");
	scan(&tree, &ch);
	CHECK(joined_count(&tree, &ch) == 1 && joined(&tree, &ch, p[4]), "k3 (PID %d) did not join "
	      "alone: %zu joined", (int)p[4], joined_count(&tree, &ch));
	check_process(&tree, p[4], r, "pt-k3", true);

	/* k1 dies: a zombie (r does not reap), g moves to us but stays followed. */
	kill_and_wait(k1);
	wait_reparented(g, k1);
	scan(&tree, &ch);
	CHECK(ch.left_count == 1 && left(&tree, &ch, k1), "k1 (zombie) did not leave alone: %zu left",
	      ch.left_count);
	CHECK(joined_count(&tree, &ch) == 0, "%zu joined", joined_count(&tree, &ch));
	check_process(&tree, k1, r, "pt-k1", false);
	check_process(&tree, g, k1, "pt-g", true);

	kill_and_wait(g);
	waitpid(g, NULL, 0);
	scan(&tree, &ch);
	CHECK(ch.left_count == 1 && left(&tree, &ch, g), "g did not leave alone: %zu left",
	      ch.left_count);
	CHECK(tree.live_count == 3, "live: %zu, want 3 (r, k2, k3)", tree.live_count);

	stop_all(p, 5);
	scan(&tree, &ch);
	CHECK(ch.left_count == 3 && left(&tree, &ch, r) && left(&tree, &ch, k2) &&
	      left(&tree, &ch, p[4]), "r, k2 and k3 did not all leave: %zu left", ch.left_count);
	CHECK(tree.live_count == 0 && tree.refused_count == 0, "live %zu, refused %zu",
	      tree.live_count, tree.refused_count);
	process_tree_free(&tree);
}

static pid_t free_pid(void)
{
	for (pid_t pid = 4000000; pid > 300; pid--)
		if (proc_state(pid, NULL) == 0 && kill(pid, 0) != 0 && errno == ESRCH)
			return pid;
	die("no free PID");
}

static void test_limit(void)
{
	struct process_tree tree;
	struct tree_changes ch;
	pid_t p[5];

	start_root(p);
	pid_t roots[3] = {p[0], p[0], free_pid()};
	if (process_tree_init(&tree, roots, 3, 2, process_tree_default_discovery()) != 0)
		die("process_tree_init");

	scan(&tree, &ch);
	CHECK(tree.live_count == 2 && tree.count == 2, "live %zu, count %zu: want 2 at most",
	      tree.live_count, tree.count);
	check_process(&tree, p[0], 0, "pt (r)?", true);
	CHECK(process_tree_find(&tree, roots[2]) == NULL, "the free PID %d joined", (int)roots[2]);
	const struct tree_process *kid = &tree.procs[1];
	CHECK(kid->pid == p[1] || kid->pid == p[2], "PID %d joined, not a child of the root",
	      (int)kid->pid);
	size_t refused = tree.refused_count;
	/* The other child; and g when k1 is the one that joined. */
	CHECK(refused == (kid->pid == p[1] ? 2u : 1u), "refused %zu (joined: %d)", refused,
	      (int)kid->pid);

	scan(&tree, &ch);
	CHECK(tree.refused_count == refused && joined_count(&tree, &ch) == 0,
	      "second scan: refused %zu (was %zu), %zu joined", tree.refused_count, refused,
	      joined_count(&tree, &ch));

	/* Room again: a refused process is still not followed (its samples would be partial). */
	pid_t kid_pid = kid->pid;
	kill_and_wait(kid_pid);
	scan(&tree, &ch);
	CHECK(ch.left_count == 1 && left(&tree, &ch, kid_pid), "%zu left", ch.left_count);
	CHECK(joined_count(&tree, &ch) == 0 && tree.refused_count == refused,
	      "after a slot freed: %zu joined, refused %zu", joined_count(&tree, &ch),
	      tree.refused_count);

	stop_all(p, 5);
	process_tree_free(&tree);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s children|proc_scan|limit\n", argv[0]);
		return 2;
	}
	alarm(60); /* a hang kills us, and with us every process we started (PR_SET_PDEATHSIG) */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		die("PR_SET_CHILD_SUBREAPER");
	if (strcmp(argv[1], "children") == 0) {
		if (process_tree_default_discovery() != TREE_BY_CHILDREN) {
			printf("SKIP: this kernel has no /proc/PID/task/TID/children\n");
			return 77;
		}
		test_discovery(TREE_BY_CHILDREN);
	} else if (strcmp(argv[1], "proc_scan") == 0) {
		test_discovery(TREE_BY_PROC_SCAN);
	} else if (strcmp(argv[1], "limit") == 0) {
		test_limit();
	} else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	return check_finish(argv[1]);
}
