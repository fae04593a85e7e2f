#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ (clang, ASan + UBSan) into ./build-fuzz (or
# $BUILD_DIR) and fuzzes each for $FUZZ_SECONDS (default 60) through `ctest -L fuzz`, two at a
# time on two cores. Extra arguments go to ctest (e.g. -R fuzz_cfi). docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
CC=clang cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUA_PERF_FUZZ=ON \
  -DLUA_PERF_FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
cmake --build "$BUILD_DIR" -j "$(nproc)" --target fuzz_harnesses
ctest --test-dir "$BUILD_DIR" -L fuzz -j "$(nproc)" --output-on-failure "$@"
