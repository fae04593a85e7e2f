# lua_detect.cmake - tests of PUC Lua detection (runtime/lua_runtime.c, x86/, runtime/puc/) and of the
# layout table runtime/puc/lua_layouts.c. Included by the top CMakeLists. tests/e2e/lua_detect_test.py drives
# tests/fixtures/lua_detect/lua_detect_tool.c:
#   lua_detect_debian_5.x      /usr/bin/lua5.x and liblua5.x.so.0 (stripped, as shipped): version,
#                              luaV_execute = one whole FDE, L register (Debian 12 facts)
#   lua_detect_debian_cxx      the C++ builds Debian ships beside them (liblua5.x-c++.so.0)
#   lua_detect_unsupported_*   refused: 5.1 built as C++ (no ident string), 5.2.4 / 5.4.9 / 5.0.3
#                              (ident rewritten in a copy of a real library)
#   lua_detect_none_*          LuaJIT (exports lua_* and says "Lua 5.1"), nginx, libc: none
#   lua_detect_builds_5.x      the release built from the Debian source package at -O1/-O2/-O3,
#                              non-PIE+CET, -O1 with frame pointer and by clang -O2, stripped:
#                              luaV_execute and where L is (register, or frame slot at CFA+N)
#                              against .symtab, the unstripped code and a run-time probe
#                              (tests/fixtures/lua_detect/lua_home_probe.c)
#   lua_layouts_5.x            every layout field against offsetof() on the release's headers
#   lua_layouts_table          consistency of the whole table
#   lua_detect_hostile*        truncated/corrupted copies of liblua5.4.so and lua5.1 (run under ASan),
#                              and of the 5.4 -O1 build (L in a frame slot)
#   lua_slot_54_*              end to end under real BPF: the 5.4 -O1 / -O3 / clang -O2 builds,
#                              whose luaV_execute keeps L in a stack slot, profiled on
#                              deep_recursion.lua (tests/e2e/lua_slot_profile_test.py)
# The source packages are fetched once (scripts/fetch-lua-sources.sh, needs root and network the
# first time) by the fixture lua_detect_fetch_sources. A missing system binary fails its test: the
# install script installs lua5.1 lua5.3 lua5.4 and their libraries.
add_executable(lua_detect_tool ${TESTS_FIXTURES_DIR}/lua_detect/lua_detect_tool.c
  ${TESTS_UNIT_DIR}/support/test_files.c ${TESTS_UNIT_DIR}/support/hostile_elf.c
  ${TESTS_UNIT_DIR}/support/detect_contract.c ${TESTS_UNIT_DIR}/support/detect_file.c)
target_link_libraries(lua_detect_tool PRIVATE lp_runtime lua_perf_test_support)

find_package(Python3 REQUIRED COMPONENTS Interpreter)
foreach(tool readelf nm objdump strip)
  string(TOUPPER ${tool} tool_var)
  find_program(LUA_DETECT_${tool_var} ${tool} REQUIRED)
endforeach()

set(LUA_DETECT_SOURCES ${CMAKE_BINARY_DIR}/lua_sources)
set(LUA_DETECT_WORK ${CMAKE_BINARY_DIR}/lua_detect_work)
set(LUA_DETECT_TEST ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/lua_detect_test.py)
set(LUA_DETECT_ARGS --tool $<TARGET_FILE:lua_detect_tool> --readelf ${LUA_DETECT_READELF}
  --nm ${LUA_DETECT_NM} --objdump ${LUA_DETECT_OBJDUMP} --strip ${LUA_DETECT_STRIP}
  --cc ${CMAKE_C_COMPILER} --clang ${CLANG} --sources ${LUA_DETECT_SOURCES} --work ${LUA_DETECT_WORK})
set(LIBDIR /usr/lib/x86_64-linux-gnu)

add_test(NAME lua_detect_fetch_sources
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/fetch-lua-sources.sh ${LUA_DETECT_SOURCES})
set_tests_properties(lua_detect_fetch_sources PROPERTIES FIXTURES_SETUP lua_sources TIMEOUT 900)

# Debian 12: liblua5.1.so 5.1.5 keeps L in rbp, liblua5.3.so 5.3.6 in r12, liblua5.4.so 5.4.4 in
# r15 (../shared/reference/README.md, confirmed by lua_detect_builds_* on the same sources).
add_test(NAME lua_detect_debian_5.1 COMMAND ${LUA_DETECT_TEST} debian ${LUA_DETECT_ARGS}
  --expect /usr/bin/lua5.1:5.1.5:rbp --expect ${LIBDIR}/liblua5.1.so.0:5.1.5:rbp)
add_test(NAME lua_detect_debian_5.3 COMMAND ${LUA_DETECT_TEST} debian ${LUA_DETECT_ARGS}
  --expect /usr/bin/lua5.3:5.3.6:r12 --expect ${LIBDIR}/liblua5.3.so.0:5.3.6:r12)
add_test(NAME lua_detect_debian_5.4 COMMAND ${LUA_DETECT_TEST} debian ${LUA_DETECT_ARGS}
  --expect /usr/bin/lua5.4:5.4.4:r15 --expect ${LIBDIR}/liblua5.4.so.0:5.4.4:r15)
add_test(NAME lua_detect_debian_cxx COMMAND ${LUA_DETECT_TEST} debian ${LUA_DETECT_ARGS}
  --expect ${LIBDIR}/liblua5.3-c++.so.0:5.3.6:r12 --expect ${LIBDIR}/liblua5.4-c++.so.0:5.4.4:r15)
# C++ gives 5.1's unused `const char lua_ident[]` internal linkage: no release string survives.
add_test(NAME lua_detect_unsupported_cxx51 COMMAND ${LUA_DETECT_TEST} unsupported ${LUA_DETECT_ARGS}
  --expect "${LIBDIR}/liblua5.1-c++.so.0:no Lua ident string")

# Releases without a walker or without a layout entry are refused with the release named.
add_test(NAME lua_detect_unsupported_releases COMMAND ${LUA_DETECT_TEST} patched ${LUA_DETECT_ARGS}
  --expect "${LIBDIR}/liblua5.4.so.0:5.2.4:Lua 5.2.4 is not supported"
  --expect "${LIBDIR}/liblua5.4.so.0:5.4.9:Lua 5.4.9 is not supported (no layout"
  --expect "/usr/bin/lua5.1:5.0.3:Lua 5.0.3 is not supported")

add_test(NAME lua_detect_none_luajit COMMAND ${LUA_DETECT_TEST} none ${LUA_DETECT_ARGS}
  ${LIBDIR}/libluajit-5.1.so.2)
add_test(NAME lua_detect_none_nginx COMMAND ${LUA_DETECT_TEST} none ${LUA_DETECT_ARGS} /usr/sbin/nginx)
add_test(NAME lua_detect_none_libc COMMAND ${LUA_DETECT_TEST} none ${LUA_DETECT_ARGS}
  /lib/x86_64-linux-gnu/libc.so.6)

add_test(NAME lua_detect_hostile
  COMMAND lua_detect_tool hostile ${LIBDIR}/liblua5.4.so.0 ${CMAKE_BINARY_DIR})
add_test(NAME lua_detect_hostile_lua51 COMMAND lua_detect_tool hostile /usr/bin/lua5.1 ${CMAKE_BINARY_DIR})
add_test(NAME lua_layouts_table COMMAND lua_detect_tool table)

foreach(version 5.1 5.3 5.4)
  add_test(NAME lua_detect_builds_${version}
    COMMAND ${LUA_DETECT_TEST} builds ${LUA_DETECT_ARGS} --version ${version})
  add_test(NAME lua_layouts_${version} COMMAND ${LUA_DETECT_TEST} layouts ${LUA_DETECT_ARGS}
    --version ${version} --probe ${TESTS_FIXTURES_DIR}/lua_detect/lua_layout_probe.c)
  set_tests_properties(lua_detect_builds_${version} lua_layouts_${version} PROPERTIES
    FIXTURES_REQUIRED lua_sources)
  set_tests_properties(lua_detect_builds_${version} PROPERTIES TIMEOUT 900)
endforeach()
set_tests_properties(lua_detect_builds_5.4 PROPERTIES FIXTURES_SETUP lua54_builds)

# Hostile copies of a build whose luaV_execute keeps L in a frame slot (built and stripped by
# lua_detect_builds_5.4).
add_test(NAME lua_detect_hostile_slot
  COMMAND lua_detect_tool hostile ${LUA_DETECT_WORK}/lua5.4/O1/lua.stripped ${CMAKE_BINARY_DIR})
set_tests_properties(lua_detect_hostile_slot PROPERTIES FIXTURES_REQUIRED lua54_builds)

# End to end: Lua 5.4 builds that keep L in luaV_execute's frame, profiled under real BPF. Each
# builds its interpreter once (cached in lua_slot_work) and profiles for 3 s.
set(LUA_SLOT_TESTS)
foreach(variant O1 O3 clang-O2)
  add_test(NAME lua_slot_54_${variant}_deep
    COMMAND ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/lua_slot_profile_test.py
            --variant ${variant} --lua-perf $<TARGET_FILE:lua-perf>
            --tool $<TARGET_FILE:lua_detect_tool>
            --cc ${CMAKE_C_COMPILER} --clang ${CLANG} --sources ${LUA_DETECT_SOURCES}
            --work ${CMAKE_BINARY_DIR}/lua_slot_work --scripts ${TESTS_FIXTURES_DIR}/lua)
  list(APPEND LUA_SLOT_TESTS lua_slot_54_${variant}_deep)
endforeach()
set_tests_properties(${LUA_SLOT_TESTS} PROPERTIES TIMEOUT 120 LABELS bpf SKIP_RETURN_CODE 77
  RESOURCE_LOCK cpu_profiling FIXTURES_REQUIRED lua_sources)
