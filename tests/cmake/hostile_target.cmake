# hostile_target.cmake - the BPF walkers against targets that corrupt their own Lua VM while they
# are profiled (tests/e2e/hostile_target_test.py, whose docstring lists what it asserts; the
# programs are tests/fixtures/hostile/). Included by the top CMakeLists.
#
# Tests (label bpf, need root, 77 = skipped when not root):
#   hostile_lua54    Debian's liblua5.4: looping, garbage and unreadable CallInfo chains, a
#                    consistent CallInfo cycle, a Proto with absurd sizes
#   hostile_luajit   Debian's libluajit (GC64): bad return PC, no function in a frame, a frame
#                    link to itself
find_package(Python3 REQUIRED COMPONENTS Interpreter)

lua_perf_lua_host(hostile_lua54 ${TESTS_FIXTURES_DIR}/hostile/hostile_lua54.c lua5.4)
lua_perf_lua_host(hostile_luajit ${TESTS_FIXTURES_DIR}/hostile/hostile_luajit.c luajit)

foreach(vm lua54 luajit)
  add_test(NAME hostile_${vm}
    COMMAND ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/hostile_target_test.py
      --lua-perf $<TARGET_FILE:lua-perf> --target ${LUA_HOSTS_DIR}/hostile_${vm} ${vm})
  set_tests_properties(hostile_${vm} PROPERTIES LABELS bpf RESOURCE_LOCK cpu_profiling
    SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()
