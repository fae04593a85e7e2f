#!/usr/bin/env bash
# Installs everything lua-perf needs to build, run its example and run its tests on Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# chromium and fonts-dejavu-core: the SVG flame graph tests load the SVG in headless Chromium.
# lua-check: luacheck, the large Lua code base that the long-run test profiles (tests/e2e/long_run_test.py).
# libcap2-bin: capsh, to run lua-perf with only the capabilities it needs (tests/e2e/failures_test.py).
# libluajit2-5.1-dev: the yield tests build their host against Debian's libluajit (tests/cmake/lua_yield.cmake).
# qemu-system-x86, busybox-static: the kernel matrix boots Debian kernels under QEMU with a
# busybox initramfs (tests/e2e/kernel_matrix_test.py, docs/kernels.md).
# libexpat1-dev: the SVG fuzz harness parses each SVG as XML; libclang-rt-14-dev: clang's
# libFuzzer and sanitizer runtimes for the fuzzing build (tests/fuzz/, docs/fuzzing.md).
# zlib1g-dev: the pprof output is gzipped; python3-protobuf and golang-go (go tool pprof): its
# tests decode it (tests/e2e/pprof_test.py).
apt-get update -q
apt-get install -y -q --no-install-recommends \
  build-essential cmake pkg-config clang llvm bpftool \
  libbpf-dev libelf-dev libdwarf-dev libcapstone-dev zlib1g-dev \
  binutils python3 procps util-linux libcap2-bin \
  nginx-light libnginx-mod-http-ndk libnginx-mod-http-lua lua-resty-core wrk \
  lua5.1 lua5.2 lua5.3 lua5.4 lua-check liblua5.1-0-dev liblua5.3-dev liblua5.4-dev \
  libluajit2-5.1-2 libluajit2-5.1-common libluajit2-5.1-dev linux-perf libc6-dbg dpkg-dev \
  chromium fonts-dejavu-core \
  qemu-system-x86 busybox-static \
  libexpat1-dev libclang-rt-14-dev python3-protobuf golang-go
