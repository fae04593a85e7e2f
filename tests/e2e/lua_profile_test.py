#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end Lua profiling tests: run a workload of tests/fixtures/lua/ under a stock Debian Lua
interpreter (or the embedding program), profile it with lua-perf, check the mixed C/Lua stacks.

    lua_profile_test.py --lua-perf BIN --scripts DIR --interp I [--embed E] SCENARIO [--relative]
    lua_profile_test.py --lua-perf BIN nonlua --fixture FIXTURE_DEEP
    lua_profile_test.py self-check --scripts DIR --embed E

Interpreters (I): 51, 53, 54 = /usr/bin/lua5.1, lua5.3, lua5.4 (stripped, VM linked in: frames
`lua5.4+0x...` or exported API names); embed54 = tests/fixtures/lua/lua_embed.c, the VM in Debian's
liblua5.4.so.0 (frames `liblua5.4.so.0.0.0+0x...`).

How the stripped binaries' C functions are known without symbols:
  - <table.sort>, <string.format>, <coroutine.resume>, <pcall>, ...: the C function that the
    library registers under that name, read from its luaL_Reg array ({name, func} pairs, which
    are R_X86_64_RELATIVE relocations in these PIE files), as an FDE (.eh_frame_hdr) range;
  - <VM>: the native function that runs Lua code (luaV_execute): the innermost native frame of
    the samples whose leaf is a Lua frame (it is the sampled instruction's function);
  - lua_callk/lua_call, lua_pcallk/lua_pcall, lua_resume: exported, so printed by name;
  - <vm>: any other frame of the VM file (`<file>+0x...` or an exported name).
Frames are compared by function (their FDE), never by offset: offsets are call sites.

Scenarios (workload; the expected frames, root first, after the complete native start-up
`_start;__libc_start_main;__libc_start_call_main;main;<vm/program frames>*;<VM>`):
  deep       deep_recursion.lua  L:main;L:deep_workload;L:descend x120;L:leaf_burn
  coroutines coroutines.lua      L:main;L:coro_workload;R;L:coro_a_body;R;L:coro_b_body;R;
                                 L:coro_c_body;L:leaf_burn
             with R = <vm>*;<coroutine.resume>;<vm>*;lua_resume;<vm>*;<VM>
  pcall      pcall_error.lua     L:main;L:pcall_workload;<vm>*;<pcall>;<vm>*;lua_pcall[k];<vm>*;
                                 <VM>;L:Worker:protected_run;L:leaf_burn
  sort       sort_comparator.lua L:main;L:sort_workload;<vm>*;<table.sort>;<vm>*;lua_call[k];<vm>*;
                                 <VM>;L:slow_compare
  gsub       gsub_callback.lua   L:main;L:gsub_workload;<vm>*;<string.gsub>;<vm>*;lua_call[k];
                                 <vm>*;<VM>;L:replace_cb
  index      index_metamethod.lua L:main;L:index_workload;<vm>*;<VM>;L:index_handler
  tailcall   tail_calls.lua      L:main;L:tail_workload;L:tail_target (the tail callers tail_first
                                 and tail_middle are replaced by their callee, as in PUC Lua's
                                 CallInfo chain, and leave no placeholder frame)
  strings    string_builtins.lua L:main;L:string_workload;L:Report.format_rows;<vm>*;
                                 <string.format>;... and likewise Report.pad_rows/<string.rep>,
                                 Report.join_rows/<table.concat>
  ratio      split_ratio.lua     L:main;L:ratio_workload;L:ratio_f and ...;L:ratio_g, and
                                 samples(ratio_f) / samples(ratio_g) = 3.0 +/- 5%
  lines      string_builtins.lua, profiled with --lines: each Lua frame's line is the line it
             executes: main at the string_workload(...) call, string_workload at the
             Report.<worker>(...) call, the worker at its string.format/string.rep/table.concat
             call (5.4 saves the pc only at calls and other points that may raise errors, so the
             lines checked are calls).
Each Lua frame is `L:<name>@<chunk>:<line>`, chunk = the script path as passed to the
interpreter (a temporary copy: `<tmp>/<script>`, or `<script>` with --relative, run from its
directory), line = the line of the function's definition (found in the script text by the forms
`local function NAME(`, `function NAME(`, `NAME = function(`), 0 for main.

Hot samples: those whose user leaf (kernel `_[k]` frames ignored) is the chain's last Lua frame
(`L:leaf_burn@...`: the workloads burn the CPU in pure Lua there, measured > 99% of the time in
the VM itself), or, for strings/lines, those whose stack holds the builtin's C function (its own
code, the API functions and libc it calls: measured ~5% of the time in the builtin's own code,
hence the subtree). Asserted for each chain:
  (a) at least MIN hot samples (1000; ratio_g 300; each builtin 250);
  (b) >= 99% of them are exactly the expected whole stack (start-up, Lua frames with name, chunk
      and line, native frames in between as above, nothing after a Lua leaf, no Lua frame below
      a builtin);
  (c) >= 99% of them have one and the same native frame sequence (by function);
and for the whole profile: lua-perf exited 0 with a summary, >= 99% of the samples with user
frames are complete (root _start), every Lua frame is well formed, names a function defined in
the script, with its definition line (with --lines: a line from there to the end of the file),
and has the script as chunk (`L:?@?:0` tolerated in <= 1% of samples), and the workload is still
running.

nonlua: fixture_deep (native only) profiled 3 s: exit 0, a stderr line saying that no Lua
runtime was found (it mentions Lua, beyond the program's name, and no/not/none/without or
"0 Lua"), no Lua frame, and the fixture's native chain main;run_deep;recurse*N;burn_deep in
>= 99% of its hot samples.

self-check (no root, no lua-perf): every workload runs under lua5.1, lua5.3, lua5.4 and the
embedding program (prints its version and "ready", exits 0 after 0.3 s); the embedding program
has its VM in liblua5.4; each VM file's luaL_Reg arrays name the builtins used above; every
function and line the scenarios expect is found exactly once in its script.

Exit status: 0 pass, 1 fail, 77 skipped (not root). Python 3 standard library only; shares the
process, fold and ELF helpers of native_profile_test.py and nginx_profile_test.py.
"""
import argparse
import bisect
import collections
import os
import re
import shutil
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
import native_profile_test as npt  # noqa: E402
import nginx_profile_test as ngt  # noqa: E402
from pylib.paths import fixture  # noqa: E402
from native_profile_test import (  # noqa: E402
    Child, Elf, M, TestFailure, compress, exact, fail, log, one, parse_fold, some,
    split_offset, times, top_stacks, user_part)

SKIP = npt.SKIP
MIN_SHARE = npt.MIN_SHARE
FREQ = npt.FREQ
DURATION = 3
MIN_HOT = 1000          # of ~3000 possible samples in 3 s at 997 Hz
MIN_HOT_MINOR = 300     # ratio_g: a quarter of the CPU
MIN_HOT_BUILTIN = 250   # strings: a third of the CPU each, see string_builtins.lua
RATIO = 3.0
RATIO_TOLERANCE = 0.05
MAX_UNKNOWN_LUA = 0.01  # share of samples allowed to hold `L:?@?:0`

INTERPRETERS = {
    "51": {"exe": "/usr/bin/lua5.1", "version": "Lua 5.1", "package": "lua5.1"},
    "53": {"exe": "/usr/bin/lua5.3", "version": "Lua 5.3", "package": "lua5.3"},
    "54": {"exe": "/usr/bin/lua5.4", "version": "Lua 5.4", "package": "lua5.4"},
    "52": {"exe": "/usr/bin/lua5.2", "version": "Lua 5.2", "package": "lua5.2"},
    "embed54": {"exe": None, "version": "Lua 5.4",
                "package": "liblua5.4-dev (at build time; then rebuild: lua_embed)"},
}

# Library functions: (library, name) -> names in the library's luaL_Reg array that identify it.
LIBRARIES = {
    "string": {"format", "gsub", "rep", "byte", "sub"},
    "table": {"concat", "insert", "sort"},
    "coroutine": {"create", "resume", "yield"},
    "base": {"pcall", "error", "setmetatable", "tostring"},
}
BUILTINS = {  # as written in Lua -> (library, registered name)
    "string.format": ("string", "format"),
    "string.rep": ("string", "rep"),
    "string.gsub": ("string", "gsub"),
    "table.concat": ("table", "concat"),
    "table.sort": ("table", "sort"),
    "coroutine.resume": ("coroutine", "resume"),
    "pcall": ("base", "pcall"),
}
CALL_API = ("lua_callk", "lua_call")      # 5.3/5.4 lua_call is a macro for lua_callk
PCALL_API = ("lua_pcallk", "lua_pcall")
RESUME_API = ("lua_resume",)


# --------------------------------------------------------------------------------------------
# Scenarios


class L:
    """An expected Lua frame. count: how many times in a row (an int, or the key of a number the
    workload prints before "ready"). current: text of the line the frame executes (--lines)."""

    def __init__(self, name, count=1, current=None):
        self.name, self.count, self.current = name, count, current


class C:
    """Native frames between two Lua frames: VM-file frames through the C function registered
    as `builtin` (if any), then the exported `api` function (if any), ending in the VM loop."""

    def __init__(self, builtin=None, api=()):
        self.builtin, self.api = builtin, api


class LeafC:
    """Native frames after the last Lua frame: VM-file frames, then the C function registered as
    `builtin`, then whatever it runs (no Lua frame). The hot samples are that subtree."""

    def __init__(self, builtin):
        self.builtin = builtin


# The name lua-perf gives the interpreter loop it found in a stripped VM.
VM_LOOP_NAME = "luaV_execute"

def string_chains(lines=False):
    def cur(text):
        return text if lines else None
    main_frame = L("main", current=cur("string_workload(seconds"))
    out = []
    for worker, call, builtin, line in (
            ("Report.format_rows", "Report.format_rows(FORMAT_ROWS)", "string.format",
             "row = string.format("),
            ("Report.pad_rows", "Report.pad_rows(PAD_ROWS)", "string.rep", "pad = string.rep("),
            ("Report.join_rows", "Report.join_rows(JOIN_ROWS)", "table.concat",
             "line = table.concat(")):
        out.append([main_frame, L("string_workload", current=cur(call)),
                    L(worker, current=cur(line)), LeafC(builtin)])
    return out


class Scenario:
    def __init__(self, script, chains, min_hot=MIN_HOT, lines=False, absent=()):
        self.script = script
        self.chains = chains      # list of chains (lists of L / C / LeafC)
        self.min_hot = min_hot    # an int, or a list with one per chain
        self.lines = lines        # run lua-perf with --lines
        self.absent = absent      # function names that must not appear in hot samples


RESUME = C("coroutine.resume", RESUME_API)
SCENARIOS = {
    "deep": Scenario("deep_recursion.lua", [[
        L("main"), L("deep_workload"), L("descend", count="depth"), L("leaf_burn")]]),
    "coroutines": Scenario("coroutines.lua", [[
        L("main"), L("coro_workload"), RESUME, L("coro_a_body"), RESUME, L("coro_b_body"),
        RESUME, L("coro_c_body"), L("leaf_burn")]]),
    "pcall": Scenario("pcall_error.lua", [[
        L("main"), L("pcall_workload"), C("pcall", PCALL_API), L("Worker:protected_run"),
        L("leaf_burn")]]),
    "sort": Scenario("sort_comparator.lua", [[
        L("main"), L("sort_workload"), C("table.sort", CALL_API), L("slow_compare")]]),
    "gsub": Scenario("gsub_callback.lua", [[
        L("main"), L("gsub_workload"), C("string.gsub", CALL_API), L("replace_cb")]]),
    "index": Scenario("index_metamethod.lua", [[
        L("main"), L("index_workload"), C(), L("index_handler")]]),
    "tailcall": Scenario("tail_calls.lua", [[
        L("main"), L("tail_workload"), L("tail_target")]], absent=("tail_first", "tail_middle")),
    "strings": Scenario("string_builtins.lua", string_chains(), min_hot=MIN_HOT_BUILTIN),
    "ratio": Scenario("split_ratio.lua", [
        [L("main"), L("ratio_workload"), L("ratio_f")],
        [L("main"), L("ratio_workload"), L("ratio_g")]], min_hot=[MIN_HOT, MIN_HOT_MINOR]),
    "lines": Scenario("string_builtins.lua", string_chains(lines=True), min_hot=MIN_HOT_BUILTIN,
                      lines=True),
}


# --------------------------------------------------------------------------------------------
# Script text: definition lines, the lines of statements


DEF_FORMS = (r"^\s*(?:local\s+)?function\s+(?P<n>[A-Za-z_][\w.:]*)\s*\(",
             r"^\s*(?:local\s+)?(?P<n>[A-Za-z_][\w.]*)\s*=\s*function\s*\(")


def script_definitions(text):
    """{function name: [definition lines]} for the definition forms the workloads use."""
    defs = collections.defaultdict(list)
    for n, line in enumerate(text.split("\n"), 1):
        for form in DEF_FORMS:
            m = re.match(form, line)
            if m:
                defs[m.group("n")].append(n)
    return defs


def definition_line(text, name, script):
    if name == "main":
        return 0
    hits = script_definitions(text).get(name, [])
    if len(hits) != 1:
        fail(f"{script}: {len(hits)} definitions of {name} (want exactly one): workload bug")
    return hits[0]


def line_containing(text, needle, script):
    hits = [n for n, line in enumerate(text.split("\n"), 1) if needle in line]
    if len(hits) != 1:
        fail(f"{script}: {len(hits)} lines contain {needle!r} (want exactly one): workload bug")
    return hits[0]


def parse_lua_frame(fr):
    """'L:Obj:method@/x/app.lua:12' -> ('Obj:method', '/x/app.lua', 12), None if malformed."""
    m = re.fullmatch(r"L:([^@]+)@(.+):(0|[1-9][0-9]*)", fr)
    return (m.group(1), m.group(2), int(m.group(3))) if m else None


# --------------------------------------------------------------------------------------------
# ELF files: functions by FDE, exported names, library functions from luaL_Reg arrays


class Binary:
    """An ELF file as it appears in frames: `<basename>+0x<addr>` or its exported names."""

    def __init__(self, path, aliases=()):
        self.path = path
        self.elf = Elf(path)
        self.bases = {os.path.basename(path)} | set(aliases)
        self.base = os.path.basename(path)
        # name -> address: exported names, and every function when a debug file is installed
        # (Debian -dbgsym packages: lua-perf would then name the internal functions too).
        self.addrs = {}
        for addr, _, name in self.debug_symbols() + self.elf.symbols:
            self.addrs[name] = addr
        self.names = set(self.addrs)
        self.starts = self.elf.fde_starts
        self._regs = None

    def debug_symbols(self):
        """Function symbols of /usr/lib/debug/.build-id/xx/yyyy.debug, if installed."""
        note = self.elf.sections.get(".note.gnu.build-id")
        if not note:
            return []
        off, size = note[4], note[5]
        namesz, descsz, _ = struct.unpack_from("<III", self.elf.data, off)
        start = off + 12 + ((namesz + 3) & ~3)
        build_id = self.elf.data[start:start + min(descsz, size)].hex()
        path = f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"
        try:
            return Elf(path).symbols
        except (OSError, ValueError, struct.error):
            return []

    def offset_of(self, frame):
        """The address a frame of this file stands for: `<base>+0xADDR`, or a known name."""
        so = split_offset(frame)
        if so:
            return so[1] if so[0] in self.bases else None
        return self.addrs.get(frame)

    def owns(self, frame):
        return self.offset_of(frame) is not None or frame == VM_LOOP_NAME

    def fde(self, addr):
        """Start of the FDE-covered function containing addr (None outside all of them)."""
        i = bisect.bisect_right(self.starts, addr) - 1
        return self.starts[i] if i >= 0 else None

    def function_of(self, frame):
        off = self.offset_of(frame)
        return None if off is None else self.fde(off)

    def _relative_relocs(self):
        rel = {}
        for sh in self.elf.sections.values():
            if sh[1] != 4:  # SHT_RELA
                continue
            off, size, entsize = sh[4], sh[5], sh[9] or 24
            for k in range(size // entsize):
                r_offset, r_info, r_addend = struct.unpack_from("<QQq", self.elf.data,
                                                                off + k * entsize)
                if r_info & 0xFFFFFFFF == 8:  # R_X86_64_RELATIVE
                    rel[r_offset] = r_addend
        return rel

    def _cstring(self, vaddr):
        off = self.elf.vaddr_to_off(vaddr)
        if off is None:
            return None
        end = self.elf.data.find(b"\0", off, off + 64)
        if end < 0:
            return None
        s = self.elf.data[off:end].decode("latin-1")
        return s if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) else None

    def registrations(self):
        """The luaL_Reg arrays: lists of (name, function address or None)."""
        if self._regs is not None:
            return self._regs
        rel = self._relative_relocs()
        exec_ranges = [(p[3], p[3] + p[5]) for p in self.elf.phdrs if p[0] == 1 and p[1] & 1]
        entries = {}
        for o, a in rel.items():
            name = self._cstring(a)
            if name is None:
                continue
            f = rel.get(o + 8)
            if f is not None and any(lo <= f < hi for lo, hi in exec_ranges):
                entries[o] = (name, f)
            elif f is None:  # {"_G", NULL} placeholders
                fo = self.elf.vaddr_to_off(o + 8)
                if fo is not None and self.elf.data[fo:fo + 8] == bytes(8):
                    entries[o] = (name, None)
        self._regs = []
        for o in sorted(entries):
            if o - 16 in entries:
                continue
            arr, p = [], o
            while p in entries:
                arr.append(entries[p])
                p += 16
            self._regs.append(arr)
        return self._regs

    def builtin(self, lua_name):
        """(start, end) of the C function registered as lua_name ("table.sort")."""
        lib, name = BUILTINS[lua_name]
        arrays = [a for a in self.registrations() if LIBRARIES[lib] <= {n for n, _ in a}]
        if len(arrays) != 1:
            fail(f"{self.path}: {len(arrays)} luaL_Reg arrays of the {lib} library found "
                 f"(want exactly one): cannot tell which function is {lua_name}")
        funcs = [f for n, f in arrays[0] if n == name and f]
        if len(funcs) != 1:
            fail(f"{self.path}: the {lib} library registers {len(funcs)} functions {name!r}")
        lo, hi = self.elf.function_bounds(funcs[0])
        if lo != funcs[0]:
            fail(f"{self.path}: {lua_name} at 0x{funcs[0]:x} does not start an FDE")
        return lo, hi


def soname(elf):
    """DT_SONAME of a shared library, or None."""
    dyn = elf.sections.get(".dynamic")
    dynstr = elf.sections.get(".dynstr")
    if not dyn or not dynstr:
        return None
    off, size = dyn[4], dyn[5]
    for k in range(size // 16):
        tag, val = struct.unpack_from("<qQ", elf.data, off + 16 * k)
        if tag == 0:
            break
        if tag == 14:  # DT_SONAME
            return elf._cstr(dynstr[4] + val)
    return None


def mapped_files(pid):
    """Paths of the files mapped executable in a process."""
    paths = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                path = parts[5].rstrip("\n")
                if path not in paths:
                    paths.append(path)
    return paths


def vm_file_of(interp, pid, exe):
    """The file holding the Lua VM in the running workload."""
    maps = mapped_files(pid)
    libs = [p for p in maps if re.match(r"liblua5\.\d", os.path.basename(p))]
    if interp == "embed54":
        if len(libs) != 1:
            fail(f"lua_embed (PID {pid}) maps {libs or 'no liblua'}: want exactly one liblua5.4")
        bin_ = Binary(libs[0])
        so = soname(bin_.elf)
        if so:
            bin_.bases.add(so)
        return bin_
    if libs:
        fail(f"{exe} maps {libs}: expected the VM linked into the executable")
    return Binary(exe)


# --------------------------------------------------------------------------------------------
# Matching


class Context:
    """Everything a chain is matched against: the files, the script, the VM loop function."""

    def __init__(self, exe, vm, chunk, text, script, info, lines):
        self.exe, self.vm = exe, vm
        self.chunk, self.text, self.script, self.info, self.lines = chunk, text, script, info, lines
        self.efr = ngt.ElfFrames(exe.path)
        self.prefix = ngt.startup_prefix(self.efr)
        self.vm_loop = None  # FDE start of luaV_execute in vm, set by find_vm_loop()

    def lua_text(self, item):
        if self.lines and item.current is not None:
            line = line_containing(self.text, item.current, self.script)
        else:
            line = definition_line(self.text, item.name, self.script)
        return f"L:{item.name}@{self.chunk}:{line}"

    def count(self, item):
        if isinstance(item.count, int):
            return item.count
        val = self.info.get(item.count)
        if val is None or not val.isdigit():
            fail(f"the workload printed no '{item.count} N' line before 'ready'")
        return int(val)

    # Frame matchers
    def vm_frame(self):
        return M(f"<{self.vm.base} frame>", self.vm.owns)

    def host_frame(self):
        files = sorted({self.exe.base, self.vm.base})
        return M(f"<{'|'.join(files)} frame>", lambda fr: self.vm.owns(fr) or self.exe.owns(fr))

    def loop_frame(self):
        if self.vm_loop == VM_LOOP_NAME:
            return M(f"<VM: {VM_LOOP_NAME}>", lambda fr: fr == VM_LOOP_NAME)
        return M(f"<VM: {self.vm.base}+0x{self.vm_loop:x}..>",
                 lambda fr: self.vm.function_of(fr) == self.vm_loop)

    def builtin_frame(self, lua_name):
        lo, _ = self.vm.builtin(lua_name)
        return M(f"<{lua_name}: {self.vm.base}+0x{lo:x}..>",
                 lambda fr: self.vm.function_of(fr) == lo)

    def chain_spec(self, chain):
        """The whole expected user stack as a native_profile_test chain spec."""
        spec = list(self.prefix) + [some(self.host_frame(), 0, 64), one(self.loop_frame())]
        vmf = self.vm_frame()
        for item in chain:
            if isinstance(item, L):
                spec.append(times(exact(self.lua_text(item)), self.count(item)))
            elif isinstance(item, C):
                if item.builtin:
                    spec += [some(vmf, 0, 12), one(self.builtin_frame(item.builtin))]
                if item.api:
                    spec += [some(vmf, 0, 12), one(M("|".join(item.api),
                                                     lambda fr, a=item.api: fr in a))]
                spec += [some(vmf, 0, 12), one(self.loop_frame())]
            else:
                spec += [some(vmf, 0, 12), one(self.builtin_frame(item.builtin)),
                         some(M("<not Lua>", lambda fr: not fr.startswith("L:")
                                and fr not in ("[unknown]", "[no stack]")), 0, 512)]
        return spec

    def is_hot(self, chain):
        """Predicate on user stacks: the chain's hot samples."""
        last = chain[-1]
        if isinstance(last, L):
            head = f"L:{last.name}@"
            return lambda f: f[-1].startswith(head)
        lo, _ = self.vm.builtin(last.builtin)
        return lambda f: any(self.vm.function_of(fr) == lo for fr in f)

    def skeleton(self, frames, chain):
        """The frames by function (FDE start), up to the builtin for a LeafC chain."""
        out = []
        stop = self.vm.builtin(chain[-1].builtin)[0] if isinstance(chain[-1], LeafC) else None
        for fr in frames:
            key = fr
            for b in (self.vm, self.exe):
                off = b.offset_of(fr)
                if off is not None:
                    key = f"{b.base}@0x{b.fde(off) or 0:x}"
                    break
            out.append(key)
            if stop is not None and self.vm.function_of(fr) == stop:
                break
        return tuple(out)


def find_vm_loop(ctx, stacks):
    """The VM's interpreter loop: the innermost native frame of samples with a Lua leaf. lua-perf
    names it luaV_execute even in stripped binaries (it finds it to walk Lua frames); the test
    then keeps the name as its key instead of an address."""
    inner = collections.Counter()
    for f, c in stacks:
        u = user_part(f)
        if not u or not u[-1].startswith("L:"):
            continue
        natives = [fr for fr in u if not fr.startswith("L:")]
        if natives:
            fn = VM_LOOP_NAME if natives[-1] == VM_LOOP_NAME else ctx.vm.function_of(natives[-1])
            inner[(fn, natives[-1])] += c
    if not inner:
        with_lua = sum(c for f, c in stacks if any(fr.startswith("L:") for fr in f))
        if with_lua:
            fail(f"{with_lua} samples hold Lua frames but none ends in one, although the "
                 "workload burns most of its CPU in pure Lua code: are the Lua frames spliced "
                 "right after the native frame of the VM loop that runs them?\n"
                 + top_stacks(stacks))
        fail("no sample holds a Lua frame (`L:...`): lua-perf printed no Lua frames\n"
             + top_stacks(stacks))
    by_fn = collections.Counter()
    for (fn, _), c in inner.items():
        by_fn[fn] += c
    fn, n = by_fn.most_common(1)[0]
    total = sum(by_fn.values())
    if fn is None:
        fail(f"the native frame before a Lua leaf is mostly not in {ctx.vm.base}: "
             f"{[fr for (f_, fr), _ in inner.most_common(5)]}\n" + top_stacks(stacks))
    where = fn if fn == VM_LOOP_NAME else f"{ctx.vm.base}+0x{fn:x}"
    log(f"VM loop (innermost native frame of {total} samples with a Lua leaf): "
        f"{where} in {n} ({n / total:.2%})")
    ctx.vm_loop = fn


def check_chain(ctx, stacks, chain, min_hot, label, absent=()):
    users = [(user_part(f), c) for f, c in stacks if user_part(f)]
    hot_pred = ctx.is_hot(chain)
    hot = [(f, c) for f, c in users if hot_pred(f)]
    n_hot = sum(c for _, c in hot)
    spec = ctx.chain_spec(chain)
    desc = npt.spec_desc(spec)
    log(f"{label}: {n_hot} hot samples of {sum(c for _, c in users)}; expected stack:\n  {desc}")
    if n_hot < min_hot:
        fail(f"{label}: only {n_hot} hot samples (want >= {min_hot})\n"
             + top_stacks(users, title="user stacks"))
    ok = sum(c for f, c in hot if npt.full_match(f, spec))
    skeletons = collections.Counter()
    for f, c in hot:
        skeletons[ctx.skeleton(f, chain)] += c
    common, n_common = skeletons.most_common(1)[0]
    seen_absent = collections.Counter()
    for f, c in hot:
        for fr in f:
            parsed = parse_lua_frame(fr)
            if parsed and parsed[0] in absent:
                seen_absent[fr] += c
    log(f"  exact stack: {ok}/{n_hot} = {ok / n_hot:.2%}; "
        f"one native sequence: {n_common}/{n_hot} = {n_common / n_hot:.2%}")
    problems = []
    if ok < MIN_SHARE * n_hot:
        problems.append(f"(b) only {ok / n_hot:.2%} of hot samples are exactly the expected stack")
    if n_common < MIN_SHARE * n_hot:
        problems.append(f"(c) only {n_common / n_hot:.2%} of hot samples share one native frame "
                        "sequence (by function)")
    if seen_absent:
        problems.append(f"frames that must not appear: {dict(seen_absent)}")
    if problems:
        bad = [(f, c) for f, c in hot if not npt.full_match(f, spec)]
        hints = [f"  {c:7d}  {npt.first_mismatch(f, spec)}\n           {compress(f)}"
                 for f, c in sorted(bad, key=lambda s: -s[1])[:8]]
        variants = [f"  {c:7d}  {compress(s)}" for s, c in skeletons.most_common(4)]
        fail(f"{label}: " + "; ".join(problems) + f"\n  expected: {desc}\n"
             + top_stacks(hot, title="hot stacks") + "\n  most common deviations:\n"
             + "\n".join(hints or ["  (none)"]) + "\n  native sequences (by function):\n"
             + "\n".join(variants))
    return n_hot


def check_lua_frames(ctx, stacks):
    """Every Lua frame: well formed, the script's chunk, a function the script defines, and the
    line of its definition (with --lines: a line from its definition to the end of the file)."""
    defs = script_definitions(ctx.text)
    nlines = ctx.text.count("\n") + 1
    bad = collections.Counter()
    unknown = 0
    total = sum(c for _, c in stacks)
    n_lua = 0
    for f, c in stacks:
        has_unknown = False
        for fr in f:
            if not fr.startswith("L:"):
                continue
            n_lua += c
            if fr == "L:?@?:0":
                has_unknown = True
                continue
            parsed = parse_lua_frame(fr)
            if parsed is None:
                bad[f"malformed: {fr}"] += c
                continue
            name, chunk, line = parsed
            if chunk != ctx.chunk:
                bad[f"chunk is not {ctx.chunk!r}: {fr}"] += c
            elif name != "main" and name not in defs:
                bad[f"{name!r} is no function of the script: {fr}"] += c
            else:
                defined = 0 if name == "main" else defs[name][0]
                if ctx.lines and not defined <= line <= nlines:
                    bad[f"line outside the function ({defined}..{nlines}): {fr}"] += c
                elif not ctx.lines and line != defined:
                    bad[f"not the definition line {defined}: {fr}"] += c
        unknown += c if has_unknown else 0
    log(f"Lua frames: {n_lua} in {total} samples; {unknown} samples with L:?@?:0")
    if bad:
        fail("wrong Lua frames:\n" + "\n".join(f"  {c:7d}  {k}" for k, c in bad.most_common(12)))
    if unknown > MAX_UNKNOWN_LUA * total:
        fail(f"{unknown}/{total} samples hold an unresolved Lua frame L:?@?:0 "
             f"(allowed: {MAX_UNKNOWN_LUA:.0%}; the workload keeps all its functions alive)")


def check_ratio(ctx, stacks):
    counts = {}
    for name in ("ratio_f", "ratio_g"):
        head = f"L:{name}@"
        counts[name] = sum(c for f, c in stacks if user_part(f) and user_part(f)[-1].startswith(head))
    if not counts["ratio_g"]:
        fail(f"no sample in ratio_g: {counts}")
    ratio = counts["ratio_f"] / counts["ratio_g"]
    log(f"ratio_f : ratio_g = {counts['ratio_f']} : {counts['ratio_g']} = {ratio:.3f} "
        f"(want {RATIO} +/- {RATIO_TOLERANCE:.0%})")
    if abs(ratio / RATIO - 1) > RATIO_TOLERANCE:
        fail(f"sample ratio ratio_f/ratio_g = {ratio:.3f}, want {RATIO} +/- {RATIO_TOLERANCE:.0%}"
             f" (the workload's CPU split is 3:1 within 1%)")


# --------------------------------------------------------------------------------------------
# Running


def interpreter_argv(args, interp):
    info = INTERPRETERS[interp]
    exe = info["exe"] or args.embed
    if not exe or not os.access(exe, os.X_OK):
        fail(f"interpreter {interp}: {exe!r} not found or not executable "
             f"(Debian package {info['package']})")
    return exe


def start_workload(args, interp, tmp, script_name, relative=False, seconds=None, stdin=False):
    """Copy the script into tmp and start it; returns (child, chunk, text, exe)."""
    exe = interpreter_argv(args, interp)
    src = os.path.join(args.scripts, script_name)
    dst = os.path.join(tmp, script_name)
    shutil.copyfile(src, dst)
    with open(dst) as f:
        text = f.read()
    chunk = script_name if relative else dst
    argv = [exe, chunk] + ([str(seconds)] if seconds is not None else [])
    # No LUA_INIT (a chunk run before the script) nor LUA_PATH & co from the caller.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUA_")}
    cwd = os.getcwd()
    os.chdir(tmp)  # the child inherits it: a relative chunk name resolves against tmp
    try:
        child = Child(argv, env=env, stdin=stdin)
    finally:
        os.chdir(cwd)
    return child, chunk, text, exe


def case_scenario(args, tmp):
    sc = SCENARIOS[args.case]
    label = f"{args.interp}/{args.case}" + (" (relative chunk)" if args.relative else "")
    child, chunk, text, exe = start_workload(args, args.interp, tmp, sc.script, args.relative)
    found = {}

    def check_workload(prof):  # while sampling: the right interpreter, and where its VM is
        want = INTERPRETERS[args.interp]["version"]
        if child.info.get("version") != want:
            fail(f"{label}: the workload runs {child.info.get('version')!r}, want {want!r}")
        found["vm"] = vm_file_of(args.interp, child.pid, exe)

    _, stacks = npt.profile_child(args, tmp, child, f"{label} workload",
                                  extra=["--lines"] if sc.lines else [], during=check_workload)
    vm = found["vm"]
    ctx = Context(Binary(exe), vm, chunk, text, sc.script, child.info, sc.lines)
    ngt.check_complete(stacks, ctx.prefix, label)
    check_lua_frames(ctx, stacks)
    find_vm_loop(ctx, stacks)
    mins = sc.min_hot if isinstance(sc.min_hot, list) else [sc.min_hot] * len(sc.chains)
    for chain, min_hot in zip(sc.chains, mins):
        last = chain[-1]
        what = last.name if isinstance(last, L) else f"<{last.builtin}>"
        check_chain(ctx, stacks, chain, min_hot, f"{label} {what}", sc.absent)
    if args.case == "ratio":
        check_ratio(ctx, stacks)


EPHEMERAL_FRAME = 'L:ephemeral_burn@[string "local function ephemeral_burn(n)..."]:1'


def case_freed_protos(args, tmp):
    """Functions compiled, run for milliseconds and freed during the first 0.6 s of sampling,
    then never again while their memory is reused: their samples must keep their names (lua-perf
    names a new stack's Protos as soon as BPF first records it, while they are alive)."""
    label = f"{args.interp}/freed_protos"
    child, chunk, text, exe = start_workload(args, args.interp, tmp, "freed_protos.lua",
                                             stdin=True)

    def start_phase1(prof):
        prof.wait_attached()
        child.send("go\n")
        child.wait_for("phase1", timeout=10)

    _, stacks = npt.profile_child(args, tmp, child, label, during=start_phase1)
    head = f"L:phase1_round@{chunk}:{definition_line(text, 'phase1_round', 'freed_protos.lua')}"
    after = collections.Counter()
    for frames, c in stacks:
        if head in frames:
            i = frames.index(head)
            nxt = next((fr for fr in frames[i + 1:] if fr.startswith("L:")), None)
            if nxt:
                after[nxt] += c
    total = sum(after.values())
    good = after[EPHEMERAL_FRAME]
    log(f"{label}: Lua frames called by phase1_round: {dict(after.most_common(5))}")
    if total < 100:
        fail(f"{label}: only {total} samples in the freed functions (want >= 100)\n"
             + top_stacks(stacks))
    if good < 0.99 * total:
        fail(f"{label}: only {good}/{total} samples in the freed functions are named "
             f"{EPHEMERAL_FRAME}\n" + top_stacks(stacks))


def case_unsupported(args, tmp):
    """Debian's lua5.2 (a PUC version lua-perf does not walk): one clear line on stderr, exit 0,
    complete native stacks and no Lua frame."""
    child, _, _, exe = start_workload(args, "52", tmp, "deep_recursion.lua")
    err, stacks = npt.profile_child(args, tmp, child, "lua5.2")
    said = [line for line in err.split("\n") if "5.2" in line and "not supported" in line]
    if len(said) != 1:
        fail(f"want one stderr line saying Lua 5.2 is not supported, got {said}: {err[-2000:]!r}")
    lua = sum(c for f, c in stacks if any(fr.startswith("L:") for fr in f))
    total = sum(c for _, c in stacks)
    complete = sum(c for f, c in stacks if f and f[0] == "_start")
    log(f"5.2: {total} samples, {complete} rooted at _start, {lua} with Lua frames")
    if lua or total < 1000 or complete < 0.99 * total:
        fail("5.2: want >= 1000 samples, >= 99% rooted at _start and no Lua frame\n"
             + top_stacks(stacks))


def case_nonlua(args, tmp):
    """A process without Lua profiles natively, and lua-perf says that it found no Lua."""
    child = Child([args.fixture])
    err, stacks = npt.profile_child(args, tmp, child, "fixture")
    said = [line for line in err.split("\n")
            if re.search(r"\blua\b", re.sub(r"lua-perf", "", line, flags=re.I), re.I)
            and re.search(r"\b(no|not|none|without)\b|\b0 lua\b", line, re.I)]
    log(f"stderr lines saying no Lua was found: {said}")
    if not said:
        fail("lua-perf's stderr has no line saying that no Lua runtime was found in the process "
             f"(a line mentioning Lua and no/not/none/without, or '0 Lua'): {err[-2000:]!r}")
    lua = [(f, c) for f, c in stacks if any(fr.startswith("L:") for fr in f)]
    if lua:
        fail("Lua frames in the profile of a process without Lua\n" + top_stacks(lua))
    depth = int(npt.need_info(child, "depth"))
    chain = [one(exact("main")), one(exact("run_deep")), times(exact("recurse"), depth),
             one(exact("burn_deep"))]
    npt.check_chains(stacks, exact("burn_deep"), npt.MAIN_PREFIX, chain, MIN_HOT,
                     "fixture_deep (no Lua)")


def case_self_check(args, tmp):
    problems = []
    if not args.embed or not os.access(args.embed, os.X_OK):
        problems.append(f"embedding program {args.embed!r} not built: install liblua5.4-dev and "
                        "rebuild (target lua_embed)")
    # every workload runs under every interpreter below; freed_protos.lua has a case of its own
    scripts = sorted({sc.script for sc in SCENARIOS.values()} | {"freed_protos.lua"})
    on_disk = sorted(f for f in os.listdir(args.scripts) if f.endswith(".lua"))
    if on_disk != scripts:
        problems.append(f"scripts in {args.scripts}: {on_disk}, scenarios use {scripts}")
    # Every expected function and line is found exactly once.
    for name, sc in SCENARIOS.items():
        with open(os.path.join(args.scripts, sc.script)) as f:
            text = f.read()
        for chain in sc.chains:
            for item in chain:
                if not isinstance(item, L):
                    continue
                try:
                    definition_line(text, item.name, sc.script)
                    if item.current:
                        line_containing(text, item.current, sc.script)
                except TestFailure as e:
                    problems.append(f"scenario {name}: {e}")
    # Each workload runs under each interpreter; each VM file names the builtins.
    for interp, info in INTERPRETERS.items():
        exe = info["exe"] or args.embed
        if not exe or not os.access(exe, os.X_OK):
            problems.append(f"{interp}: {exe!r} missing (Debian package {info['package']})")
            continue
        vm_checked = False
        for script in scripts:
            child = None
            try:
                child, _, _, _ = start_workload(args, interp, tmp, script, seconds=0.3)
                child.wait_for("ready", timeout=20)
                if child.info.get("version") != info["version"]:
                    problems.append(f"{interp} {script}: version {child.info.get('version')!r}")
                if not vm_checked:
                    vm = vm_file_of(interp, child.pid, exe)
                    for b in BUILTINS:
                        lo, hi = vm.builtin(b)
                        log(f"{interp}: {b} = {vm.base}+0x{lo:x}..0x{hi or 0:x}")
                    vm_checked = True
                rc = child.proc.wait(timeout=30)
                if rc != 0:
                    problems.append(f"{interp} {script}: exit code {rc}: "
                                    f"{child.proc.stderr.read().decode(errors='replace')[-500:]}")
                else:
                    log(f"ran {interp} {script}: {child.info}, exit 0")
            except (TestFailure, OSError) as e:
                problems.append(f"{interp} {script}: {e}")
            except subprocess.TimeoutExpired:
                problems.append(f"{interp} {script}: still running 30 s after 'ready' "
                                "(asked to stop after 0.3 s)")
            finally:
                if child:
                    child.close()
    if problems:
        fail("Lua workload self-check:\n  " + "\n  ".join(problems))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(SCENARIOS) + ["nonlua", "freed_protos", "unsupported",
                                                         "self-check"])
    ap.add_argument("--lua-perf", help="path of the lua-perf binary")
    ap.add_argument("--scripts", default=fixture("lua"), help="directory of the workloads")
    ap.add_argument("--interp", choices=sorted(INTERPRETERS), help="interpreter to run")
    ap.add_argument("--embed", help="the lua_embed executable (interpreter embed54)")
    ap.add_argument("--fixture", help="fixture_deep (nonlua)")
    ap.add_argument("--relative", action="store_true",
                    help="run the script by a relative path, from its directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False  # native_profile_test.Profiler option; perf has no Lua frames

    if args.case in SCENARIOS and not args.interp:
        ap.error("--interp is required for a scenario")
    if args.case == "nonlua" and not args.fixture:
        ap.error("--fixture is required for nonlua")
    if args.case != "self-check":
        status = npt.cannot_profile(args)
        if status is not None:
            return status
    cases = {"nonlua": case_nonlua, "freed_protos": case_freed_protos,
             "unsupported": case_unsupported, "self-check": case_self_check}
    return npt.run_case(cases.get(args.case, case_scenario), args, f"lua-perf-lua-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
