# command_script.cmake - unit test of profiler/command.c's command_script_interpreter (the
# interpreter that `lua-perf -- ./script` prepares a table for): tests/unit/profiler/test_command_script.c.
add_executable(test_command_script ${TESTS_UNIT_DIR}/profiler/test_command_script.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_command_script PRIVATE lp_profiler lua_perf_test_support)
add_test(NAME command_script COMMAND test_command_script)
