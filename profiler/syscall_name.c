/* SPDX-License-Identifier: MIT */
#include "profiler/syscall_name.h"

#include <stddef.h>

#include "syscall_names.h"

const char *syscall_name(int nr)
{
	if (nr < 0 || (size_t)nr >= sizeof(syscall_names) / sizeof(syscall_names[0]))
		return NULL;
	return syscall_names[nr];
}
