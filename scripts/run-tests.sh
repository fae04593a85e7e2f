#!/usr/bin/env bash
# Installs dependencies, builds (normal and ASan/UBSan) and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD_DIR=build scripts/build.sh
ctest --test-dir build --output-on-failure --timeout 300
# Every fuzz harness for a minute (clang, libFuzzer; tests/fuzz/, docs/fuzzing.md).
scripts/fuzz.sh
# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer, but the kernel matrix:
# its BPF objects and what the verifiers say of them are those of the run above, and the
# userspace it runs in the guests runs on the host here.
BUILD_DIR=build-asan scripts/build.sh -DLUA_PERF_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure --timeout 300 \
  -LE kernel_matrix
