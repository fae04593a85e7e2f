# native_fixtures.cmake - workloads with known native call chains, and the end-to-end tests
# that profile them (and stock nginx / lua5.4) with lua-perf. Included by the top CMakeLists.
#
# Fixtures are built -O2 -fomit-frame-pointer -g: the profiler must unwind them from .eh_frame
# alone and name them from .symtab (the -g is only there so that a human, or perf, can
# cross-check). fixture_deep_stripped is the same binary with everything but .dynsym stripped.
#
# How the chains were verified (GCC 12.2, glibc 2.36, Debian 12):
#   - objdump -d --no-show-raw-insn: every chain function calls the next with a "call"
#     followed by more code (no "jmp" into it = no tail call), recurse contains
#     "call <recurse>" (a real recursion, not a loop), nm shows no renamed clones
#     (.constprop/.isra/.part) of chain functions. The test native_fixtures_selfcheck
#     (native_profile_test.py self-check) re-does these checks on every build and runs each
#     fixture briefly; it fails if e.g. FIXTURE_NOINLINE stops preventing inlining.
#   - perf record -F 997 --call-graph dwarf + perf script --no-inline --max-stack=1024 on each
#     fixture showed exactly the chains documented at the top of each fixture's source (the
#     tests can be pointed at perf instead of lua-perf with --use-perf to repeat this).
#
# Tests (label bpf, need root): native_deep, native_ucontext, native_deep_stripped, native_qsort,
# native_signal, native_vdso, native_dlopen, native_dlopen_no_sections, native_dlopen_damaged_cfi,
# native_dlopen_same_address,
# native_not_elf_mapped, native_threads, native_errors, native_target_exit, native_nginx,
# native_lua54; plus native_fixtures_selfcheck (no profiler, no root: checks the fixtures).
# fixture_fork (a parent whose descendants burn the CPU) is profiled by tests/cmake/process_tree.cmake.

find_package(Threads REQUIRED)
find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(FIXTURE_DIR ${TESTS_FIXTURES_DIR}/native)
# Exactly these options: the directory-wide ones (sanitizers with LUA_PERF_SANITIZE, which
# would add frame pointers and intercept qsort) must not change the fixtures' code.
set(FIXTURE_COPTS -Wall -Wextra -O2 -fomit-frame-pointer -g)

# All fixtures (and the stripped copy) in one known directory.
set(FIXTURE_BIN_DIR ${CMAKE_BINARY_DIR}/fixtures)

function(lua_perf_fixture_options target)
  set_target_properties(${target} PROPERTIES
    COMPILE_OPTIONS "${FIXTURE_COPTS}"
    LINK_OPTIONS ""
    C_STANDARD 17
    C_EXTENSIONS OFF
    RUNTIME_OUTPUT_DIRECTORY ${FIXTURE_BIN_DIR}
    LIBRARY_OUTPUT_DIRECTORY ${FIXTURE_BIN_DIR})
endfunction()

foreach(fx deep qsort signal vdso dlopen threads realign fork dump ucontext)
  add_executable(fixture_${fx} ${FIXTURE_DIR}/fixture_${fx}.c)
  lua_perf_fixture_options(fixture_${fx})
endforeach()
target_link_libraries(fixture_threads PRIVATE Threads::Threads)
target_link_libraries(fixture_dump PRIVATE Threads::Threads)
target_link_libraries(fixture_signal PRIVATE ${CMAKE_DL_LIBS})
target_link_libraries(fixture_threads PRIVATE ${CMAKE_DL_LIBS})
target_link_libraries(fixture_dlopen PRIVATE ${CMAKE_DL_LIBS})

add_library(fixture_plugin SHARED ${FIXTURE_DIR}/fixture_plugin.c)
lua_perf_fixture_options(fixture_plugin)
# fixture_dlopen must not link it: the test makes it dlopen() it after profiling started.
add_dependencies(fixture_dlopen fixture_plugin)

# The plugin's twin: the same machine code, but its CFI says plugin_hot has no caller.
add_library(fixture_plugin_ra_undefined SHARED ${FIXTURE_DIR}/fixture_plugin.c)
lua_perf_fixture_options(fixture_plugin_ra_undefined)
target_compile_definitions(fixture_plugin_ra_undefined PRIVATE PLUGIN_RA_UNDEFINED)
add_dependencies(fixture_dlopen fixture_plugin_ra_undefined)

# Stripped copy (only .dynsym left: main, _start and the chain are unnamed; .eh_frame stays).
find_program(FIXTURE_STRIP NAMES strip REQUIRED)
set(FIXTURE_DEEP_STRIPPED ${FIXTURE_BIN_DIR}/fixture_deep_stripped)
add_custom_command(TARGET fixture_deep POST_BUILD
  COMMAND ${FIXTURE_STRIP} --strip-all -o ${FIXTURE_DEEP_STRIPPED} $<TARGET_FILE:fixture_deep>
  BYPRODUCTS ${FIXTURE_DEEP_STRIPPED}
  COMMENT "Stripping fixture_deep into fixture_deep_stripped")

# Copies of the plugin made by a tool of tests/fixtures/tools/ (`TOOL IN OUT`).
function(fixture_plugin_variant out tool comment)
  add_custom_command(TARGET fixture_plugin POST_BUILD
    COMMAND ${Python3_EXECUTABLE} ${TESTS_FIXTURES_DIR}/tools/${tool} $<TARGET_FILE:fixture_plugin> ${out}
    BYPRODUCTS ${out}
    COMMENT "${comment}")
endfunction()

# The plugin without its section header table (sstrip-like): .eh_frame only through
# PT_GNU_EH_FRAME, no symbols (they are found through section headers).
set(FIXTURE_PLUGIN_NO_SECTIONS ${FIXTURE_BIN_DIR}/libfixture_plugin_no_sections.so)
fixture_plugin_variant(${FIXTURE_PLUGIN_NO_SECTIONS} drop_section_headers.py
  "Copying libfixture_plugin.so without its section headers")

# The plugin with garbage in .eh_frame and .eh_frame_hdr (code, symbols and headers intact): a
# file lua-perf must reject with one warning, unwinding the rest of the profile as usual.
set(FIXTURE_PLUGIN_DAMAGED_CFI ${FIXTURE_BIN_DIR}/libfixture_plugin_damaged_cfi.so)
fixture_plugin_variant(${FIXTURE_PLUGIN_DAMAGED_CFI} corrupt_eh_frame.py
  "Copying libfixture_plugin.so with its call frame information overwritten")

add_custom_target(native_fixtures DEPENDS
  fixture_deep fixture_qsort fixture_signal fixture_vdso fixture_dlopen fixture_threads
  fixture_realign fixture_fork fixture_dump fixture_ucontext fixture_plugin
  fixture_plugin_ra_undefined)

# ---- tests
set(NATIVE_TEST ${TESTS_E2E_DIR}/native_profile_test.py)
set(NATIVE_TEST_ARGS ${NATIVE_TEST} --lua-perf $<TARGET_FILE:lua-perf>)

add_test(NAME native_fixtures_selfcheck
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST} self-check
          --fixture-dir ${FIXTURE_BIN_DIR} --plugin $<TARGET_FILE:fixture_plugin>)
set_tests_properties(native_fixtures_selfcheck PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77)

foreach(fx deep qsort signal vdso threads realign ucontext)
  add_test(NAME native_${fx}
    COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} ${fx} --fixture $<TARGET_FILE:fixture_${fx}>)
endforeach()
add_test(NAME native_deep_stripped
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} deep_stripped
          --fixture ${FIXTURE_DEEP_STRIPPED} --unstripped $<TARGET_FILE:fixture_deep>)
add_test(NAME native_deep_stripped_semicolon
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} deep_stripped_semicolon
          --fixture ${FIXTURE_DEEP_STRIPPED} --unstripped $<TARGET_FILE:fixture_deep>)
add_test(NAME native_dlopen
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} dlopen
          --fixture $<TARGET_FILE:fixture_dlopen> --plugin $<TARGET_FILE:fixture_plugin>)
add_test(NAME native_dlopen_no_sections
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} dlopen_no_sections
          --fixture $<TARGET_FILE:fixture_dlopen> --plugin ${FIXTURE_PLUGIN_NO_SECTIONS}
          --unstripped $<TARGET_FILE:fixture_plugin>)
add_test(NAME native_dlopen_damaged_cfi
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} dlopen_damaged_cfi
          --fixture $<TARGET_FILE:fixture_dlopen> --plugin ${FIXTURE_PLUGIN_DAMAGED_CFI}
          --fixture-dir ${FIXTURE_BIN_DIR})
add_test(NAME native_dlopen_same_address
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} dlopen_same_address
          --fixture $<TARGET_FILE:fixture_dlopen> --plugin $<TARGET_FILE:fixture_plugin>
          --other-plugin $<TARGET_FILE:fixture_plugin_ra_undefined>)
add_test(NAME native_not_elf_mapped
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} not_elf_mapped)
add_test(NAME native_errors
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} errors)
add_test(NAME native_kernel_frames
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} kernel_frames)
add_test(NAME native_target_exit
  COMMAND ${Python3_EXECUTABLE} ${NATIVE_TEST_ARGS} target_exit
          --fixture $<TARGET_FILE:fixture_deep>)
add_test(NAME native_nginx
  COMMAND ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/nginx_profile_test.py
          --lua-perf $<TARGET_FILE:lua-perf> nginx)
add_test(NAME native_lua54
  COMMAND ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/nginx_profile_test.py
          --lua-perf $<TARGET_FILE:lua-perf> lua54)

set(NATIVE_BPF_TESTS native_deep native_ucontext native_deep_stripped native_deep_stripped_semicolon
  native_qsort native_signal native_vdso native_realign native_dlopen native_dlopen_no_sections
  native_dlopen_damaged_cfi native_dlopen_same_address native_not_elf_mapped native_threads
  native_errors native_kernel_frames
  native_target_exit native_nginx native_lua54)
# 77 = skipped (not root: these load BPF programs).
set_tests_properties(${NATIVE_BPF_TESTS} PROPERTIES
  TIMEOUT 60 LABELS bpf SKIP_RETURN_CODE 77)
# Several tests profile a 2-core machine flat out: running them side by side (ctest -j) would
# starve each other's samples.
set_tests_properties(${NATIVE_BPF_TESTS} PROPERTIES RESOURCE_LOCK cpu_profiling)
