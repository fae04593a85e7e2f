/* SPDX-License-Identifier: MIT */
#include "output/output_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/strbuf.h"
#include "output/flamegraph_svg.h"
#include "output/folded_text.h"
#include "output/pprof_profile.h"
#include "proc/proc_maps.h"

#define TITLE_MAX_TARGETS 8 /* the flame graph's title names this many, then says how many more */

/* "comm (PID n), ..." (or the command line) for the flame graph's title, read before sampling:
 * targets may exit. */
static char *describe_targets(const struct output_targets *t)
{
	struct strbuf sb = {0};

	for (char *const *arg = t->command; arg && *arg; arg++) /* lua-perf -- CMD: its command line */
		strbuf_appendf(&sb, "%s%s", arg == t->command ? "" : " ", *arg);
	for (size_t i = 0; i < t->pid_count && i < TITLE_MAX_TARGETS; i++) {
		/* comm: at most TASK_COMM_LEN - 1 = 15 bytes (include/linux/sched.h) */
		char comm[64];

		proc_thread_comm(t->pids[i], t->pids[i], comm, sizeof(comm));
		strbuf_appendf(&sb, "%s%s (PID %d)", i ? ", " : "", comm[0] ? comm : "?",
			       (int)t->pids[i]);
	}
	if (t->pid_count > TITLE_MAX_TARGETS)
		strbuf_appendf(&sb, " and %zu more", t->pid_count - TITLE_MAX_TARGETS);
	return strbuf_take(&sb);
}

/* Open without truncating (that happens when writing); remember whether the file is new. */
static int open_output(struct output_file *o)
{
	const char *path = o->spec->path;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);

	o->created = fd >= 0;
	if (fd < 0 && errno == EEXIST) /* or a symbolic link, which O_EXCL does not follow */
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	if (fd >= 0) {
		o->file = fdopen(fd, "w");
		if (!o->file) {
			int err = errno;

			close(fd);
			errno = err;
		}
	}
	if (!o->file) {
		int err = errno;

		if (o->created)
			unlink(path);
		o->created = false;
		lp_error("cannot write %s: %s", path, strerror(err));
		return -1;
	}
	return 0;
}

int outputs_open(struct outputs *outs, const struct output_spec *specs, size_t count,
		 const struct output_targets *targets)
{
	*outs = (struct outputs){0};
	outs->files = calloc(count, sizeof(*outs->files));
	if (!outs->files) {
		lp_error("out of memory");
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		outs->files[outs->count].spec = &specs[i];
		if (open_output(&outs->files[outs->count]) < 0) {
			outputs_discard(outs);
			return -1;
		}
		outs->count++;
	}
	bool svg = false;
	for (size_t i = 0; i < count; i++)
		svg |= specs[i].format == OUTPUT_SVG;
	if (svg && !(outs->targets = describe_targets(targets))) {
		lp_error("out of memory");
		outputs_discard(outs);
		return -1;
	}
	return 0;
}

static void outputs_free(struct outputs *outs)
{
	free(outs->files);
	free(outs->targets);
	*outs = (struct outputs){0};
}

void outputs_discard(struct outputs *outs)
{
	for (size_t i = 0; i < outs->count; i++) {
		struct output_file *o = &outs->files[i];

		fclose(o->file);
		if (o->created)
			unlink(o->spec->path);
	}
	outputs_free(outs);
}

/* Empty a regular file that held something before (pipes, terminals, /dev/null stay). */
static int truncate_output(FILE *f)
{
	struct stat st;
	int fd = fileno(f);

	if (fstat(fd, &st) != 0)
		return -errno;
	if (S_ISREG(st.st_mode) && st.st_size > 0 && ftruncate(fd, 0) != 0)
		return -errno;
	return 0;
}

#define NANOS_PER_SECOND 1000000000.0

/* The pprof profile's times and period. Sampling started elapsed seconds before now. */
static struct pprof_info pprof_info_of(const struct output_run *run)
{
	struct timespec now = {0};
	struct pprof_info info = {
		.duration_nanos = (int64_t)(run->elapsed * NANOS_PER_SECOND),
		.period_nanos = run->frequency ? (int64_t)(NANOS_PER_SECOND / run->frequency) : 0,
		.lua_lines = run->lua_lines,
		.off_cpu = run->off_cpu,
		.files = run->files,
		.file_count = run->file_count,
		.origins = run->origins,
	};

	if (clock_gettime(CLOCK_REALTIME, &now) == 0)
		info.time_nanos = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec -
				  info.duration_nanos;
	return info;
}

static int write_output(const struct outputs *outs, struct output_file *o,
			const struct folded_profile *res, const struct output_run *run)
{
	struct flamegraph_stats stats = {0};
	int rc = truncate_output(o->file);

	if (rc == 0 && o->spec->format == OUTPUT_SVG) {
		struct flamegraph_info info = {
			.targets = outs->targets,
			.duration = run->elapsed,
			.frequency = run->frequency,
			.off_cpu = run->off_cpu,
		};
		rc = flamegraph_svg_write(o->file, res->lines, res->count, &info, &stats);
	} else if (rc == 0 && o->spec->format == OUTPUT_PPROF) {
		struct pprof_info info = pprof_info_of(run);

		rc = pprof_write(o->file, res->lines, res->count, &info);
	} else if (rc == 0) {
		rc = folded_text_write(o->file, res);
	}
	if (fclose(o->file) != 0 && rc == 0)
		rc = -errno;
	o->file = NULL;
	if (rc < 0) {
		lp_error("cannot write %s: %s", o->spec->path, strerror(-rc));
		return rc;
	}
	if (o->spec->format == OUTPUT_SVG)
		lp_info("wrote a flame graph of %zu frames (%zu too narrow to draw) to %s",
			stats.frames_drawn, stats.frames_omitted, o->spec->path);
	else if (o->spec->format == OUTPUT_PPROF)
		lp_info("wrote a pprof profile of %zu stacks to %s", res->count, o->spec->path);
	else
		lp_info("wrote %zu stacks to %s", res->count, o->spec->path);
	return 0;
}

int outputs_write(struct outputs *outs, const struct folded_profile *res,
		  const struct output_run *run)
{
	int rc = 0;

	for (size_t i = 0; i < outs->count; i++) {
		int one = write_output(outs, &outs->files[i], res, run);

		if (rc == 0)
			rc = one;
	}
	outputs_free(outs);
	return rc;
}
