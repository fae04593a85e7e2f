# luajit_detect.cmake - tests of runtime/luajit/ (LuaJIT 2.1 detection, layout derivation, fast
# function names: luajit_detect.c and the files its header lists). Included by the top
# CMakeLists. tests/e2e/luajit_detect_test.py drives tests/fixtures/luajit_detect/luajit_detect_tool.c:
#   luajit_layout_<target>     every struct luajit_layout field (and the GCproto/GCstr offsets)
#                              against offsetof()/sizeof/CFRAME_*/GG_* on the target's own source
#                              tree (tests/fixtures/luajit_detect/luajit_layout_probe.c)
#   luajit_exec_<target>       the interpreter range: lj_vm_asm_begin and the FDE of lj_vm_pcall
#                              (unstripped builds), and the bytes of the tree's lj_vm.o (all)
#   luajit_ffnames_<target>    fast function names against the build's own jit/vmdef.lua
#   luajit_variant_no_unwind   layout and range of a LUAJIT_NO_UNWIND build (96-byte C frame)
#   luajit_detect_none         PUC Lua, libc, nginx and its Lua module: not LuaJIT
#   luajit_detect_hostile_*    truncated and corrupted copies (run under ASan in that build)
# Targets: Debian's libluajit-5.1.so.2 (OpenResty luajit2, GC64, stripped), the upstream
# LuaJIT library and executable (GC64, stripped), and unstripped builds: GC32 from the upstream tree (the VM in
# the executable and in libluajit.so), GC64 from the luajit2 tree.
#
# The fixture luajit_targets (scripts/fetch-luajit.sh, root and network the first time) fetches
# and builds them into ${CMAKE_BINARY_DIR}/luajit; other tests use it too (FIXTURES_REQUIRED
# luajit_targets, the layout in the script's header).
add_executable(luajit_detect_tool ${TESTS_FIXTURES_DIR}/luajit_detect/luajit_detect_tool.c
  ${TESTS_UNIT_DIR}/support/test_files.c ${TESTS_UNIT_DIR}/support/hostile_elf.c
  ${TESTS_UNIT_DIR}/support/detect_contract.c ${TESTS_UNIT_DIR}/support/detect_file.c)
target_link_libraries(luajit_detect_tool PRIVATE lp_runtime lua_perf_test_support)

find_package(Python3 REQUIRED COMPONENTS Interpreter)
find_program(LUAJIT_DETECT_NM nm REQUIRED)
find_program(LUAJIT_DETECT_READELF readelf REQUIRED)

set(LUAJIT_DIR ${CMAKE_BINARY_DIR}/luajit)
set(LUAJIT_LIBDIR /usr/lib/x86_64-linux-gnu)
set(LUAJIT_DEBIAN_LIB ${LUAJIT_LIBDIR}/libluajit-5.1.so.2)
set(LUAJIT_UPSTREAM_LIB ${LUAJIT_DIR}/upstream/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2)
# Debian's luajit executable links the VM in and exports its API: LuaJIT itself.
set(LUAJIT_UPSTREAM_EXE ${LUAJIT_DIR}/upstream/usr/bin/luajit)
set(LUAJIT_TEST ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/luajit_detect_test.py)
set(LUAJIT_TEST_ARGS --tool $<TARGET_FILE:luajit_detect_tool> --cc ${CMAKE_C_COMPILER}
  --nm ${LUAJIT_DETECT_NM} --readelf ${LUAJIT_DETECT_READELF}
  --work ${CMAKE_BINARY_DIR}/luajit_detect_work)

add_test(NAME luajit_fetch_targets
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/fetch-luajit.sh ${LUAJIT_DIR})
set_tests_properties(luajit_fetch_targets PROPERTIES FIXTURES_SETUP luajit_targets TIMEOUT 900)

set(LUAJIT_TESTS)
macro(luajit_test name)
  add_test(NAME ${name} COMMAND ${LUAJIT_TEST} ${ARGN})
  list(APPEND LUAJIT_TESTS ${name})
endmacro()

# ---- layouts: each target against its own tree; the control is another tree or mode.
luajit_test(luajit_layout_debian layout ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit2-src
  --control-tree ${LUAJIT_DIR}/luajit-src ${LUAJIT_DEBIAN_LIB})
luajit_test(luajit_layout_upstream layout ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit-src
  --control-tree ${LUAJIT_DIR}/luajit2-src ${LUAJIT_UPSTREAM_LIB} ${LUAJIT_UPSTREAM_EXE})
luajit_test(luajit_layout_gc32 layout ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit-src --gc32
  --control-tree ${LUAJIT_DIR}/luajit-src
  ${LUAJIT_DIR}/gc32/src/luajit ${LUAJIT_DIR}/gc32/src/libluajit.so)
luajit_test(luajit_layout_gc64 layout ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit2-src
  --control-tree ${LUAJIT_DIR}/luajit2-src --control-gc32
  ${LUAJIT_DIR}/gc64/src/luajit ${LUAJIT_DIR}/gc64/src/libluajit.so)

# ---- interpreter ranges
luajit_test(luajit_exec_debian exec ${LUAJIT_TEST_ARGS}
  --vm-object ${LUAJIT_DIR}/gc64/src/lj_vm.o ${LUAJIT_DEBIAN_LIB})
luajit_test(luajit_exec_upstream exec ${LUAJIT_TEST_ARGS}
  --vm-tree ${LUAJIT_DIR}/luajit-src ${LUAJIT_UPSTREAM_LIB} ${LUAJIT_UPSTREAM_EXE})
luajit_test(luajit_exec_gc32 exec ${LUAJIT_TEST_ARGS} --symbols
  --vm-object ${LUAJIT_DIR}/gc32/src/lj_vm.o
  ${LUAJIT_DIR}/gc32/src/luajit ${LUAJIT_DIR}/gc32/src/libluajit.so)
luajit_test(luajit_exec_gc64 exec ${LUAJIT_TEST_ARGS} --symbols
  --vm-object ${LUAJIT_DIR}/gc64/src/lj_vm.o
  ${LUAJIT_DIR}/gc64/src/luajit ${LUAJIT_DIR}/gc64/src/libluajit.so)

# ---- fast function names; the Debian library's own vmdef.lua is libluajit2-5.1-common's.
luajit_test(luajit_ffnames_debian ffnames ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit2-src
  --vmdef /usr/share/luajit-2.1.0-beta3/jit/vmdef.lua ${LUAJIT_DEBIAN_LIB})
luajit_test(luajit_ffnames_upstream ffnames ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit-src
  --vmdef ${LUAJIT_DIR}/upstream/usr/share/luajit-2.1.0-beta3/jit/vmdef.lua ${LUAJIT_UPSTREAM_LIB}
  ${LUAJIT_UPSTREAM_EXE})
luajit_test(luajit_ffnames_gc32 ffnames ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit-src
  --vmdef ${LUAJIT_DIR}/gc32/src/jit/vmdef.lua
  ${LUAJIT_DIR}/gc32/src/luajit ${LUAJIT_DIR}/gc32/src/libluajit.so)
luajit_test(luajit_ffnames_gc64 ffnames ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit2-src
  --vmdef ${LUAJIT_DIR}/gc64/src/jit/vmdef.lua
  ${LUAJIT_DIR}/gc64/src/luajit ${LUAJIT_DIR}/gc64/src/libluajit.so)

# ---- a build variant: LUAJIT_NO_UNWIND saves r12 and r13 too (CFRAME_SIZE 96), built here.
luajit_test(luajit_variant_no_unwind variant ${LUAJIT_TEST_ARGS} --tree ${LUAJIT_DIR}/luajit2-src
  --xcflags=-DLUAJIT_NO_UNWIND)

set_tests_properties(${LUAJIT_TESTS} PROPERTIES FIXTURES_REQUIRED luajit_targets TIMEOUT 300)

# Files that only import the API (nginx's Lua module) or export PUC Lua's are not LuaJIT.
add_test(NAME luajit_detect_none COMMAND ${LUAJIT_TEST} none ${LUAJIT_TEST_ARGS}
  ${LUAJIT_LIBDIR}/liblua5.4.so.0 ${LUAJIT_LIBDIR}/liblua5.1.so.0 /lib/x86_64-linux-gnu/libc.so.6
  /usr/sbin/nginx /usr/lib/nginx/modules/ngx_http_lua_module.so)

# Hostile copies: the Debian library (GC64) and the GC32 executable (the VM linked in).
add_test(NAME luajit_detect_hostile_debian
  COMMAND luajit_detect_tool hostile ${LUAJIT_DEBIAN_LIB} ${CMAKE_BINARY_DIR})
add_test(NAME luajit_detect_hostile_gc32
  COMMAND luajit_detect_tool hostile ${LUAJIT_DIR}/gc32/src/luajit ${CMAKE_BINARY_DIR})
set_tests_properties(luajit_detect_hostile_gc32 PROPERTIES FIXTURES_REQUIRED luajit_targets)
set_tests_properties(luajit_detect_hostile_debian luajit_detect_hostile_gc32 PROPERTIES TIMEOUT 600)
