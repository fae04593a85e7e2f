# thread_dump.cmake - `lua-perf dump`, least privilege and clean failures. Included by the top
# CMakeLists (after native_fixtures.cmake, which builds fixture_dump).
#   dump_threads: tests/fixtures/native/fixture_dump (threads spinning, and asleep in nanosleep, read and
#     pthread_join): every thread's state, system call and exact stack; the fixture runs on.
#   dump_lua: two lua5.4 processes (a recursion into a CPU loop, one into io.read): their Lua
#     frames with current lines.
#   dump_lua_tail_hook: lua5.3 in the call hook of a tail call: the caller being replaced is left
#     out.
#   dump_nginx: nginx master + 2 workers, dump -p <master>: one block per process.
#   dump_nginx_lua, dump_nginx_lua_jit: nginx + ngx_lua, a worker asleep in poll called through
#     the FFI from tests/fixtures/nginx_lua/nap.lua: its Lua frames at their current lines, interpreted
#     or in a compiled trace.
#   failures_capabilities: as nobody with exactly CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and
#     CAP_SYSLOG (capsh): profile and dump work; each one left out: one line naming it.
#   failures_startup_exit / _unwritable / _no_bpf: a target exiting during start-up, an output
#     that cannot be written, a kernel without bpf(), perf events or BTF (seccomp, a mount
#     namespace): one error line, exit 1, no BPF program left behind.
# (tests/e2e/thread_dump_test.py, tests/e2e/failures_test.py)

# Runs a command with one system call failing (seccomp): "a kernel without it". Built like the
# fixtures, without the sanitizers.
add_executable(deny_syscall ${TESTS_FIXTURES_DIR}/tools/deny_syscall.c)
set_target_properties(deny_syscall PROPERTIES
  COMPILE_OPTIONS "-Wall;-Wextra;-O2"
  LINK_OPTIONS ""
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tools)

set(DUMP_TEST ${TESTS_E2E_DIR}/thread_dump_test.py --lua-perf $<TARGET_FILE:lua-perf>)
add_test(NAME dump_threads
  COMMAND ${Python3_EXECUTABLE} ${DUMP_TEST} threads --fixture $<TARGET_FILE:fixture_dump>)
add_test(NAME dump_lua COMMAND ${Python3_EXECUTABLE} ${DUMP_TEST} lua)
add_test(NAME dump_lua_tail_hook COMMAND ${Python3_EXECUTABLE} ${DUMP_TEST} lua_tail_hook)
add_test(NAME dump_late_runner COMMAND ${Python3_EXECUTABLE} ${DUMP_TEST} late_runner)
add_test(NAME dump_nginx COMMAND ${Python3_EXECUTABLE} ${DUMP_TEST} nginx)
add_test(NAME dump_nginx_lua COMMAND ${Python3_EXECUTABLE} ${DUMP_TEST} nginx_lua)
add_test(NAME dump_nginx_lua_jit COMMAND ${Python3_EXECUTABLE} ${DUMP_TEST} nginx_lua_jit)

set(FAILURES_TEST ${TESTS_E2E_DIR}/failures_test.py --lua-perf $<TARGET_FILE:lua-perf>
  --fixture-dir ${FIXTURE_BIN_DIR} --deny-syscall $<TARGET_FILE:deny_syscall>)
set(FAILURES_TESTS)
foreach(case capabilities startup_exit unwritable no_bpf)
  add_test(NAME failures_${case} COMMAND ${Python3_EXECUTABLE} ${FAILURES_TEST} ${case})
  list(APPEND FAILURES_TESTS failures_${case})
endforeach()

# 77 = skipped (not root). One at a time with the other profiling tests: they load BPF programs
# (seconds of verification each) and some keep the CPUs busy.
set_tests_properties(dump_threads dump_lua dump_lua_tail_hook dump_late_runner dump_nginx
  dump_nginx_lua dump_nginx_lua_jit ${FAILURES_TESTS} PROPERTIES
  TIMEOUT 300 LABELS bpf SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
