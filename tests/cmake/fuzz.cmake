# fuzz.cmake - the libFuzzer harnesses of tests/fuzz/, one per parser of what a profiled process
# controls (docs/fuzzing.md). Every build links each harness with tests/fuzz/fuzz_replay.c and
# replays its committed inputs as a normal test (gcc, and under ASan/UBSan in the sanitizer build):
#   fuzz_<harness>_replay   the inputs of tests/fuzz/corpus/<corpus>/ (seeds cut from real files
#                           by scripts/fuzz-seeds.sh, and what campaigns kept) and of
#                           tests/fuzz/regressions/<harness>/ (every input that once failed)
# With -DLUA_PERF_FUZZ=ON (clang; scripts/fuzz.sh) each harness is also a libFuzzer program,
# fuzz_<harness>, and the test of the same name (label fuzz) fuzzes it for LUA_PERF_FUZZ_SECONDS,
# starting from the committed corpus and the system's own files of that kind (if installed).
set(FUZZ_DIR ${TESTS_DIR}/fuzz)
set(FUZZ_WORK ${CMAKE_BINARY_DIR}/fuzz_work)
set(LUA_PERF_FUZZ_SECONDS 60 CACHE STRING "How long each fuzz_<harness> test fuzzes")
find_package(EXPAT REQUIRED)

# Real files the ELF harnesses start from when fuzzing (too large to commit whole).
set(FUZZ_SYSTEM_ELF_FILES
  /usr/lib/x86_64-linux-gnu/liblua5.1.so.0 /usr/lib/x86_64-linux-gnu/liblua5.3.so.0
  /usr/lib/x86_64-linux-gnu/liblua5.4.so.0 /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2
  /usr/bin/lua5.4 /usr/sbin/nginx /lib/x86_64-linux-gnu/libc.so.6)

add_custom_target(fuzz_harnesses) # scripts/fuzz.sh builds only these

# lua_perf_fuzz_harness(NAME CORPUS corpus SOURCES files... LIBS libs... [SYSTEM_SEEDS files...])
function(lua_perf_fuzz_harness name)
  cmake_parse_arguments(H "" "CORPUS" "SOURCES;LIBS;SYSTEM_SEEDS" ${ARGN})
  list(TRANSFORM H_SOURCES PREPEND ${FUZZ_DIR}/)
  set(inputs ${FUZZ_DIR}/corpus/${H_CORPUS})
  if(IS_DIRECTORY ${FUZZ_DIR}/regressions/${name})
    list(APPEND inputs ${FUZZ_DIR}/regressions/${name})
  endif()

  add_executable(fuzz_replay_${name} ${FUZZ_DIR}/fuzz_replay.c ${FUZZ_DIR}/fuzz_failed.c ${H_SOURCES})
  target_link_libraries(fuzz_replay_${name} PRIVATE ${H_LIBS} lua_perf_test_support)
  add_test(NAME fuzz_${name}_replay COMMAND fuzz_replay_${name} ${inputs})

  if(LUA_PERF_FUZZ)
    add_executable(fuzz_${name} ${FUZZ_DIR}/fuzz_failed.c ${H_SOURCES})
    target_link_libraries(fuzz_${name} PRIVATE ${H_LIBS} lua_perf_test_support)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzz_harnesses fuzz_${name})
    # libFuzzer adds what it finds to the first directory: a scratch one, the committed corpus
    # stays as it is. Crashes land in fuzz_work/artifacts/. The target's stderr is closed: the
    # parsers warn about hostile files at every input (fuzz_failed.c still reports).
    set(work ${FUZZ_WORK}/${name})
    set(seeds ${FUZZ_WORK}/seeds/${name})
    file(MAKE_DIRECTORY ${work} ${seeds} ${FUZZ_WORK}/artifacts)
    foreach(file ${H_SYSTEM_SEEDS})
      if(EXISTS ${file})
        get_filename_component(base ${file} NAME)
        file(CREATE_LINK ${file} ${seeds}/${base} SYMBOLIC)
      endif()
    endforeach()
    add_test(NAME fuzz_${name}
      COMMAND fuzz_${name} -max_total_time=${LUA_PERF_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048
        -close_fd_mask=2 -print_final_stats=1 -artifact_prefix=${FUZZ_WORK}/artifacts/${name}-
        ${work} ${inputs} ${seeds})
    set_tests_properties(fuzz_${name} PROPERTIES LABELS fuzz
      TIMEOUT 600 ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1")
  endif()
endfunction()

# What the ELF harnesses share: the input as a memfd ELF file.
set(FUZZ_ELF_INPUT fuzz_elf_input.c ../unit/support/test_files.c)
lua_perf_fuzz_harness(elf_image CORPUS elf SOURCES fuzz_elf_image.c ${FUZZ_ELF_INPUT}
  LIBS lp_unwind SYSTEM_SEEDS ${FUZZ_SYSTEM_ELF_FILES})
lua_perf_fuzz_harness(cfi CORPUS elf SOURCES fuzz_cfi.c ${FUZZ_ELF_INPUT}
  ../unit/support/cfi_table_shape.c LIBS lp_unwind SYSTEM_SEEDS ${FUZZ_SYSTEM_ELF_FILES})
lua_perf_fuzz_harness(symbols CORPUS elf SOURCES fuzz_symbols.c ${FUZZ_ELF_INPUT}
  LIBS lp_symbolize SYSTEM_SEEDS ${FUZZ_SYSTEM_ELF_FILES})
lua_perf_fuzz_harness(folded CORPUS folded SOURCES fuzz_folded.c LIBS lp_output)
lua_perf_fuzz_harness(table_cache CORPUS table_cache SOURCES fuzz_table_cache.c
  ../unit/support/test_files.c LIBS lp_unwind)
lua_perf_fuzz_harness(svg CORPUS folded SOURCES fuzz_svg.c folded_input.c LIBS lp_output
  EXPAT::EXPAT)
lua_perf_fuzz_harness(pprof CORPUS folded SOURCES fuzz_pprof.c folded_input.c LIBS lp_output)
lua_perf_fuzz_harness(puc_detect CORPUS elf SOURCES fuzz_puc_detect.c ${FUZZ_ELF_INPUT}
  ../unit/support/detect_contract.c LIBS lp_runtime SYSTEM_SEEDS ${FUZZ_SYSTEM_ELF_FILES})
lua_perf_fuzz_harness(luajit_detect CORPUS elf SOURCES fuzz_luajit_detect.c ${FUZZ_ELF_INPUT}
  ../unit/support/detect_contract.c LIBS lp_runtime SYSTEM_SEEDS ${FUZZ_SYSTEM_ELF_FILES})
lua_perf_fuzz_harness(proc_maps CORPUS maps SOURCES fuzz_proc_maps.c LIBS lp_proc)
lua_perf_fuzz_harness(lua_symbolize CORPUS lua_image SOURCES fuzz_lua_symbolize.c fuzz_lua_image.c
  LIBS lp_symbolize)

# LuaJIT's layout is the detector's result on this library, at the harness's start (and in its
# seed generator, which links it): Debian's libluajit2 (OpenResty's luajit2, GC64), installed by
# scripts/install-deps.sh. Without it there is no layout to read an image with: no harness.
set(FUZZ_LIBLUAJIT /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2)
if(EXISTS ${FUZZ_LIBLUAJIT})
  lua_perf_fuzz_harness(luajit_symbolize CORPUS luajit_image
    SOURCES fuzz_luajit_symbolize.c fuzz_lua_image.c ../unit/support/detect_file.c
    LIBS lp_symbolize lp_runtime)
  foreach(target fuzz_replay_luajit_symbolize fuzz_luajit_symbolize)
    if(TARGET ${target})
      target_compile_definitions(${target} PRIVATE FUZZ_LIBLUAJIT="${FUZZ_LIBLUAJIT}")
    endif()
  endforeach()
else()
  message(STATUS "${FUZZ_LIBLUAJIT} not found: no fuzz_luajit_symbolize harness")
endif()

# The seeds of lua_symbolize and luajit_symbolize: real Lua 5.4 and LuaJIT heaps
# (scripts/fuzz-seeds.sh runs them).
pkg_check_modules(FUZZ_LUA5_4 QUIET IMPORTED_TARGET lua5.4)
if(FUZZ_LUA5_4_FOUND)
  add_executable(lua_image_seeds ${FUZZ_DIR}/lua_image_seeds.c ${FUZZ_DIR}/lua_image_seed.c)
  target_link_libraries(lua_image_seeds PRIVATE lp_runtime PkgConfig::FUZZ_LUA5_4
    lua_perf_test_support)
endif()
pkg_check_modules(FUZZ_LUAJIT QUIET luajit)
if(FUZZ_LUAJIT_FOUND AND EXISTS ${FUZZ_LIBLUAJIT})
  add_executable(luajit_image_seeds ${FUZZ_DIR}/luajit_image_seeds.c ${FUZZ_DIR}/lua_image_seed.c
    ${TESTS_UNIT_DIR}/support/detect_file.c)
  target_include_directories(luajit_image_seeds PRIVATE ${FUZZ_LUAJIT_INCLUDE_DIRS})
  target_compile_definitions(luajit_image_seeds PRIVATE FUZZ_LIBLUAJIT="${FUZZ_LIBLUAJIT}")
  target_link_libraries(luajit_image_seeds PRIVATE lp_runtime ${FUZZ_LIBLUAJIT}
    lua_perf_test_support)
endif()
