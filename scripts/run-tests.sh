#!/usr/bin/env bash
# Installs dependencies, builds (normal and ASan/UBSan) and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD_DIR=build scripts/build.sh
ctest --test-dir build --output-on-failure --timeout 300
# Every fuzz harness for 45 seconds (clang, libFuzzer; tests/fuzz/, docs/fuzzing.md): the
# whole run must stay within CI's hour on two cores.
FUZZ_SECONDS=45 scripts/fuzz.sh
# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer, but the kernel matrix
# (its BPF objects and what the verifiers say of them are those of the run above, and the
# userspace it runs in the guests runs on the host here) and the variants whose userspace
# paths a kept sibling takes: yields under 5.1, 5.3 and 5.4.7 (lua_yield_54_*; the 5.1 and 5.3
# layouts: lua_51_*, lua_53_*), upstream LuaJIT (luajit_debian_*, luajit_gc32_*), Lua 5.4
# embedded (lua_54_*), and dump_late_runner: its path needs the dump iterator still verifying
# when the unwind tables are done, which an ASan build's slower tables never leave (the
# functions it reaches run under ASan in the other dump tests).
BUILD_DIR=build-asan scripts/build.sh -DLUA_PERF_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure --timeout 300 \
  -LE kernel_matrix -E '^(lua_yield_5(1|3|47)_|luajit_upstream_|lua_embed54_|dump_late_runner$)'
