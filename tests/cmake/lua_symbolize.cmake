# lua_symbolize.cmake - tests of symbolize/lua_symbolize.c and its lua_*.c helpers (Proto ->
# function, chunk, lines) and symbolize/lua_source_names.c (names from source lines). Included by
# the top CMakeLists.
#   lua_symbolize_source_names   the naming rules and Lua's line counting on hand-written lines
#   lua_symbolize_5_x            a real liblua5.x: every naming style, chunk kinds, and the line of
#                                every instruction of straight-line functions against the VM's own
#                                count hook, read from a forked child through /proc/PID/mem
#   lua_symbolize_5_x_hostile    garbage addresses, non-Proto objects, corrupted fake Protos, FIFO
#                                and device chunk names, wrong layouts, bad and dead pids
#   lua_symbolize_5_x_container  a chrooted child: chunk paths read inside its root (skipped, 77,
#                                when the child can neither chroot nor enter a user namespace)
#   lua_symbolize_budget         tiny cache budgets: lines dropped, protos refused, texts evicted
# The 5.x programs need Debian's liblua5.1-0-dev, liblua5.3-dev, liblua5.4-dev (pkg-config
# lua5.x); without them the test reports itself skipped (exit 77).

add_executable(test_lua_source_names ${TESTS_UNIT_DIR}/symbolize/test_lua_source_names.c)
target_link_libraries(test_lua_source_names PRIVATE lp_symbolize lua_perf_test_support)
add_test(NAME lua_symbolize_source_names COMMAND test_lua_source_names)
set_tests_properties(lua_symbolize_source_names PROPERTIES LABELS lua_symbolize)

foreach(lua_version 5.1 5.3 5.4)
  string(REPLACE "." "_" tag ${lua_version})
  pkg_check_modules(LUASYM_LUA${tag} QUIET IMPORTED_TARGET lua${lua_version})
  if(LUASYM_LUA${tag}_FOUND)
    add_executable(test_lua_symbolize_${tag}
      ${TESTS_UNIT_DIR}/symbolize/test_lua_symbolize.c)
    target_link_libraries(test_lua_symbolize_${tag} PRIVATE lp_symbolize lua_perf_test_support PkgConfig::LUASYM_LUA${tag})
    add_test(NAME lua_symbolize_${tag} COMMAND test_lua_symbolize_${tag} real)
    add_test(NAME lua_symbolize_${tag}_hostile COMMAND test_lua_symbolize_${tag} hostile)
    add_test(NAME lua_symbolize_${tag}_container COMMAND test_lua_symbolize_${tag} container)
  else()
    set(missing "echo 'lua${lua_version} development files not found (pkg-config lua${lua_version})'; exit 77")
    add_test(NAME lua_symbolize_${tag} COMMAND sh -c "${missing}")
    add_test(NAME lua_symbolize_${tag}_hostile COMMAND sh -c "${missing}")
    add_test(NAME lua_symbolize_${tag}_container COMMAND sh -c "${missing}")
  endif()
  set_tests_properties(lua_symbolize_${tag} lua_symbolize_${tag}_hostile
    lua_symbolize_${tag}_container PROPERTIES
    SKIP_RETURN_CODE 77 LABELS lua_symbolize)
endforeach()

# The cache budgets at work: the Lua symbolizer (symbolize/lua_*.c) built into the test with a
# 640-byte proto cache and a 1-byte source text budget (5.4 only: the limits are version
# independent).
if(LUASYM_LUA5_4_FOUND)
  file(GLOB lua_symbolizer_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/symbolize/lua_*.c)
  add_executable(test_lua_symbolize_budget
    ${TESTS_UNIT_DIR}/symbolize/test_lua_symbolize.c ${lua_symbolizer_sources}
    ${CMAKE_SOURCE_DIR}/runtime/puc/lua_layouts.c ${CMAKE_SOURCE_DIR}/proc/process_root.c
    ${CMAKE_SOURCE_DIR}/lib/whole_file.c)
  target_compile_definitions(test_lua_symbolize_budget PRIVATE LUA_SYMBOLIZE_BUDGET_TEST
    LUA_SYMBOLIZE_MAX_CACHE_BYTES=640 LUA_SYMBOLIZE_MAX_TEXT_BYTES=1)
  target_include_directories(test_lua_symbolize_budget PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(test_lua_symbolize_budget PRIVATE PkgConfig::LUASYM_LUA5_4)
  add_test(NAME lua_symbolize_budget COMMAND test_lua_symbolize_budget budget)
else()
  add_test(NAME lua_symbolize_budget COMMAND sh -c "echo 'lua5.4 development files not found'; exit 77")
endif()
set_tests_properties(lua_symbolize_budget PROPERTIES SKIP_RETURN_CODE 77 LABELS lua_symbolize)
