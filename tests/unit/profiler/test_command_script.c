/* SPDX-License-Identifier: MIT */
/* test_command_script.c - profiler/command.c's command_script_interpreter: the interpreter of a
 * "#!" line as the kernel splits it (blanks around it, its argument, a line longer than the
 * kernel reads), `#!/usr/bin/env NAME` resolved in $PATH, env with options or assignments left
 * as env, and no interpreter for what is no script (empty, "#" alone, "#!" with no name, no
 * file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profiler/command.h"
#include "tests/unit/support/test_check.h"

static char dir[] = "/tmp/lp-command-script-XXXXXX";

static char *file_in_dir(const char *name, const char *text, mode_t mode)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0 || chmod(path, mode) != 0) {
		perror(path);
		exit(1);
	}
	return path;
}

/* The interpreter of a script whose text is text, compared with want (NULL: none). */
static void expect(const char *text, const char *want)
{
	char *got = command_script_interpreter(file_in_dir("script", text, 0755));

	CHECK(want ? got && strcmp(got, want) == 0 : got == NULL, "%s: got %s, want %s", text,
	      got ? got : "none", want ? want : "none");
	free(got);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	char lua[300];
	snprintf(lua, sizeof(lua), "%s/lua-test", dir);
	file_in_dir("lua-test", "\177ELF", 0755);
	if (setenv("PATH", dir, 1) != 0)
		return 1;

	expect("#!/usr/bin/lua5.4\nprint(1)\n", "/usr/bin/lua5.4");
	expect("#! \t/usr/bin/lua5.4  -e  x \nprint(1)\n", "/usr/bin/lua5.4");
	expect("#!/usr/bin/lua5.4", "/usr/bin/lua5.4");
	expect("#!/usr/bin/env lua-test\n", lua);
	expect("#!/usr/bin/env\tlua-test \t\n", lua);
	expect("#!/usr/bin/env lua-missing\n", NULL);
	expect("#!/usr/bin/env -S lua-test -e x\n", "/usr/bin/env");
	expect("#!/usr/bin/env A=1 lua-test\n", "/usr/bin/env");
	expect("#!/usr/bin/env\n", "/usr/bin/env");
	expect("#!\n/usr/bin/lua5.4\n", NULL);
	expect("#! \t \n", NULL);
	expect("#", NULL);
	expect("", NULL);
	expect("print(1)\n", NULL);
	expect("\177ELF\2\1\1", NULL);

	char long_line[400];
	memset(long_line, 'a', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	memcpy(long_line, "#!/", 3);
	expect(long_line, NULL); /* the name goes past the 256 bytes the kernel reads */
	memcpy(long_line, "#!/usr/bin/lua5.4 ", 18);
	expect(long_line, "/usr/bin/lua5.4"); /* only its argument does */

	char *missing = command_script_interpreter("/nonexistent/lua-perf-script");
	CHECK(missing == NULL, "a file that does not exist: %s", missing);
	free(missing);

	unlink(file_in_dir("script", "", 0644));
	unlink(lua);
	rmdir(dir);
	return check_finish("command_script");
}
