# container.cmake - profiling processes that run in a container (own PID and mount namespace,
# own root) from the host, without a container engine (tests/e2e/container_profile_test.py, whose
# docstring lists what is asserted). Included by the top CMakeLists.
#
# container_rootfs (fixture, needs root): a minimal root filesystem copied from this host into
#   <build>/container_rootfs, once (redone when a source file changes): lua5.4, nginx + ngx_lua
#   + libluajit2 + lua-resty-core, their libraries. Needs the Debian packages of
#   scripts/install-deps.sh (lua5.4, nginx-light, libnginx-mod-http-lua, lua-resty-core, wrk,
#   liblua5.4-dev for the test's C modules, util-linux, gcc, binutils).
# Tests (label bpf, need root, 77 = skipped when not root):
#   container_lua54               lua5.4 in an unshare --pid --mount --root container, relative chunk
#   container_lua54_minimal_caps  chroot(1) instead, lua-perf without CAP_SYS_ADMIN (no map_files)
#   container_nginx               nginx + ngx_lua (LuaJIT) in an unshare + pivot_root container
#   container_pidns               lua-perf inside a PID namespace of its own: a clear error
find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(CONTAINER_TEST ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/container_profile_test.py)
set(CONTAINER_ROOTFS ${CMAKE_BINARY_DIR}/container_rootfs)

add_test(NAME container_rootfs COMMAND ${CONTAINER_TEST} rootfs --root ${CONTAINER_ROOTFS})
set_tests_properties(container_rootfs PROPERTIES FIXTURES_SETUP container_rootfs
  SKIP_RETURN_CODE 77 TIMEOUT 300)

function(container_profile_test name)
  add_test(NAME ${name} COMMAND ${CONTAINER_TEST} --lua-perf $<TARGET_FILE:lua-perf>
    --root ${CONTAINER_ROOTFS} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS bpf RESOURCE_LOCK cpu_profiling
    FIXTURES_REQUIRED container_rootfs SKIP_RETURN_CODE 77 TIMEOUT 180)
endfunction()

container_profile_test(container_lua54 lua54 --relative)
container_profile_test(container_lua54_minimal_caps lua54 --minimal-caps)
container_profile_test(container_nginx nginx)
container_profile_test(container_pidns pidns)
