# off_cpu.cmake - `lua-perf --off-cpu`: end-to-end tests and the benchmark's workload. Included by
# the top CMakeLists (after native_fixtures.cmake, whose lua_perf_fixture_options it uses).
#   off_cpu_lua54:     tests/fixtures/off_cpu/blocking.lua under lua5.4: wait_child (wait4) and
#                      read_fifo (read) within 10% of their known times; the tail still off CPU at
#                      the end counted up to the end; the summary's per-process total.
#   off_cpu_min_block: the same with --min-block-us 100000: short blocks dropped and counted.
#   off_cpu_command:   --off-cpu -- lua5.4 SCRIPT: the command's exit status, its waits' chain.
#   off_cpu_luajit:    tests/fixtures/off_cpu/blocking_ffi.lua under Debian's luajit (extracted by
#                      the fixture luajit_targets): FFI poll and usleep (clock_nanosleep).
#   off_cpu_nginx:     nginx + ngx_lua, a handler blocked reading a FIFO: [blocked: read] on its
#                      Lua chain, the worker's idle time in [blocked: epoll_wait] without Lua.
#   off_cpu_preempt:   preempt_pair (two CPU loops pinned to CPU 0): [preempted] time of each
#                      thread against the kernel's schedstat run_delay.
#   off_cpu_errors:    bad PID, bad --min-block-us, options that do not go together.
# (tests/e2e/off_cpu_test.py, whose docstring says how each decides)

add_executable(preempt_pair ${TESTS_FIXTURES_DIR}/off_cpu/preempt_pair.c)
lua_perf_fixture_options(preempt_pair)
target_link_libraries(preempt_pair PRIVATE Threads::Threads)

# bench/off_cpu_bench.py: two threads ping-ponging a byte through two pipes (a context switch
# storm). Built like the fixtures (no sanitizers), next to lua-perf.
add_executable(bench_pipe_pingpong ${CMAKE_SOURCE_DIR}/bench/pipe_pingpong.c)
set_target_properties(bench_pipe_pingpong PROPERTIES
  COMPILE_OPTIONS "-Wall;-Wextra;-O2"
  LINK_OPTIONS ""
  C_STANDARD 17
  C_EXTENSIONS OFF)
target_link_libraries(bench_pipe_pingpong PRIVATE Threads::Threads)

set(OFF_CPU_TEST ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/off_cpu_test.py
  --lua-perf $<TARGET_FILE:lua-perf>)
set(OFF_CPU_TESTS off_cpu_lua54 off_cpu_min_block off_cpu_command off_cpu_luajit off_cpu_nginx
  off_cpu_preempt off_cpu_errors)
add_test(NAME off_cpu_lua54 COMMAND ${OFF_CPU_TEST} lua54)
add_test(NAME off_cpu_min_block COMMAND ${OFF_CPU_TEST} min_block)
add_test(NAME off_cpu_command COMMAND ${OFF_CPU_TEST} command)
add_test(NAME off_cpu_luajit COMMAND ${OFF_CPU_TEST} luajit
  --luajit ${CMAKE_BINARY_DIR}/luajit/upstream/usr/bin/luajit)
add_test(NAME off_cpu_nginx COMMAND ${OFF_CPU_TEST} nginx)
add_test(NAME off_cpu_preempt COMMAND ${OFF_CPU_TEST} preempt
  --fixture $<TARGET_FILE:preempt_pair>)
add_test(NAME off_cpu_errors COMMAND ${OFF_CPU_TEST} errors)

# 77 = skipped (not root). One at a time with the other profiling tests: they load BPF programs
# and measure times that a busy CPU would stretch.
set_tests_properties(${OFF_CPU_TESTS} PROPERTIES
  TIMEOUT 120 LABELS bpf SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
set_tests_properties(off_cpu_luajit PROPERTIES FIXTURES_REQUIRED luajit_targets)
