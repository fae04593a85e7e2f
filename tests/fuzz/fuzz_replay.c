/* SPDX-License-Identifier: MIT */
/* fuzz_replay.c - runs a harness over files, without libFuzzer: how every build (gcc, plain and
 * ASan/UBSan) replays the committed corpus and regression inputs in the normal test suite.
 *
 * Usage: fuzz_replay_<harness> PATH...   (a directory: every regular file in it, in name order)
 * Exit status 0 when at least one input ran (a crash or a failed property aborts before). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/whole_file.h"
#include "tests/fuzz/fuzz_harness.h"

#define MAX_INPUT_BYTES (64u << 20)

static int replay_file(const char *path)
{
	char *data;
	size_t size;
	int err = read_whole_file(path, MAX_INPUT_BYTES, &data, &size);
	if (err) {
		fprintf(stderr, "%s: %s\n", path, strerror(-err));
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, size);
	free(data);
	return 0;
}

static int is_input_name(const struct dirent *entry)
{
	return entry->d_name[0] != '.';
}

/* Every file of dir; how many ran, or -1. */
static long replay_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, is_input_name, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	long ran = 0;
	for (int i = 0; i < n; i++) {
		char *path = NULL;
		if (ran >= 0 && asprintf(&path, "%s/%s", dir, names[i]->d_name) >= 0)
			ran = replay_file(path) == 0 ? ran + 1 : -1;
		else
			ran = -1;
		free(path);
		free(names[i]);
	}
	free(names);
	return ran;
}

int main(int argc, char **argv)
{
	long total = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		long ran = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : (replay_file(argv[i]) == 0);
		if (ran < 0)
			return 1;
		total += ran;
	}
	printf("%s: %ld inputs replayed\n", argc > 0 ? argv[0] : "fuzz_replay", total);
	return total > 0 ? 0 : 1;
}
