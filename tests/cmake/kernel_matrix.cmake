# kernel_matrix.cmake - lua-perf on Debian's own kernels, booted under QEMU software emulation
# (tests/e2e/kernel_matrix_test.py, whose docstring lists what is asserted; docs/kernels.md).
# Included by the top CMakeLists.
#
# The fixture kernel_images (scripts/fetch-kernels.sh, network the first time, a private apt
# configuration) fetches the kernel images into KERNEL_MATRIX_DIR (default build/kernels; set it
# to share the images between build trees). Then one test per kernel, each one boot that runs
# every check in sequence (label kernel_matrix, and bpf: root, 77 = skipped when not root):
#   kernel_matrix_bullseye    5.10: lua-perf refuses cleanly (no bpf_loop)
#   kernel_matrix_bookworm    6.1   profile lua5.4 (coroutines) and LuaJIT (JIT on), dump both;
#   kernel_matrix_trixie      6.12  every BPF program within the verifier budget
#   kernel_matrix_backports   trixie-backports (7.x)
#   kernel_matrix_host        the same profile and dump checks on this machine's own kernel
# Only in the plain build: the ASan build's lua-perf would need the ASan runtime in the guest.
if(LUA_PERF_SANITIZE)
  return()
endif()

find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(KERNEL_MATRIX_DIR ${CMAKE_BINARY_DIR}/kernels CACHE PATH
  "where scripts/fetch-kernels.sh puts the kernels of the kernel_matrix_* tests")
set(KERNEL_MATRIX_LIBLUAJIT /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2)

# The LuaJIT target: Debian's libluajit2 run by the embedding program of the LuaJIT tests (no
# LuaJIT headers needed), installed in the guest as luajit_run; built like distro code, without the
# directory-wide options.
add_executable(kernel_matrix_luajit_run ${TESTS_FIXTURES_DIR}/luajit/luajit_embed.c)
target_link_libraries(kernel_matrix_luajit_run PRIVATE ${KERNEL_MATRIX_LIBLUAJIT})
set_target_properties(kernel_matrix_luajit_run PROPERTIES
  OUTPUT_NAME luajit_run
  COMPILE_OPTIONS "-Wall;-Wextra;-O2;-fomit-frame-pointer"
  LINK_OPTIONS ""
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/kernel_matrix)

add_test(NAME kernel_matrix_fetch
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/fetch-kernels.sh ${KERNEL_MATRIX_DIR})
set_tests_properties(kernel_matrix_fetch PROPERTIES
  FIXTURES_SETUP kernel_images TIMEOUT 900 LABELS kernel_matrix)

foreach(kernel bullseye bookworm trixie backports)
  add_test(NAME kernel_matrix_${kernel}
    COMMAND ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/kernel_matrix_test.py
      --lua-perf $<TARGET_FILE:lua-perf> --luajit-run $<TARGET_FILE:kernel_matrix_luajit_run>
      --kernels ${KERNEL_MATRIX_DIR} --work ${CMAKE_BINARY_DIR}/kernel_matrix_work ${kernel})
  # One boot: ~10 s (refusal) to ~1 min (every check passing) under TCG on 2 cores, ~100 s
  # when the program hits the verifier's limit; QEMU is killed after 270 s. The guest's two
  # vCPUs need the host's CPUs: one at a time with the other profiling tests.
  set_tests_properties(kernel_matrix_${kernel} PROPERTIES
    FIXTURES_REQUIRED kernel_images TIMEOUT 330 LABELS "bpf;kernel_matrix"
    SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
endforeach()

add_test(NAME kernel_matrix_host
  COMMAND ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/kernel_matrix_test.py
    --lua-perf $<TARGET_FILE:lua-perf> --luajit-run $<TARGET_FILE:kernel_matrix_luajit_run>
    --kernels ${KERNEL_MATRIX_DIR} --work ${CMAKE_BINARY_DIR}/kernel_matrix_work host)
set_tests_properties(kernel_matrix_host PROPERTIES
  TIMEOUT 120 LABELS "bpf;kernel_matrix" SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
