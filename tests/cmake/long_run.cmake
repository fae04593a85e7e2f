# long_run.cmake - nothing lost over time (tests/e2e/long_run_test.py, whose docstring lists what
# each case asserts). Included by the top CMakeLists.
#   long_run_churn        120 s of a shell loop running luacheck (Debian's lua-check) over
#                         /usr/share/lua: 0 samples lost, BPF's count == the summary == the file
#   long_run_short_child  children living 0.2 s, started by a followed shell: ~200 samples each
#   long_run_command, _command_script, _command_quick, _command_errors, _interrupt
#                         lua-perf -- CMD

set(LONG_RUN_TEST ${TESTS_E2E_DIR}/long_run_test.py --lua-perf $<TARGET_FILE:lua-perf>)
foreach(case churn short_child command command_script command_quick command_errors interrupt)
  add_test(NAME long_run_${case} COMMAND ${Python3_EXECUTABLE} ${LONG_RUN_TEST} ${case})
endforeach()
# 77 = skipped (not root: these load BPF programs). They keep a core busy: one at a time.
set_tests_properties(long_run_short_child long_run_command long_run_command_script
  long_run_command_quick long_run_command_errors long_run_interrupt PROPERTIES
  TIMEOUT 120 LABELS bpf SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
set_tests_properties(long_run_churn PROPERTIES
  TIMEOUT 300 LABELS bpf SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
