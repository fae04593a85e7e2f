# luajit_profile.cmake - end-to-end LuaJIT profiling under real BPF (tests/e2e/luajit_profile_test.py,
# whose docstring lists the exact stacks expected). Included by the top CMakeLists.
#
# The LuaJIT builds come from the fixture luajit_targets (tests/cmake/luajit_detect.cmake,
# scripts/fetch-luajit.sh): Debian's libluajit2 (through tests/fixtures/luajit/luajit_embed.c, built by the
# test), Debian's upstream luajit extracted privately, and a GC32 build from the Debian source.
#
# Tests (label bpf, need root, 77 = skipped when not root):
#   luajit_<target>_<workload>_<mode>  target = debian, upstream, gc32; workload = recursion,
#                                      coroutine, pcall, ffi, sort; mode = on (JIT) / off
#   luajit_<target>_lines_<mode>       the pcall workload with --lines
#   luajit_jitp_accuracy               per-function shares against LuaJIT's own profiler (jit.p)
find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(LUAJIT_PROFILE_TEST ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/luajit_profile_test.py
  --lua-perf $<TARGET_FILE:lua-perf> --luajit-dir ${CMAKE_BINARY_DIR}/luajit
  --work ${CMAKE_BINARY_DIR}/luajit_profile_work)

function(luajit_profile_test name)
  add_test(NAME ${name} COMMAND ${LUAJIT_PROFILE_TEST} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS bpf RESOURCE_LOCK cpu_profiling
    FIXTURES_REQUIRED luajit_targets SKIP_RETURN_CODE 77 TIMEOUT 180)
endfunction()

foreach(target debian upstream gc32)
  foreach(workload recursion coroutine pcall ffi sort)
    foreach(mode on off)
      luajit_profile_test(luajit_${target}_${workload}_${mode} ${target} ${workload} ${mode})
    endforeach()
  endforeach()
  foreach(mode on off)
    luajit_profile_test(luajit_${target}_lines_${mode} --lines ${target} pcall ${mode})
  endforeach()
endforeach()
luajit_profile_test(luajit_jitp_accuracy jitp)
