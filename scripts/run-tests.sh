#!/usr/bin/env bash
# Installs dependencies, builds (normal and ASan/UBSan) and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD_DIR=build scripts/build.sh
ctest --test-dir build --output-on-failure --timeout 300
# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
BUILD_DIR=build-asan scripts/build.sh -DLUA_PERF_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure --timeout 300
