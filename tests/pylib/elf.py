# SPDX-License-Identifier: MIT
"""Reading an ELF file's symbols and machine code, for oracles independent of lua-perf."""
import struct


class Elf:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = data = f.read()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        (self.e_type, _, _, self.entry, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
         shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        self.phdrs = []
        for i in range(phnum):
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = struct.unpack_from(
                "<IIQQQQQQ", data, phoff + i * phentsize)
            self.phdrs.append((p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
        self.sections = {}
        shdrs = []
        if shoff and shnum:
            shdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                     for i in range(shnum)]
            names_off = shdrs[shstrndx][4]
            for sh in shdrs:
                self.sections[self._cstr(names_off + sh[0])] = sh
        self.symbols = []  # (addr, size, name), functions only
        for secname in (".symtab", ".dynsym"):
            sh = self.sections.get(secname)
            if not sh:
                continue
            _, _, _, _, off, size, link, _, _, entsize = sh
            stroff = shdrs[link][4]
            for k in range(size // entsize):
                st_name, st_info, _, st_shndx, st_value, st_size = struct.unpack_from(
                    "<IBBHQQ", data, off + k * entsize)
                if st_shndx == 0 or (st_info & 0xF) not in (2, 10) or st_value == 0:
                    continue
                self.symbols.append((st_value, st_size, self._cstr(stroff + st_name)))
        self.symbols.sort()
        self.fde_starts = self._fde_starts()

    def _cstr(self, off):
        end = self.data.index(b"\0", off)
        return self.data[off:end].decode("utf-8", "replace")

    def has_section(self, name):
        return name in self.sections

    def vaddr_to_off(self, vaddr):
        for p_type, _, p_offset, p_vaddr, p_filesz, _ in self.phdrs:
            if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:
                return vaddr - p_vaddr + p_offset
        return None

    def text_offset_is_vaddr(self):
        """True when every executable PT_LOAD has p_offset == p_vaddr, so an offset printed
        by the profiler means the same thing whether it is a file offset or an ELF address."""
        return all(p[2] == p[3] for p in self.phdrs if p[0] == 1 and p[1] & 1)

    def lookup(self, addr):
        """Name of the function symbol containing addr (sized symbols only)."""
        best = None
        for a, size, name in self.symbols:
            if a > addr:
                break
            if addr < a + size:
                best = name
        return best

    def _decode(self, pos, enc, section_vaddr, section_off):
        fmt = enc & 0x0F
        size, code = {0x03: (4, "<I"), 0x0B: (4, "<i"), 0x04: (8, "<Q"), 0x0C: (8, "<q"),
                      0x02: (2, "<H"), 0x0A: (2, "<h")}[fmt]
        (v,) = struct.unpack_from(code, self.data, pos)
        app = enc & 0x70
        if app == 0x10:    # pcrel
            v += section_vaddr + (pos - section_off)
        elif app == 0x30:  # datarel: relative to .eh_frame_hdr
            v += section_vaddr
        elif app != 0:
            raise ValueError(f"unsupported pointer encoding 0x{enc:x}")
        return v & 0xFFFFFFFFFFFFFFFF, pos + size

    def _fde_starts(self):
        """Sorted start addresses of all FDEs, from .eh_frame_hdr's binary search table."""
        hdr = [p for p in self.phdrs if p[0] == 0x6474E550]  # PT_GNU_EH_FRAME
        if not hdr:
            return []
        _, _, off, vaddr, _, _ = hdr[0]
        version, ptr_enc, count_enc, table_enc = self.data[off:off + 4]
        if version != 1:
            return []
        pos = off + 4
        _, pos = self._decode(pos, ptr_enc, vaddr, off)
        count, pos = self._decode(pos, count_enc, vaddr, off)
        starts = []
        for _ in range(count):
            loc, pos = self._decode(pos, table_enc, vaddr, off)
            _, pos = self._decode(pos, table_enc, vaddr, off)
            starts.append(loc)
        return sorted(starts)

    def function_bounds(self, addr):
        """[start, next FDE start) of the FDE-covered function containing addr (approximate
        end: the next function's start)."""
        lo = None
        for s in self.fde_starts:
            if s <= addr:
                lo = s
            else:
                return lo, s
        return lo, None

    def main_from_start(self):
        """Address of main in a PIE/non-PIE executable whose _start is glibc's: the first
        `lea disp32(%rip), %rdi` (or `mov $imm32, %rdi`) in _start loads it."""
        off = self.vaddr_to_off(self.entry)
        code = self.data[off:off + 64]
        for i in range(len(code) - 7):
            if code[i:i + 3] == b"\x48\x8d\x3d":
                (disp,) = struct.unpack_from("<i", code, i + 3)
                return self.entry + i + 7 + disp
            if code[i:i + 3] == b"\x48\xc7\xc7":
                (imm,) = struct.unpack_from("<i", code, i + 3)
                return imm
        return None
