#!/usr/bin/env bash
# fetch-kernels.sh DIR [NAME...] - the Debian kernels of the kernel matrix test
# (tests/cmake/kernel_matrix.cmake, docs/kernels.md), one directory per kernel:
#
#   DIR/bullseye   Debian 11, 5.10  (bullseye, bullseye-updates, bullseye-security)
#   DIR/bookworm   Debian 12, 6.1   (bookworm, bookworm-updates, bookworm-security)
#   DIR/trixie     Debian 13, 6.12  (trixie, trixie-updates, trixie-security)
#   DIR/backports  the newest trixie-backports kernel (7.x)
#
# Each holds the kernel image as the package has it (boot/vmlinuz-RELEASE, or from 7.x
# usr/lib/modules/RELEASE/vmlinuz, in the package linux-binary-RELEASE that the meta package
# linux-image-RELEASE depends on), a symlink DIR/NAME/vmlinuz to it, and DIR/NAME/kernel.env:
#   PACKAGE=linux-image-6.1.0-37-amd64  VERSION=6.1.140-1  RELEASE=6.1.0-37-amd64
# The newest kernel of a suite is the one its linux-image-amd64 depends on. Only the image is
# extracted (the test boots it with no modules: BTF, BPF and perf events are built in).
#
# Debian's archive is read through a private apt configuration under DIR/apt (its own sources
# list, state, lists and cache per kernel; the host's keyring and mirror; the host's
# /etc/apt is read, never written). Idempotent: a kernel already fetched is not fetched again
# (no network at all when all are there). Atomic: each kernel is prepared in a scratch directory
# and renamed into place when complete. Mirrors: $DEBIAN_MIRROR and $DEBIAN_SECURITY_MIRROR,
# else the ones the host's apt sources use, else deb.debian.org.
set -euo pipefail

# shellcheck source=scripts/private-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/private-apt.sh"

ALL_NAMES=(bullseye bookworm trixie backports)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SCRATCH=

usage() {
	echo "usage: $0 DIR [NAME...]  (NAME: ${ALL_NAMES[*]}; default: all)" >&2
	exit 2
}

die() {
	echo "$0: $*" >&2
	exit 1
}

cleanup() {
	if [[ -n $SCRATCH ]]; then
		rm -rf "$SCRATCH"
	fi
}

# The first URI of the host's apt sources (deb822 .sources or one-line .list) that matches the
# extended regex $1; nothing when there is none.
host_mirror() {
	local re=$1 f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		grep -hoE "https?://[^ ]+" "$f" | sed 's:/*$::' | grep -E "$re" | head -n 1 && return 0
	done
	return 0
}

# The suites of a kernel name: "URI SUITE" lines.
suites_of() {
	local name=$1
	case $name in
	bullseye | bookworm | trixie)
		echo "$MIRROR $name"
		echo "$MIRROR $name-updates"
		echo "$SECURITY_MIRROR $name-security"
		;;
	backports)
		echo "$MIRROR trixie-backports"
		;;
	*)
		die "unknown kernel name '$name' (known: ${ALL_NAMES[*]})"
		;;
	esac
}

# Writes DIR/apt/NAME/apt.conf, the private configuration of one kernel's suites
# (scripts/private-apt.sh), and its sources list.
write_apt_conf() {
	local name=$1 root=$APT_ROOT/$1 uri suite
	private_apt_conf "$root"
	: >"$root/sources.list"
	while read -r uri suite; do
		echo "deb [signed-by=$KEYRING] $uri $suite main" >>"$root/sources.list"
	done < <(suites_of "$name")
}

# apt-get/apt-cache with the private configuration of kernel $1.
papt() {
	local name=$1 tool=$2
	shift 2
	APT_CONFIG=$APT_ROOT/$name/apt.conf "$tool" -q "$@"
}

# A field of the candidate version of package $2: papt NAME show, first line of field $3.
field() {
	papt "$1" apt-cache show --no-all-versions "$2" 2>/dev/null |
		sed -n "s/^$3: //p" | head -n 1
}

# The kernel image paths inside a .deb (./boot/vmlinuz-* or ./usr/lib/modules/*/vmlinuz).
images_in() {
	dpkg-deb --fsys-tarfile "$1" | tar -t | grep -E '^\./(boot/vmlinuz-[^/]+|usr/lib/modules/[^/]+/vmlinuz)$' || true
}

fetch_one() {
	local name=$1 dest=$DIR/$1 meta pkg version deb image release binary
	if [[ -f $dest/kernel.env && -e $dest/vmlinuz ]]; then
		# shellcheck disable=SC1091,SC2153 # PACKAGE, VERSION, RELEASE come from kernel.env
		(source "$dest/kernel.env" && echo "$name: $PACKAGE $VERSION (kernel $RELEASE), already fetched")
		return 0
	fi
	write_apt_conf "$name"
	echo "$name: apt-get update ($(suites_of "$name" | awk '{print $2}' | paste -sd ' '))"
	if ! papt "$name" apt-get update >"$APT_ROOT/$name/update.log" 2>&1; then
		cat "$APT_ROOT/$name/update.log" >&2
		die "$name: apt-get update failed (log above; sources: $APT_ROOT/$name/sources.list)"
	fi
	if grep -E '^(W|E):' "$APT_ROOT/$name/update.log" >&2; then
		echo "$0: $name: apt-get update warned (above)" >&2
	fi
	# linux-image-amd64 depends on the newest kernel of the suite: "linux-image-RELEASE (= V)"
	meta=$(field "$name" linux-image-amd64 Depends)
	pkg=$(tr ',' '\n' <<<"$meta" | sed 's/^ *//; s/ .*//' | grep -E '^linux-image-[0-9]' | head -n 1 || true)
	[[ -n $pkg ]] || die "$name: linux-image-amd64 depends on no linux-image-<version> package (Depends: '${meta:-none}')"
	version=$(field "$name" "$pkg" Version)
	[[ -n $version ]] || die "$name: $pkg is not in the suites of $APT_ROOT/$name/sources.list"

	SCRATCH=$(mktemp -d "$DIR/.fetch-$name.XXXXXX")
	(cd "$SCRATCH" && papt "$name" apt-get download "$pkg") >"$SCRATCH/download.log" 2>&1 ||
		{ cat "$SCRATCH/download.log" >&2; die "$name: apt-get download $pkg failed"; }
	deb=$(echo "$SCRATCH"/*.deb)
	image=$(images_in "$deb")
	if [[ -z $image ]]; then
		# from 7.x linux-image-RELEASE is a meta package; the kernel is in linux-binary-RELEASE
		binary=$(field "$name" "$pkg" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//' |
			grep -E '^linux-binary-' | head -n 1 || true)
		[[ -n $binary ]] || die "$name: $pkg holds no kernel image and depends on no linux-binary-* package"
		rm -f "$deb"
		(cd "$SCRATCH" && papt "$name" apt-get download "$binary") >"$SCRATCH/download.log" 2>&1 ||
			{ cat "$SCRATCH/download.log" >&2; die "$name: apt-get download $binary failed"; }
		deb=$(echo "$SCRATCH"/*.deb)
		image=$(images_in "$deb")
		[[ -n $image ]] || die "$name: $binary ($deb) holds no boot/vmlinuz-* nor usr/lib/modules/*/vmlinuz"
	fi
	[[ $(wc -l <<<"$image") == 1 ]] || die "$name: $deb holds several kernel images: $image"
	image=${image#./}
	case $image in
	boot/vmlinuz-*) release=${image#boot/vmlinuz-} ;;
	*) release=$(basename "$(dirname "$image")") ;;
	esac
	mkdir "$SCRATCH/$name"
	# dpkg -x of the image alone: the modules (hundreds of MB) are not needed
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$SCRATCH/$name" "./$image"
	ln -s "$image" "$SCRATCH/$name/vmlinuz"
	printf 'PACKAGE=%s\nVERSION=%s\nRELEASE=%s\nDEB=%s\n' "$pkg" "$version" "$release" \
		"$(basename "$deb")" >"$SCRATCH/$name/kernel.env"
	rm -rf "$dest"
	mv "$SCRATCH/$name" "$dest"
	cleanup
	SCRATCH=
	echo "$name: $pkg $version (kernel $release) -> $dest/vmlinuz"
}

main() {
	(($# >= 1)) || usage
	mkdir -p "$1"
	DIR=$(cd "$1" && pwd)
	shift
	local names=("$@")
	((${#names[@]})) || names=("${ALL_NAMES[@]}")
	[[ -f $KEYRING ]] || die "no $KEYRING (Debian package debian-archive-keyring)"
	command -v dpkg-deb >/dev/null || die "no dpkg-deb"
	MIRROR=${DEBIAN_MIRROR:-$(host_mirror '/debian$')}
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
	SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(host_mirror '/debian-security$')}
	SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
	APT_ROOT=$DIR/apt
	trap cleanup EXIT
	local name
	for name in "${names[@]}"; do
		suites_of "$name" >/dev/null # dies on an unknown name
		fetch_one "$name"
	done
}

main "$@"
