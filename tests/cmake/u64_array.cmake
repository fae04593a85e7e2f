# u64_array.cmake - unit test of lib/u64_array.c, the one binary search over sorted 64-bit keys
# (function starts, unwind rows, symbols) and its sort.
add_executable(test_u64_array ${TESTS_UNIT_DIR}/lib/test_u64_array.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_u64_array PRIVATE lp_lib lua_perf_test_support)
add_test(NAME u64_array COMMAND test_u64_array)
