# lua_yield.cmake - coroutines interrupted and resumed by their host (a count hook that yields,
# a C function that yields, lua_pcallk / lua_yieldk continuations, nested coroutines), profiled
# under real BPF: every frame of the chain exactly once, in order, the frames that lua_resume's
# unroll()/finishCcall() will run spliced right after lua_resume (tests/e2e/lua_yield_profile_test.py,
# whose docstring lists the chains). Included by the top CMakeLists.
#
# The host, tests/fixtures/lua_yield/lua_yield_host.c, is built once per Lua library, from Debian's
# packages:
#   lua_yield_host51 / 53 / 54   liblua5.1-0-dev, liblua5.3-dev, liblua5.4-dev
#   lua_yield_hostjit            libluajit2-5.1-dev (OpenResty's luajit2, GC64)
# Tests (label bpf, need root, 77 = skipped when not root):
#   lua_yield_<5x>_<scenario>_<interrupt>   5x = 53, 54: scenario chain, pcallk, yieldk, nested;
#                                           interrupt hook (count hook), line (line hook) or
#                                           call (host_pause())
#   lua_yield_51_<scenario>_<interrupt>     chain and nested (5.1 has no continuations)
#   luajit_yield_<scenario>_<on|off>        chain and nested, yields from a C function, the JIT
#                                           on or off
#   lua_yield_547_<scenario>_<interrupt>    Lua 5.4.7 (Debian 13's source, fetched by the fixture
#                                           lua_yield_fetch_trixie) built by the test, all four
#   lua_layouts_5.4.7                       the 5.4 layout against 5.4.7's own headers
find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(LUA_YIELD_TEST ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/lua_yield_profile_test.py
  --lua-perf $<TARGET_FILE:lua-perf> --script ${TESTS_FIXTURES_DIR}/lua_yield/yield_app.lua)
set(LUA_YIELD_BIN_DIR ${LUA_HOSTS_DIR})
set(LUA_YIELD_HOST ${TESTS_FIXTURES_DIR}/lua_yield/lua_yield_host.c)
set(LUA_YIELD_TESTS)

lua_perf_lua_host(lua_yield_host51 ${LUA_YIELD_HOST} lua5.1)
lua_perf_lua_host(lua_yield_host53 ${LUA_YIELD_HOST} lua5.3)
lua_perf_lua_host(lua_yield_host54 ${LUA_YIELD_HOST} lua5.4)
lua_perf_lua_host(lua_yield_hostjit ${LUA_YIELD_HOST} luajit LUA_YIELD_HOST_LUAJIT)

function(lua_yield_test name host)
  add_test(NAME ${name} COMMAND ${LUA_YIELD_TEST} --host ${LUA_YIELD_BIN_DIR}/${host} ${ARGN})
  set(LUA_YIELD_TESTS ${LUA_YIELD_TESTS} ${name} PARENT_SCOPE)
endfunction()

foreach(lua 53 54)
  foreach(scenario chain pcallk yieldk nested)
    foreach(interrupt hook line call)
      lua_yield_test(lua_yield_${lua}_${scenario}_${interrupt} lua_yield_host${lua}
        --lua ${lua} ${scenario} ${interrupt})
    endforeach()
  endforeach()
endforeach()
foreach(scenario chain nested)
  foreach(interrupt hook line call)
    lua_yield_test(lua_yield_51_${scenario}_${interrupt} lua_yield_host51
      --lua 51 ${scenario} ${interrupt})
  endforeach()
  foreach(jit on off)
    lua_yield_test(luajit_yield_${scenario}_${jit} lua_yield_hostjit
      --lua luajit --jit ${jit} ${scenario} call)
  endforeach()
endforeach()

# Lua 5.4.7 from Debian 13's source package (a private apt configuration, /etc/apt untouched).
set(LUA_YIELD_TRIXIE_SOURCES ${CMAKE_BINARY_DIR}/lua_sources/trixie)
add_test(NAME lua_yield_fetch_trixie
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/fetch-lua-sources.sh --suite trixie ${LUA_YIELD_TRIXIE_SOURCES}
          lua5.4)
set_tests_properties(lua_yield_fetch_trixie PROPERTIES FIXTURES_SETUP lua_trixie_sources TIMEOUT 900)
foreach(scenario chain pcallk yieldk nested)
  foreach(interrupt hook line call)
    set(name lua_yield_547_${scenario}_${interrupt})
    add_test(NAME ${name} COMMAND ${LUA_YIELD_TEST} --lua 54 --lua-sources ${LUA_YIELD_TRIXIE_SOURCES}
      --work ${CMAKE_BINARY_DIR}/lua_yield_work/5.4.7 --cc ${CMAKE_C_COMPILER} ${scenario} ${interrupt})
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED lua_trixie_sources)
    list(APPEND LUA_YIELD_TESTS ${name})
  endforeach()
endforeach()
add_test(NAME lua_layouts_5.4.7 COMMAND ${Python3_EXECUTABLE}
  ${TESTS_E2E_DIR}/lua_detect_test.py layouts ${LUA_DETECT_ARGS}
  --sources ${LUA_YIELD_TRIXIE_SOURCES} --version 5.4 --work ${CMAKE_BINARY_DIR}/lua_yield_work/layouts
  --probe ${TESTS_FIXTURES_DIR}/lua_detect/lua_layout_probe.c)
set_tests_properties(lua_layouts_5.4.7 PROPERTIES FIXTURES_REQUIRED lua_trixie_sources)

# Each profiles for 3 s and needs the CPU to itself (ctest -j would starve the samples).
set_tests_properties(${LUA_YIELD_TESTS} PROPERTIES
  TIMEOUT 120 LABELS bpf SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
