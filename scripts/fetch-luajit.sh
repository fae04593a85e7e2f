#!/usr/bin/env bash
# fetch-luajit.sh DIR - the LuaJIT 2.1 test targets of lua-perf, in a fixed layout other tests rely
# on (tests/cmake/luajit_detect.cmake and the LuaJIT profiling tests):
#
#   DIR/luajit-src, DIR/luajit2-src  the Debian 12 source packages luajit (upstream 2.1.0-beta3
#                                    snapshot) and luajit2 (OpenResty 2.1-20230119), patches applied
#                                    (symlinks to the trees scripts/fetch-lua-sources.sh unpacks)
#   DIR/upstream                     luajit, libluajit-5.1-2 and libluajit-5.1-common extracted with
#                                    dpkg -x (they conflict with the installed libluajit2-5.1-2):
#                                    run usr/bin/luajit with
#                                    LD_LIBRARY_PATH=DIR/upstream/usr/lib/x86_64-linux-gnu; its jit/
#                                    modules are in usr/share/luajit-2.1.0-beta3
#   DIR/gc32                         luajit-src built with -DLUAJIT_DISABLE_GC64 (GC32): src/luajit
#                                    (VM linked in, API exported with -Wl,-E), src/libluajit.so,
#                                    src/jit/*.lua with the generated vmdef.lua; unstripped
#   DIR/gc64                         luajit2-src built as is (GC64), unstripped: an oracle with
#                                    symbols for the code of Debian's stripped libluajit-5.1.so.2
#
# Idempotent: each part that exists is kept. Every part is built or extracted in a scratch
# directory inside DIR and moved into place when complete, so an interrupted run leaves nothing
# half-built. Needs root and the network the first time (apt).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRATCH=
UPSTREAM_DEBS=(luajit libluajit-5.1-2 libluajit-5.1-common)
LOCK=(-o DPkg::Lock::Timeout=600)

usage() {
	echo "usage: $0 DIR" >&2
	exit 2
}

cleanup() {
	if [[ -n $SCRATCH ]]; then
		rm -rf "$SCRATCH"
	fi
}

new_scratch() {
	cleanup
	SCRATCH=$(mktemp -d "$PWD/.fetch-luajit.XXXXXX")
}

# DIR/$2 -> the versioned tree of package $1 (fetch-lua-sources.sh names it $1-<version>).
link_source() {
	local pkg=$1 name=$2 tree marker
	tree=
	for marker in "$pkg"-[0-9]*/src/lj_obj.h; do
		[[ -f $marker ]] && tree=${marker%%/*}
	done
	if [[ -z $tree ]]; then
		echo "$0: no unpacked $pkg source tree in $PWD" >&2
		exit 1
	fi
	if [[ $(readlink "$name" 2>/dev/null) != "$tree" ]]; then
		ln -sfn "$tree" "$name"
	fi
}

fetch_upstream() {
	if [[ -x upstream/usr/bin/luajit && -d upstream/usr/share/luajit-2.1.0-beta3/jit ]]; then
		return 0
	fi
	new_scratch
	export DEBIAN_FRONTEND=noninteractive
	if ! (cd "$SCRATCH" && apt-get download -q "${UPSTREAM_DEBS[@]}"); then
		apt-get "${LOCK[@]}" update -q
		(cd "$SCRATCH" && apt-get download -q "${UPSTREAM_DEBS[@]}")
	fi
	mkdir "$SCRATCH/upstream"
	local deb
	for deb in "$SCRATCH"/*.deb; do
		dpkg -x "$deb" "$SCRATCH/upstream"
	done
	if [[ ! -x $SCRATCH/upstream/usr/bin/luajit ]]; then
		echo "$0: the luajit package holds no usr/bin/luajit" >&2
		exit 1
	fi
	rm -rf upstream
	mv "$SCRATCH/upstream" upstream
	cleanup
}

# build NAME SOURCE [MAKE ARGS...]: a copy of SOURCE built with make into DIR/NAME. The
# default build mode (mixed) links the VM statically into src/luajit and exports its API
# (src/Makefile: -Wl,-E) and builds src/libluajit.so. CCDEBUG= leaves out -g (quicker) and
# TARGET_STRIP=@: keeps the symbols (src/Makefile strips when CCDEBUG is empty).
build() {
	local name=$1 source=$2
	shift 2
	if [[ -x $name/src/luajit && -f $name/src/libluajit.so && -f $name/src/jit/vmdef.lua ]]; then
		return 0
	fi
	new_scratch
	cp -a "$source/." "$SCRATCH/$name"
	local start=$SECONDS
	make -C "$SCRATCH/$name" -j2 Q= E=@: CCDEBUG= TARGET_STRIP=@: "$@" >"$SCRATCH/$name.log" 2>&1 || {
		tail -n 40 "$SCRATCH/$name.log" >&2
		echo "$0: building $name failed" >&2
		exit 1
	}
	echo "built $name in $((SECONDS - start)) s"
	rm -rf "$name"
	mv "$SCRATCH/$name" "$name"
	cleanup
}

main() {
	(($# == 1)) || usage
	mkdir -p "$1"
	cd "$1"
	trap cleanup EXIT
	"$HERE/fetch-lua-sources.sh" "$PWD" luajit luajit2
	link_source luajit luajit-src
	link_source luajit2 luajit2-src
	fetch_upstream
	build gc32 luajit-src XCFLAGS=-DLUAJIT_DISABLE_GC64
	build gc64 luajit2-src
	echo "LuaJIT targets in $PWD: luajit-src luajit2-src upstream gc32 gc64"
}

main "$@"
