#!/usr/bin/env bash
# Installs dependencies, builds lua-perf, starts the bundled example workload, profiles it for
# 5 seconds and writes perf.fold (folded stacks for flamegraph.pl) in the current directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
BUILD_DIR="$top/build" "$top/scripts/build.sh"
"$top/build/example_native_workload" 8 &
workload=$!
trap 'kill $workload 2>/dev/null || true' EXIT
sleep 0.5
"$top/build/lua-perf" -p "$workload" -d 5 -o perf.fold
echo "wrote $(pwd)/perf.fold: $(wc -l < perf.fold) stacks; render with flamegraph.pl perf.fold > perf.svg"
