#!/usr/bin/env bash
# The long fuzzing campaign (docs/fuzzing.md): each harness of build-fuzz (scripts/fuzz.sh builds
# it) for the seconds given below times $SCALE (default 1), one after the other on one core, from
# the committed corpus (and, for the detectors, the system's Lua libraries). New inputs collect in
# build-fuzz/campaign/<harness>/, crashes in build-fuzz/campaign/artifacts/. Prints one line per
# harness: executions, coverage (edges), features, corpus; the last lines of each log stay in
# build-fuzz/campaign/<harness>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
SCALE=${SCALE:-1}
out=$BUILD_DIR/campaign
mkdir -p "$out/artifacts"
corpus=tests/fuzz/corpus
# harness  seconds  committed corpus  max input bytes  extra seed directory
plan="elf_image 300 elf 131072 -
cfi 600 elf 131072 -
symbols 300 elf 131072 -
puc_detect 420 elf 0 $BUILD_DIR/fuzz_work/seeds/puc_detect
luajit_detect 420 elf 0 $BUILD_DIR/fuzz_work/seeds/luajit_detect
lua_symbolize 600 lua_image 0 -
luajit_symbolize 600 luajit_image 0 -
proc_maps 300 maps 4096 -
folded 240 folded 4096 -
svg 240 folded 4096 -
pprof 240 folded 4096 -"
while read -r name seconds dir max_len extra; do
	mkdir -p "$out/$name"
	args=(-max_total_time=$((seconds * SCALE)) -timeout=10 -rss_limit_mb=2048 -close_fd_mask=2
		-print_final_stats=1 -artifact_prefix="$out/artifacts/$name-")
	[ "$max_len" != 0 ] && args+=(-max_len="$max_len")
	dirs=("$out/$name" "$corpus/$dir")
	[ -d "tests/fuzz/regressions/$name" ] && dirs+=("tests/fuzz/regressions/$name")
	[ "$extra" != - ] && dirs+=("$extra")
	"$BUILD_DIR/fuzz_$name" "${args[@]}" "${dirs[@]}" > "$out/$name.log" 2>&1 || true
	runs=$(sed -n 's/^stat::number_of_executed_units: //p' "$out/$name.log")
	last=$(grep -E '^#[0-9]+' "$out/$name.log" | tail -1)
	crashes=$(find "$out/artifacts" -name "$name-*" | wc -l)
	echo "$name runs=${runs:-?} crashes=$crashes last: $last"
done <<< "$plan"
