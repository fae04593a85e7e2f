# process_tree.cmake - following a process tree (-p PID: the process and all its descendants).
# Included by the top CMakeLists.
#   process_tree_children / _proc_scan / _limit: proc/process_tree.c against processes the test
#     forks itself (no root, no BPF): discovery by either method, exits, zombies, reparenting,
#     the max_live limit (tests/unit/proc/test_process_tree.c).
#   process_tree_fork: lua-perf -p on tests/fixtures/native/fixture_fork (a parent, a child, a
#     grandchild, and a child forked after profiling started): every process is in the
#     per-process summary and the late child's stacks are exact (tests/e2e/process_tree_test.py).
#   process_tree_many: 22 processes with samples: the summary lists 16, then "+N more", sums up.
#   process_tree_gone: the whole tree exits (its root stays an unreaped zombie) long before -d:
#     lua-perf ends by itself, exit 0, with the summary.
#   nginx_lua_reload: nginx + ngx_lua (2 workers) under wrk, -p <master>, SIGHUP to the master
#     mid-run: old and new workers sampled, Lua content handler chains with their LuaJIT frames
#     spliced under ngx_http_lua_run_thread (tests/e2e/nginx_profile_test.py); JIT on, and off
#     (nginx_lua_reload_jitoff).

add_executable(test_process_tree ${TESTS_UNIT_DIR}/proc/test_process_tree.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_process_tree PRIVATE lp_proc lua_perf_test_support Threads::Threads)
foreach(mode children proc_scan limit)
  add_test(NAME process_tree_${mode} COMMAND test_process_tree ${mode})
endforeach()
set_tests_properties(process_tree_children process_tree_proc_scan process_tree_limit PROPERTIES
  TIMEOUT 90 SKIP_RETURN_CODE 77 LABELS process_tree)

set(PROCESS_TREE_TEST ${TESTS_E2E_DIR}/process_tree_test.py --lua-perf $<TARGET_FILE:lua-perf>
  --fixture $<TARGET_FILE:fixture_fork>)
foreach(case fork many gone)
  add_test(NAME process_tree_${case} COMMAND ${Python3_EXECUTABLE} ${PROCESS_TREE_TEST} ${case})
endforeach()
add_test(NAME nginx_lua_reload
  COMMAND ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/nginx_profile_test.py
          --lua-perf $<TARGET_FILE:lua-perf> lua_reload)
add_test(NAME nginx_lua_reload_jitoff
  COMMAND ${Python3_EXECUTABLE} ${TESTS_E2E_DIR}/nginx_profile_test.py
          --lua-perf $<TARGET_FILE:lua-perf> lua_reload_jitoff)
# 77 = skipped (not root: these load BPF programs). They keep both cores busy: one at a time.
set_tests_properties(process_tree_fork process_tree_many process_tree_gone nginx_lua_reload
  nginx_lua_reload_jitoff PROPERTIES
  TIMEOUT 90 LABELS bpf SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
