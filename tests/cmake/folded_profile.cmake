# folded_profile.cmake - unit test of output/folded_profile.c (the profile by folded line that the
# drains fill) and output/loss_report.c (losses said when they start): tests/unit/output/test_folded_profile.c.
add_executable(test_folded_profile ${TESTS_UNIT_DIR}/output/test_folded_profile.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_folded_profile PRIVATE lp_output lua_perf_test_support)
add_test(NAME folded_profile COMMAND test_folded_profile)
