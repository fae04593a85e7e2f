# off_cpu_frames.cmake - unit test of the reason frame of --off-cpu stacks as profiler/frame_names.c
# names it: tests/unit/profiler/test_off_cpu_frames.c.
add_executable(test_off_cpu_frames ${TESTS_UNIT_DIR}/profiler/test_off_cpu_frames.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_off_cpu_frames PRIVATE lp_profiler lua_perf_test_support)
add_test(NAME off_cpu_frames COMMAND test_off_cpu_frames)
