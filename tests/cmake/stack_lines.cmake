# stack_lines.cmake - unit test of profiler/stack_lines.c (the folded line each stack of a process
# was named to, so that a drain names only new stacks): tests/unit/profiler/test_stack_lines.c.
add_executable(test_stack_lines ${TESTS_UNIT_DIR}/profiler/test_stack_lines.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_stack_lines PRIVATE lp_profiler lua_perf_test_support)
add_test(NAME stack_lines COMMAND test_stack_lines)
