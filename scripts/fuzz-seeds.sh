#!/usr/bin/env bash
# Writes the committed ELF seeds of the fuzz harnesses (tests/fuzz/corpus/elf/): real files cut
# down to what the ELF, unwind and symbol parsers read (headers, .eh_frame, .eh_frame_hdr,
# symbol and version tables, build-id, debug link), so that each is tens of KiB, and two tiny
# objects built here: one with .debug_frame instead of .eh_frame, one without section headers;
# and the Lua heaps of tests/fuzz/corpus/lua_image/ and luajit_image/ (tests/fuzz/lua_image_seeds.c
# and luajit_image_seeds.c, from the build in $BUILD_DIR, default build). Run again when a parser
# starts reading another section.
# Needs binutils, gcc, liblua5.4-dev, libluajit2-5.1-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fuzz/corpus/elf
mkdir -p "$out"
keep=()
for section in .eh_frame .eh_frame_hdr .dynsym .dynstr .gnu.version .gnu.version_d \
	.gnu.version_r .note.gnu.build-id .gnu_debuglink .symtab .strtab; do
	keep+=(--only-section="$section")
done
# objcopy empties the segments whose sections went (.text): give each its original
# addresses and memory size back, with no file bytes, or no FDE lies in executable code
restore_segments() { # original cut
	python3 - "$1" "$2" <<'PY'
import struct, sys
def loads(data):
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    offsets = [phoff + i * phentsize for i in range(phnum)]
    return [o for o in offsets if struct.unpack_from("<I", data, o)[0] == 1]  # PT_LOAD
original = open(sys.argv[1], "rb").read()
cut = bytearray(open(sys.argv[2], "rb").read())
for o_orig, o_cut in zip(loads(original), loads(cut)):
    if struct.unpack_from("<Q", cut, o_cut + 0x28)[0] == 0:  # p_memsz
        vaddr, paddr = struct.unpack_from("<QQ", original, o_orig + 0x10)
        memsz, = struct.unpack_from("<Q", original, o_orig + 0x28)
        struct.pack_into("<QQQQ", cut, o_cut + 0x10, vaddr, paddr, 0, memsz)
open(sys.argv[2], "wb").write(cut)
PY
}
cut_down() { # source name
	objcopy "${keep[@]}" "$1" "$out/$2" 2>/dev/null
	restore_segments "$1" "$out/$2"
}
cut_down /usr/lib/x86_64-linux-gnu/liblua5.4.so.0 liblua5.4.so.0
cut_down /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2 libluajit-5.1.so.2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/tiny.c" <<'C'
int tiny_leaf(int x) { return x * 3 + 1; }
int tiny_caller(int x) { return tiny_leaf(x) + tiny_leaf(x + 1); }
C
# .debug_frame (no .eh_frame): what -fno-asynchronous-unwind-tables -g gives
gcc -O1 -g -ffile-prefix-map="$work"=. -fno-asynchronous-unwind-tables -shared -fPIC -Wl,--build-id \
	-o "$work/debug_frame.so" "$work/tiny.c"
objcopy 2>/dev/null --only-section=.debug_frame --only-section=.symtab --only-section=.strtab \
	--only-section=.note.gnu.build-id "$work/debug_frame.so" "$out/debug_frame.so"
restore_segments "$work/debug_frame.so" "$out/debug_frame.so"
# no section header table (as sstrip leaves files)
gcc -O1 -shared -fPIC -Wl,--build-id -o "$work/no_sections.so" "$work/tiny.c"
tests/fixtures/tools/drop_section_headers.py "$work/no_sections.so" "$out/no_sections.so"
ls -l "$out"
# The Lua symbolization harnesses: real Lua 5.4 and LuaJIT heaps, from the build's generators
"${BUILD_DIR:-build}/lua_image_seeds" tests/fuzz/corpus/lua_image
"${BUILD_DIR:-build}/luajit_image_seeds" tests/fuzz/corpus/luajit_image
