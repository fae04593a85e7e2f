# table_cache.cmake - the table cache end to end (LUA_PERF_TABLE_CACHE, unwind/table_cache.c; its
# unit test is in cfi_compile.cmake):
#   table_cache_nginx:    nginx + ngx_lua dumped four times with one cache: built, read back
#                         (same frames, same VM found), a damaged entry, a symbolic link.
#   table_cache_unusable: a directory anyone may write to: said once, not used.
# (tests/e2e/table_cache_test.py)
set(TABLE_CACHE_TEST ${TESTS_E2E_DIR}/table_cache_test.py --lua-perf $<TARGET_FILE:lua-perf>)
add_test(NAME table_cache_nginx COMMAND ${Python3_EXECUTABLE} ${TABLE_CACHE_TEST} nginx)
add_test(NAME table_cache_unusable COMMAND ${Python3_EXECUTABLE} ${TABLE_CACHE_TEST} unusable)
# 77 = skipped (not root). One at a time with the other profiling tests (BPF verification).
set_tests_properties(table_cache_nginx table_cache_unusable PROPERTIES
  TIMEOUT 300 LABELS bpf SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
