#!/usr/bin/env bash
# Installs dependencies, builds lua-perf, runs the bundled Lua example (examples/app.lua) under
# Debian's stock lua5.4, profiles it for 5 seconds and writes perf.fold (folded stacks for
# flamegraph.pl) and perf.svg (an interactive flame graph) in the current directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
BUILD_DIR="$top/build" "$top/scripts/build.sh"
lua5.4 "$top/examples/app.lua" 8 &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT
sleep 0.5
"$top/build/lua-perf" -p "$app" -d 5 -o perf.fold -o perf.svg
echo "wrote $(pwd)/perf.fold ($(wc -l < perf.fold) stacks); samples per Lua function (inclusive):"
awk '{ n = split($1, f, ";"); delete seen
       for (i = 1; i <= n; i++) if (f[i] ~ /^L:/ && !seen[f[i]]++) total[f[i]] += $2 }
     END { for (fn in total) printf "%8d  %s\n", total[fn], fn }' perf.fold | sort -rn | head -8
echo "flame graph: open $(pwd)/perf.svg in a web browser (hover, click to zoom, Ctrl-F to search)"
