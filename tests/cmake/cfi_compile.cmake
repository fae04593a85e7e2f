# CFI compiler (unwind/cfi_compile.c, unwind/elf_image.c): a row dumper, a cross-check of the
# compiled rows against binutils' readelf on real Debian binaries and on a generated fixture, and
# hostile-input tests.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
find_program(READELF readelf REQUIRED)

add_executable(unwind_table_dump ${TESTS_UNIT_DIR}/unwind/unwind_table_dump.c)
target_link_libraries(unwind_table_dump PRIVATE lp_unwind lua_perf_test_support)

add_executable(test_cfi_hostile ${TESTS_UNIT_DIR}/unwind/test_cfi_hostile.c
  ${TESTS_UNIT_DIR}/support/test_files.c ${TESTS_UNIT_DIR}/support/hostile_elf.c
  ${TESTS_UNIT_DIR}/support/test_check.c ${TESTS_UNIT_DIR}/support/cfi_table_shape.c)
target_link_libraries(test_cfi_hostile PRIVATE lp_unwind lua_perf_test_support)
add_test(NAME cfi_hostile_inputs
  COMMAND test_cfi_hostile /lib/x86_64-linux-gnu/libc.so.6 ${CMAKE_BINARY_DIR}/cfi_hostile_work)

set(CFI_CHECK ${Python3_EXECUTABLE} ${TESTS_UNIT_DIR}/unwind/check_cfi_against_readelf.py
  --dump $<TARGET_FILE:unwind_table_dump> --readelf ${READELF})

# One readelf cross-check per installed binary; a missing binary fails the test (the install
# script installs nginx-light, libluajit2-5.1-2 and lua5.4). --expect guards what each covers.
add_test(NAME cfi_readelf_libc COMMAND ${CFI_CHECK} --expect plt --expect signal --expect outermost
  /lib/x86_64-linux-gnu/libc.so.6)
add_test(NAME cfi_readelf_nginx COMMAND ${CFI_CHECK} --expect plt --expect outermost /usr/sbin/nginx)
add_test(NAME cfi_readelf_luajit COMMAND ${CFI_CHECK} --expect plt
  /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2)
add_test(NAME cfi_readelf_lua54 COMMAND ${CFI_CHECK} --expect plt /usr/bin/lua5.4)
# The vdso, copied into a memfd (elf_image_open_fd) and into a file for readelf.
add_test(NAME cfi_readelf_vdso COMMAND ${CFI_CHECK} --vdso ${CMAKE_BINARY_DIR}/cfi_vdso.so)
# The checker must notice a corrupted table (every 50th CFA offset moved by 8).
add_test(NAME cfi_readelf_checker_selftest COMMAND ${CFI_CHECK} --inject-bug /usr/bin/lua5.4)

# A fixture no Debian package provides: one object with .eh_frame holding a stack-realigning
# function (gcc's DW_OP_breg6 -8; DW_OP_deref CFA), one with .debug_frame only, one with both. Built with fixed
# flags (no sanitizers) so that its CFI does not depend on the build configuration.
set(CFI_FIXTURE_DIR ${CMAKE_BINARY_DIR}/cfi_fixture)
file(WRITE ${CFI_FIXTURE_DIR}/eh_part.c [=[
#include <string.h>
int debug_part(int n);
/* A VLA next to an over-aligned local makes gcc realign the stack through a DRAP register. */
__attribute__((noinline)) int realigned(int n)
{
	char vla[n];
	char big[64] __attribute__((aligned(64)));
	memset(vla, n, (size_t)n);
	memset(big, 1, sizeof(big));
	__asm__ volatile("" : : "r"(vla), "r"(big) : "memory");
	return vla[0] + big[3];
}
int main(int argc, char **argv) { (void)argv; return realigned(argc + 8) + debug_part(argc); }
]=])
file(WRITE ${CFI_FIXTURE_DIR}/debug_part.c [=[
__attribute__((noinline)) int debug_part(int n)
{
	volatile int x[32];
	for (int i = 0; i < 32; i++)
		x[i] = i * n;
	return x[n & 31];
}
]=])
# Also in both sections: .debug_frame must only fill what .eh_frame leaves uncovered.
file(WRITE ${CFI_FIXTURE_DIR}/both_part.c [=[
__asm__(".cfi_sections .eh_frame, .debug_frame");
__attribute__((noinline)) int both_part(int n)
{
	volatile int x[16];
	for (int i = 0; i < 16; i++)
		x[i] = i * n;
	return x[n & 15];
}
]=])
add_executable(cfi_fixture_mixed ${CFI_FIXTURE_DIR}/eh_part.c ${CFI_FIXTURE_DIR}/debug_part.c
  ${CFI_FIXTURE_DIR}/both_part.c)
set_property(TARGET cfi_fixture_mixed PROPERTY COMPILE_OPTIONS -O2 -g)
set_property(TARGET cfi_fixture_mixed PROPERTY LINK_OPTIONS "")
set_source_files_properties(${CFI_FIXTURE_DIR}/eh_part.c ${CFI_FIXTURE_DIR}/both_part.c PROPERTIES
  COMPILE_OPTIONS "-fasynchronous-unwind-tables")
set_source_files_properties(${CFI_FIXTURE_DIR}/debug_part.c PROPERTIES
  COMPILE_OPTIONS "-fno-asynchronous-unwind-tables;-fno-unwind-tables")
add_test(NAME cfi_readelf_fixture COMMAND ${CFI_CHECK} --expect deref --expect debug_frame
  $<TARGET_FILE:cfi_fixture_mixed>)

# The on-disk cache of compiled tables (unwind/table_cache.c): round trip on libc's table, keys,
# damaged entries, bounds, unsafe directories.
add_executable(test_table_cache ${TESTS_UNIT_DIR}/unwind/test_table_cache.c
  ${TESTS_UNIT_DIR}/support/test_files.c ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_table_cache PRIVATE lp_unwind lua_perf_test_support)
add_test(NAME table_cache
  COMMAND test_table_cache /lib/x86_64-linux-gnu/libc.so.6 ${CMAKE_BINARY_DIR}/table_cache_work
  $<TARGET_FILE:cfi_fixture_mixed>)
