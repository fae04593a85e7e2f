/* SPDX-License-Identifier: MIT */
/* syscall_name.h - x86_64 system call names, by number (from the kernel's UAPI header at build
 * time: CMakeLists.txt generates syscall_names.h). */
#ifndef LUA_PERF_SYSCALL_NAME_H
#define LUA_PERF_SYSCALL_NAME_H

/* The name of system call nr, or NULL when it has none (nr < 0 or unknown). */
const char *syscall_name(int nr);

#endif
