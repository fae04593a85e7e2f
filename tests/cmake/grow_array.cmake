# grow_array.cmake - unit test of lib/grow_array.c, the growth policy of every growable array and
# its one push.
add_executable(test_grow_array ${TESTS_UNIT_DIR}/lib/test_grow_array.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_grow_array PRIVATE lp_lib lua_perf_test_support)
add_test(NAME grow_array COMMAND test_grow_array)
