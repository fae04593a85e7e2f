# folded_profile.cmake - unit test of output/folded_profile.c (the profile by folded line that the
# drains fill), output/loss_report.c (losses said when they start) and output/summary.c (the
# summary of an off-CPU run: time per process and by reason): tests/unit/output/test_folded_profile.c.
add_executable(test_folded_profile ${TESTS_UNIT_DIR}/output/test_folded_profile.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_folded_profile PRIVATE lp_output lua_perf_test_support)
add_test(NAME folded_profile COMMAND test_folded_profile)
