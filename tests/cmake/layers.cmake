# layers.cmake - the build enforces the layers (CMakeLists.txt, "Userspace"): a probe source that
# includes one header is compiled against one layer's library (not built by default). The test
# layers_enforced builds each probe: those whose layer may use the header must build, those whose
# layer must not fail with the header not found.
set(LAYER_PROBES_ALLOWED)
set(LAYER_PROBES_FORBIDDEN)
function(layer_probe name library header expect)
  add_library(${name} STATIC EXCLUDE_FROM_ALL ${TESTS_FIXTURES_DIR}/layers/layer_probe.c)
  target_link_libraries(${name} PRIVATE ${library})
  target_compile_definitions(${name} PRIVATE "LAYER_PROBE_HEADER=\"${header}\"")
  if(expect STREQUAL "allowed")
    set(LAYER_PROBES_ALLOWED ${LAYER_PROBES_ALLOWED} ${name} PARENT_SCOPE)
  else()
    set(LAYER_PROBES_FORBIDDEN ${LAYER_PROBES_FORBIDDEN} "${name}=${header}" PARENT_SCOPE)
  endif()
endfunction()

layer_probe(layer_probe_symbolize_runtime lp_symbolize runtime/lua_runtime.h allowed)
layer_probe(layer_probe_profiler_output lp_profiler output/summary.h allowed)
layer_probe(layer_probe_lib_proc lp_lib proc/proc_maps.h forbidden)
layer_probe(layer_probe_unwind_runtime lp_unwind runtime/lua_runtime.h forbidden)
layer_probe(layer_probe_runtime_symbolize lp_runtime symbolize/symbolize.h forbidden)
layer_probe(layer_probe_output_profiler lp_output profiler/session.h forbidden)
layer_probe(layer_probe_output_symbolize lp_output symbolize/symbolize.h forbidden)

add_test(NAME layers_enforced COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR}
  "-DALLOWED=${LAYER_PROBES_ALLOWED}" "-DFORBIDDEN=${LAYER_PROBES_FORBIDDEN}"
  -P ${TESTS_FIXTURES_DIR}/layers/check_layers.cmake)
