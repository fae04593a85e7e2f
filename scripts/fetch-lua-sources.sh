#!/usr/bin/env bash
# fetch-lua-sources.sh [--suite SUITE] DIR [PKG...] - unpacks Debian 12 source packages of Lua VMs into DIR, with
# Debian's patches applied, for tests that compile the real Lua headers and sources. The default
# packages are lua5.1, lua5.3 and lua5.4 (DIR/lua5.1-5.1.5, DIR/lua5.3-5.3.6, DIR/lua5.4-5.4.4:
# tests/cmake/lua_detect.cmake); scripts/fetch-luajit.sh asks for luajit and luajit2
# (DIR/luajit-2.1.0~beta3+git20220320+dfsg, DIR/luajit2-2.1-20230119).
#
# --suite SUITE takes the packages from another Debian suite (trixie: lua5.4 5.4.7, the newest 5.4
# the tests build from source, tests/cmake/lua_yield.cmake) through a private apt configuration in
# DIR/.apt (deb-src SUITE from the host's Debian mirror): /etc/apt is not read for sources nor
# written.
#
# Idempotent: a package already unpacked in DIR is not fetched again, and apt is touched only when
# something is missing. Needs root then: it adds deb-src entries mirroring the machine's bookworm
# deb entries when none exist (/etc/apt/sources.list.d/lua-perf-deb-src.{sources,list}), runs
# apt-get update, and installs dpkg-dev (dpkg-source) if absent.
set -euo pipefail

# shellcheck source=scripts/private-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/private-apt.sh"

PACKAGES=()
DEFAULT_PACKAGES=(lua5.1 lua5.3 lua5.4)
SCRATCH=
APT_DIR=/etc/apt
SRC_SOURCES=$APT_DIR/sources.list.d/lua-perf-deb-src.sources
SRC_LIST=$APT_DIR/sources.list.d/lua-perf-deb-src.list
SUITE=
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

usage() {
	echo "usage: $0 [--suite SUITE] DIR [PKG...]  (default PKG: ${DEFAULT_PACKAGES[*]})" >&2
	exit 2
}

# The unpacked source tree of package $1 in the current directory: "$1-<version>" holding a PUC
# Lua (src/lvm.c) or a LuaJIT (src/lj_obj.h) source tree; nothing when there is none. The version
# starts with a digit, so that lua5.1 does not match lua5.1-foo nor luajit match luajit-src.
tree_of() {
	local marker
	for marker in "$1"-[0-9]*/src/lvm.c "$1"-[0-9]*/src/lj_obj.h; do
		if [[ -f $marker ]]; then
			echo "${marker%%/*}"
			return 0
		fi
	done
	return 0
}

unpacked() {
	[[ -n $(tree_of "$1") ]]
}

missing_packages() {
	local pkg
	for pkg in "${PACKAGES[@]}"; do
		unpacked "$pkg" || echo "$pkg"
	done
}

# The one-line style files that exist (sources.list and sources.list.d/*.list).
list_files() {
	local f
	for f in "$APT_DIR/sources.list" "$APT_DIR"/sources.list.d/*.list; do
		[[ -f $f ]] && echo "$f"
	done
	return 0
}

deb822_files() {
	local f
	for f in "$APT_DIR"/sources.list.d/*.sources; do
		[[ -f $f ]] && echo "$f"
	done
	return 0
}

# deb822 stanzas (blank-line separated) whose Types holds $1 and whose Suites name bookworm;
# with $2 = rewrite, print them with Types set to deb-src (and without Enabled: no stanzas).
deb822_stanzas() {
	awk -v want="$1" -v mode="$2" '
		function flush() {
			if (n > 0 && has_type && has_suite && enabled) {
				for (i = 1; i <= n; i++) {
					line = lines[i]
					if (mode == "rewrite" && line ~ /^[Tt]ypes:/)
						line = "Types: deb-src"
					print line
				}
				print ""
			}
			n = 0; has_type = 0; has_suite = 0; enabled = 1
		}
		BEGIN { n = 0; has_type = 0; has_suite = 0; enabled = 1 }
		/^[ \t]*$/ { flush(); next }
		/^[ \t]*#/ { next }
		{
			lines[++n] = $0
			if ($0 ~ /^[Tt]ypes:/) {
				split(substr($0, index($0, ":") + 1), types, /[ \t]+/)
				for (t in types) if (types[t] == want) has_type = 1
			}
			if ($0 ~ /^[Ss]uites:/ && $0 ~ /bookworm/) has_suite = 1
			if ($0 ~ /^[Ee]nabled:[ \t]*[Nn]o/) enabled = 0
		}
		END { flush() }' "${@:3}"
}

has_deb_src() {
	local lists deb822
	mapfile -t lists < <(list_files)
	mapfile -t deb822 < <(deb822_files)
	if ((${#lists[@]} > 0)) && grep -qsE '^[[:space:]]*deb-src[[:space:]].*bookworm' "${lists[@]}"; then
		return 0
	fi
	((${#deb822[@]} > 0)) && [[ -n $(deb822_stanzas deb-src print "${deb822[@]}") ]]
}

# Mirror every enabled bookworm deb entry as deb-src, in the format it was written in.
add_deb_src() {
	local lists deb822 stanzas lines
	mapfile -t lists < <(list_files)
	mapfile -t deb822 < <(deb822_files)
	if ((${#deb822[@]} > 0)); then
		stanzas=$(deb822_stanzas deb rewrite "${deb822[@]}")
		if [[ -n $stanzas ]]; then
			printf '# Added by lua-perf scripts/fetch-lua-sources.sh\n%s\n' "$stanzas" >"$SRC_SOURCES"
		fi
	fi
	if ((${#lists[@]} > 0)); then
		lines=$(grep -hE '^[[:space:]]*deb[[:space:]].*bookworm' "${lists[@]}" |
			sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' || true)
		if [[ -n $lines ]]; then
			printf '# Added by lua-perf scripts/fetch-lua-sources.sh\n%s\n' "$lines" >"$SRC_LIST"
		fi
	fi
	if [[ ! -f $SRC_SOURCES && ! -f $SRC_LIST ]]; then
		echo "$0: no bookworm deb entry in $APT_DIR to mirror as deb-src" >&2
		exit 1
	fi
}

# The host's Debian mirror: the first URI of its sources that ends in /debian (not -security).
host_mirror() {
	local f
	for f in "$APT_DIR/sources.list" "$APT_DIR"/sources.list.d/*.sources "$APT_DIR"/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		grep -hoE "https?://[^ ]+/debian/?( |$)" "$f" | sed 's: *$::; s:/*$::' | head -n 1 && return 0
	done
	return 0
}

# apt-get and apt-cache read $PWD/.apt/apt.conf from now on (scripts/private-apt.sh): deb-src
# SUITE from the host's mirror, and nothing else.
use_private_apt() {
	local root=$PWD/.apt mirror
	mirror=$(host_mirror)
	if [[ -z $mirror ]]; then
		echo "$0: no Debian mirror in $APT_DIR to take $SUITE from" >&2
		exit 1
	fi
	private_apt_conf "$root"
	echo "deb-src [signed-by=$KEYRING] $mirror $SUITE main" >"$root/sources.list"
	export APT_CONFIG=$root/apt.conf
}

main() {
	if [[ ${1:-} == --suite ]]; then
		(($# >= 2)) || usage
		SUITE=$2
		shift 2
	fi
	(($# >= 1)) || usage
	mkdir -p "$1"
	cd "$1"
	shift
	if (($# > 0)); then
		PACKAGES=("$@")
	else
		PACKAGES=("${DEFAULT_PACKAGES[@]}")
	fi
	local missing
	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} == 0)); then
		echo "Sources of ${PACKAGES[*]} already in $PWD"
		return 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	local lock=(-o DPkg::Lock::Timeout=600)
	if [[ -n $SUITE ]]; then
		use_private_apt
		apt-get update -q
	elif ! has_deb_src; then
		add_deb_src
		apt-get "${lock[@]}" update -q
	elif ! apt-cache showsrc "${missing[0]}" 2>/dev/null | grep -q '^Package:'; then
		apt-get "${lock[@]}" update -q
	fi
	if ! command -v dpkg-source >/dev/null; then
		apt-get "${lock[@]}" install -y -q --no-install-recommends dpkg-dev
	fi
	# Fetch into a scratch directory first, so that an interrupted run leaves no half tree behind.
	SCRATCH=$(mktemp -d "$PWD/.fetch.XXXXXX")
	trap 'rm -rf "$SCRATCH"' EXIT
	(cd "$SCRATCH" && apt-get source -q "${missing[@]}")
	local pkg tree
	for pkg in "${missing[@]}"; do
		tree=$(cd "$SCRATCH" && tree_of "$pkg")
		if [[ -z $tree ]]; then
			echo "$0: apt-get source $pkg unpacked no Lua source tree $pkg-<version>/src" >&2
			exit 1
		fi
		rm -rf "./$tree"
		mv "$SCRATCH/$tree" "./$tree"
	done
	local trees=()
	for pkg in "${PACKAGES[@]}"; do
		trees+=("$(tree_of "$pkg")")
	done
	echo "Sources in $PWD: ${trees[*]}"
}

main "$@"
