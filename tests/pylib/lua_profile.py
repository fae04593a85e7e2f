# SPDX-License-Identifier: MIT
"""PUC Lua workloads as profiling targets (tests/fixtures/lua/): the interpreters that run them,
the scenarios with their expected Lua chains, and the checks of the Lua frames lua-perf writes
(used by lua_profile_test.py and the drivers that run its scenarios elsewhere)."""
import bisect
import collections
import os
import re
import shutil
import struct

from . import nginx, profiling
from .chains import exact, first_mismatch, full_match, M, MIN_SHARE, one, some, spec_desc, times
from .elf import Elf
from .folded import compress, split_offset, top_stacks, user_part
from .profiling import Child
from .report import fail, log


MIN_HOT = 1000          # of ~3000 possible samples in 3 s at 997 Hz
MIN_HOT_MINOR = 300     # ratio_g: a quarter of the CPU
MIN_HOT_BUILTIN = 250   # strings: a third of the CPU each, see string_builtins.lua
MIN_ALTERNATIVE = 0.2   # tailhook: each of three alternatives takes a third of the hot samples
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
    def __init__(self, script, chains, min_hot=MIN_HOT, lines=False, absent=(),
                 alternatives=False):
        self.script = script
        self.chains = chains      # list of chains (lists of L / C / LeafC)
        self.min_hot = min_hot    # an int, or a list with one per chain
        self.lines = lines        # run lua-perf with --lines
        self.absent = absent      # function names that must not appear in hot samples
        self.alternatives = alternatives  # the chains share one leaf: see check_alternatives


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
    "tailhook": Scenario("tail_call_hook.lua", [
        [L("main"), L("hook_workload"), L(callee), C(api=CALL_API), L("hook_burn")]
        for callee in ("tail_first", "tail_middle", "tail_target")], alternatives=True),
    "strings": Scenario("string_builtins.lua", string_chains(), min_hot=MIN_HOT_BUILTIN),
    "ratio": Scenario("split_ratio.lua", [
        [L("main"), L("ratio_workload"), L("ratio_f")],
        [L("main"), L("ratio_workload"), L("ratio_g")]], min_hot=[MIN_HOT, MIN_HOT_MINOR]),
    "lines": Scenario("string_builtins.lua", string_chains(lines=True), min_hot=MIN_HOT_BUILTIN,
                      lines=True),
}


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


class Context:
    """Everything a chain is matched against: the files, the script, the VM loop function."""

    def __init__(self, exe, vm, chunk, text, script, info, lines):
        self.exe, self.vm = exe, vm
        self.chunk, self.text, self.script, self.info, self.lines = chunk, text, script, info, lines
        self.efr = nginx.ElfFrames(exe.path)
        self.prefix = nginx.startup_prefix(self.efr)
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
        """The whole expected user stack as a chain spec of pylib.chains."""
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


def check_alternatives(ctx, stacks, chains, min_hot, label):
    """Chains with one leaf, each the stack of some of its hot samples: at least min_hot hot
    samples, >= MIN_SHARE of them exactly one of the chains, each chain >= MIN_ALTERNATIVE."""
    users = [(user_part(f), c) for f, c in stacks if user_part(f)]
    hot_pred = ctx.is_hot(chains[0])
    hot = [(f, c) for f, c in users if hot_pred(f)]
    n_hot = sum(c for _, c in hot)
    if n_hot < min_hot:
        fail(f"{label}: only {n_hot} hot samples (want >= {min_hot})\n"
             + top_stacks(users, title="user stacks"))
    specs = [ctx.chain_spec(chain) for chain in chains]
    shares = [sum(c for f, c in hot if full_match(f, spec)) / n_hot for spec in specs]
    for spec, share in zip(specs, shares):
        log(f"{label}: {share:.2%} of {n_hot} hot samples are exactly\n  {spec_desc(spec)}")
    problems = [f"only {share:.2%} of hot samples are {spec_desc(spec)} (want >= "
                f"{MIN_ALTERNATIVE:.0%})" for spec, share in zip(specs, shares)
                if share < MIN_ALTERNATIVE]
    if sum(shares) < MIN_SHARE:
        problems.append(f"only {sum(shares):.2%} of hot samples are exactly one of the stacks")
    if problems:
        bad = [(f, c) for f, c in hot if not any(full_match(f, spec) for spec in specs)]
        fail(f"{label}: " + "; ".join(problems) + "\n"
             + top_stacks(bad, title="hot stacks that are none of them"))


def check_chain(ctx, stacks, chain, min_hot, label, absent=()):
    users = [(user_part(f), c) for f, c in stacks if user_part(f)]
    hot_pred = ctx.is_hot(chain)
    hot = [(f, c) for f, c in users if hot_pred(f)]
    n_hot = sum(c for _, c in hot)
    spec = ctx.chain_spec(chain)
    desc = spec_desc(spec)
    log(f"{label}: {n_hot} hot samples of {sum(c for _, c in users)}; expected stack:\n  {desc}")
    if n_hot < min_hot:
        fail(f"{label}: only {n_hot} hot samples (want >= {min_hot})\n"
             + top_stacks(users, title="user stacks"))
    ok = sum(c for f, c in hot if full_match(f, spec))
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
        bad = [(f, c) for f, c in hot if not full_match(f, spec)]
        hints = [f"  {c:7d}  {first_mismatch(f, spec)}\n           {compress(f)}"
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

    _, stacks = profiling.profile_child(args, tmp, child, f"{label} workload",
                                        extra=["--lines"] if sc.lines else [],
                                        during=check_workload)
    vm = found["vm"]
    ctx = Context(Binary(exe), vm, chunk, text, sc.script, child.info, sc.lines)
    nginx.check_complete(stacks, ctx.prefix, label)
    check_lua_frames(ctx, stacks)
    find_vm_loop(ctx, stacks)
    if sc.alternatives:
        check_alternatives(ctx, stacks, sc.chains, sc.min_hot, f"{label} {sc.chains[0][-1].name}")
        return
    mins = sc.min_hot if isinstance(sc.min_hot, list) else [sc.min_hot] * len(sc.chains)
    for chain, min_hot in zip(sc.chains, mins):
        last = chain[-1]
        what = last.name if isinstance(last, L) else f"<{last.builtin}>"
        check_chain(ctx, stacks, chain, min_hot, f"{label} {what}", sc.absent)
    if args.case == "ratio":
        check_ratio(ctx, stacks)


def definition_lines(path):
    """{function name: line} for `local function NAME(` definitions in a script."""
    lines = {}
    with open(path) as f:
        for n, text in enumerate(f, 1):
            m = re.match(r"\s*local function (\w+)\(", text)
            if m:
                lines[m.group(1)] = n
    return lines
