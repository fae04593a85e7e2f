# folded_profile.cmake - unit test of src/folded_profile.c (the profile by folded line that the
# drains fill) and src/loss_report.c (losses said when they start): tests/test_folded_profile.c.
add_executable(test_folded_profile ${CMAKE_CURRENT_LIST_DIR}/test_folded_profile.c
  ${CMAKE_CURRENT_LIST_DIR}/test_check.c)
target_link_libraries(test_folded_profile PRIVATE lua_perf_core)
add_test(NAME folded_profile COMMAND test_folded_profile)
