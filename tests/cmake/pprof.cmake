# pprof.cmake - tests of the pprof output (output/pprof_profile.c and the parts it uses; -o
# *.pb.gz, --format pprof). Included by the top CMakeLists. tests/e2e/pprof_test.py decodes every
# profile with Debian's python3-protobuf (tests/pylib/pprof.py: profile.proto declared through
# the descriptor API, no generated code); its docstring lists what each case asserts:
#   pprof_unit     test_pprof: protobuf encodings against known bytes, frame names taken
#                  apart, string ids (C only)
#   pprof_decode   a profile of fixed folded lines (every kind of frame, frame origins,
#                  labels, hostile names) written by test_pprof and decoded field by field;
#                  no root
#   pprof_profile  lua5.4 running examples/app.lua, one run writing -o .fold -o .pb.gz --lines:
#                  totals, flat and cumulative samples by function against the fold, Lua
#                  frames with chunk, line defined and executing line, pid/thread/comm
#                  labels, times and period, the lua5.4 and libc Mappings (path, build ID);
#                  go tool pprof -top agrees with the fold
#   pprof_nginx    nginx master + 2 workers under wrk: the pid/comm labels split the samples
#                  exactly as the per-process summary, each worker labelled with its own pid
#   pprof_cli      --format pprof, -o *.pprof by name, --format folded over a .pb.gz name
#   pprof_threads  fixture_threads: samples split by thread label, a symbolized frame's
#                  Mapping
# Needs python3-protobuf, golang-go, lua5.4 and nginx-light (scripts/install-deps.sh).

find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_executable(test_pprof ${TESTS_UNIT_DIR}/output/test_pprof.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_pprof PRIVATE lp_output lua_perf_test_support)
add_test(NAME pprof_unit COMMAND test_pprof)

set(PPROF_TEST ${TESTS_E2E_DIR}/pprof_test.py)
add_test(NAME pprof_decode
  COMMAND ${Python3_EXECUTABLE} ${PPROF_TEST} decode --harness $<TARGET_FILE:test_pprof>)
add_test(NAME pprof_profile
  COMMAND ${Python3_EXECUTABLE} ${PPROF_TEST} profile --lua-perf $<TARGET_FILE:lua-perf>
          --app ${CMAKE_SOURCE_DIR}/examples/app.lua)
add_test(NAME pprof_nginx
  COMMAND ${Python3_EXECUTABLE} ${PPROF_TEST} nginx --lua-perf $<TARGET_FILE:lua-perf>)
add_test(NAME pprof_cli
  COMMAND ${Python3_EXECUTABLE} ${PPROF_TEST} cli --lua-perf $<TARGET_FILE:lua-perf>)
add_test(NAME pprof_threads
  COMMAND ${Python3_EXECUTABLE} ${PPROF_TEST} threads --lua-perf $<TARGET_FILE:lua-perf>
          --fixture $<TARGET_FILE:fixture_threads>)
set_tests_properties(pprof_decode PROPERTIES TIMEOUT 60 LABELS pprof)
set_tests_properties(pprof_profile pprof_nginx pprof_cli pprof_threads PROPERTIES
  TIMEOUT 180 LABELS "bpf;pprof" SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
