# flamegraph_svg.cmake - tests of the SVG flame graph (output/flamegraph_svg.c) and of the output
# options (-o repeated, --format). Included by the top CMakeLists. All run
# tests/e2e/flamegraph_svg_test.py (its docstring lists what each asserts):
#   flamegraph_svg_hostile  hostile frame names, huge inputs and write errors through the C
#                           writer (test_flamegraph_svg), the SVGs parsed as XML and loaded in
#                           headless Chromium; no root
#   flamegraph_svg_off_cpu  test_flamegraph_svg off-cpu (C only): an off-CPU profile's SVG says
#                           "Off-CPU time" and gives times, not samples, in its title, tooltips
#                           and footnote; parsed by expat; the CPU texts unchanged
#   flamegraph_svg_cli      usage errors; as root: unwritable outputs fail before any BPF work,
#                           --format and file names pick the formats of one run's outputs
#   flamegraph_svg_profile  lua5.4 running examples/app.lua profiled with -o .fold -o .svg: the
#                           fold in the strict folded format (and flamegraph.pl when installed),
#                           the SVG in Chromium: title, widths against the fold, hover, zoom,
#                           search against the fold
# Needs the Debian packages chromium and lua5.4 (scripts/install-deps.sh).

find_package(Python3 REQUIRED COMPONENTS Interpreter)
find_package(EXPAT REQUIRED)

add_executable(test_flamegraph_svg ${TESTS_UNIT_DIR}/output/test_flamegraph_svg.c
  ${TESTS_UNIT_DIR}/support/test_check.c)
target_link_libraries(test_flamegraph_svg PRIVATE lp_output lua_perf_test_support EXPAT::EXPAT)
add_test(NAME flamegraph_svg_off_cpu COMMAND test_flamegraph_svg off-cpu)

set(FLAMEGRAPH_SVG_TEST ${TESTS_E2E_DIR}/flamegraph_svg_test.py)
add_test(NAME flamegraph_svg_hostile
  COMMAND ${Python3_EXECUTABLE} ${FLAMEGRAPH_SVG_TEST} hostile
          --harness $<TARGET_FILE:test_flamegraph_svg>)
add_test(NAME flamegraph_svg_cli
  COMMAND ${Python3_EXECUTABLE} ${FLAMEGRAPH_SVG_TEST} cli --lua-perf $<TARGET_FILE:lua-perf>)
add_test(NAME flamegraph_svg_profile
  COMMAND ${Python3_EXECUTABLE} ${FLAMEGRAPH_SVG_TEST} profile --lua-perf $<TARGET_FILE:lua-perf>
          --app ${CMAKE_SOURCE_DIR}/examples/app.lua)
set_tests_properties(flamegraph_svg_hostile PROPERTIES TIMEOUT 180 LABELS svg)
# These profile (flamegraph_svg_cli briefly, once its usage errors pass): the CPU to themselves.
set_tests_properties(flamegraph_svg_cli flamegraph_svg_profile PROPERTIES
  TIMEOUT 180 LABELS "bpf;svg" SKIP_RETURN_CODE 77 RESOURCE_LOCK cpu_profiling)
