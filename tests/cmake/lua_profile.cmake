# lua_profile.cmake - Lua workloads (tests/fixtures/lua/*.lua), the program that embeds Lua 5.4 through
# Debian's liblua5.4.so (tests/fixtures/lua/lua_embed.c), and the end-to-end tests that profile them with
# lua-perf under lua5.1, lua5.3, lua5.4 and the embedding program (tests/e2e/lua_profile_test.py,
# whose docstring lists the exact stacks expected). Included by the top CMakeLists.
#
# Needs the Debian packages lua5.1, lua5.3, lua5.4 (interpreters, at test time) and
# liblua5.4-dev (headers and liblua5.4.so, to build lua_embed; it brings liblua5.4-0).
#
# Tests (label bpf, need root, 77 = skipped when not root):
#   lua_<I>_<scenario>   I = 51, 53, 54, embed54; scenario = deep, coroutines, pcall, sort, gsub,
#                        index, tailcall, tailhook, strings, ratio, lines
#   lua_54_relative_chunk  the tailcall workload run as `lua5.4 tail_calls.lua` from its directory
#   lua_nonlua_process     a native fixture: profiled natively, "no Lua" said on stderr
# and lua_workloads_selfcheck (no root, no profiler): every workload runs under every interpreter,
# the embedding program's VM is in liblua5.4, the library functions the tests name are found.

find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(LUA_TEST_DIR ${TESTS_FIXTURES_DIR}/lua)
set(LUA_EMBED_BIN ${LUA_HOSTS_DIR}/lua_embed)
lua_perf_lua_host(lua_embed ${LUA_TEST_DIR}/lua_embed.c lua5.4)

set(LUA_TEST ${TESTS_E2E_DIR}/lua_profile_test.py)
set(LUA_TEST_ARGS ${LUA_TEST} --lua-perf $<TARGET_FILE:lua-perf> --scripts ${LUA_TEST_DIR}
    --embed ${LUA_EMBED_BIN})

add_test(NAME lua_workloads_selfcheck
  COMMAND ${Python3_EXECUTABLE} ${LUA_TEST} self-check --scripts ${LUA_TEST_DIR}
          --embed ${LUA_EMBED_BIN})
set_tests_properties(lua_workloads_selfcheck PROPERTIES TIMEOUT 120)

set(LUA_BPF_TESTS)
foreach(interp 51 53 54 embed54)
  foreach(scenario deep coroutines pcall sort gsub index tailcall tailhook strings ratio lines)
    add_test(NAME lua_${interp}_${scenario}
      COMMAND ${Python3_EXECUTABLE} ${LUA_TEST_ARGS} --interp ${interp} ${scenario})
    list(APPEND LUA_BPF_TESTS lua_${interp}_${scenario})
  endforeach()
endforeach()
add_test(NAME lua_54_relative_chunk
  COMMAND ${Python3_EXECUTABLE} ${LUA_TEST_ARGS} --interp 54 --relative tailcall)
add_test(NAME lua_nonlua_process
  COMMAND ${Python3_EXECUTABLE} ${LUA_TEST_ARGS} nonlua --fixture $<TARGET_FILE:fixture_deep>)
foreach(interp 51 54)
  add_test(NAME lua_${interp}_freed_protos
    COMMAND ${Python3_EXECUTABLE} ${LUA_TEST_ARGS} --interp ${interp} freed_protos)
  list(APPEND LUA_BPF_TESTS lua_${interp}_freed_protos)
endforeach()
add_test(NAME lua_52_unsupported
  COMMAND ${Python3_EXECUTABLE} ${LUA_TEST_ARGS} unsupported)
list(APPEND LUA_BPF_TESTS lua_54_relative_chunk lua_nonlua_process lua_52_unsupported)

# Each profiles for 3 s and needs the CPU to itself (ctest -j would starve the samples).
set_tests_properties(${LUA_BPF_TESTS} PROPERTIES
  TIMEOUT 120 LABELS bpf SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
