#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lua_detect_test.py - tests of PUC Lua detection (lua/lua_runtime.c) and of the layout table
(lua/lua_layouts.c), driven through tests/lua_detect/lua_detect_tool.c.

Modes (each is one or more ctest tests, tests/lua_detect.cmake):
  debian   stock Debian binaries: version, luaV_execute range equal to one whole FDE (readelf),
           the lua_State register as given on the command line
  none     files that hold no PUC Lua VM (LuaJIT, nginx, libc): result none
  unsupported  files detection must refuse, with a reason containing a given text
  patched  copies whose ident string is rewritten to a release without support (5.2.4, 5.4.9,
           5.0.3): refused, with the release in the reason
  builds   one Lua release built from its Debian source tree with symbols at -O1, -O2, -O3 (and a
           non-PIE, CET variant): detection on a stripped copy must find exactly the .symtab
           luaV_execute (its hot part) and the register the unstripped code keeps L in
  layouts  a probe compiled against the release's own headers prints every layout field;
           each must equal lua_detect_tool's table entry for that release

The register oracle (builds) is independent of lua/lua_disasm.c's entry analysis: luaV_execute
passes L as the first argument of most calls, so the location most often moved into rdi
(`mov rdi, r15` / `mov rdi, [rsp+8]`) across the whole function is where L lives. A callee-saved
register there means detection must report it; a stack slot or caller-saved register means it
must refuse. The register must also be one the entry code copies rdi into.

Every comparison is also run once against deliberately wrong expectations, which must be
reported: the checks can fail.
"""
import argparse
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys

CALLEE_SAVED = {"rbx": 3, "rbp": 6, "r12": 12, "r13": 13, "r14": 14, "r15": 15}
REG_NAME = {number: name for name, number in CALLEE_SAVED.items()}
GPRS64 = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
          "r12", "r13", "r14", "r15"}
DETECT_LINE = re.compile(
    r"file=(?P<file>\S+) result=(?P<result>\S+)(?: version=(?P<version>\S+) kind=(?P<kind>\d+) "
    r"exec_start=(?P<start>\S+) exec_end=(?P<end>\S+) l_reg=(?P<reg>\d+) "
    r"from_symtab=(?P<symtab>\d) reason=(?P<reason>.*))?$")


class Failures:
    def __init__(self):
        self.messages = []

    def check(self, cond, message):
        if not cond:
            self.messages.append(message)
            print(f"FAIL {message}")
        return cond

    def exit(self):
        if self.messages:
            print(f"{len(self.messages)} failure(s)")
            sys.exit(1)
        print("PASS")
        sys.exit(0)


def run(cmd, cwd=None):
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def detect(tool, path):
    out = run([tool, "detect", path]).strip().splitlines()
    match = DETECT_LINE.match(out[-1]) if out else None
    if not match:
        raise RuntimeError(f"unparsable detection output for {path}: {out}")
    d = match.groupdict()
    if d["start"] is not None:
        d["start"], d["end"] = int(d["start"], 16), int(d["end"], 16)
        d["reg"], d["symtab"] = int(d["reg"]), d["symtab"] == "1"
    return d


def describe(d):
    if d["result"] in ("none", "error"):
        return d["result"]
    reg = REG_NAME.get(d["reg"], "-") if d["result"] == "ok" else "-"
    return (f"{d['result']} Lua {d['version']} luaV_execute {d['start']:#x}..{d['end']:#x} "
            f"L={reg} symtab={int(d['symtab'])}" +
            (f" ({d['reason']})" if d["result"] != "ok" else ""))


# ---- facts from binutils (the oracles)

def fde_ranges(tools, path):
    """Every FDE's [start, end) from readelf's own .eh_frame decoder."""
    text = run([tools.readelf, "--debug-dump=frames", path])
    return {(int(a, 16), int(b, 16)) for a, b in re.findall(r"FDE cie=\S+ pc=([0-9a-f]+)\.\.([0-9a-f]+)", text)}


def symtab_functions(tools, path, prefix):
    """{name: (start, end)} of the .symtab functions whose name starts with prefix."""
    out = {}
    for line in run([tools.nm, "-S", "--defined-only", path]).splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT" and parts[3].startswith(prefix):
            start, size = int(parts[0], 16), int(parts[1], 16)
            out[parts[3]] = (start, start + size)
    return out


def disassemble(tools, path, start, end):
    text = run([tools.objdump, "-d", "--no-show-raw-insn", "-M", "intel",
                f"--start-address={start:#x}", f"--stop-address={end:#x}", path])
    insns = []
    for line in text.splitlines():
        m = re.match(r"\s+[0-9a-f]+:\s+(.*?)\s*(?:#.*)?$", line)
        if m and m.group(1):
            insns.append(re.sub(r"\s+", " ", m.group(1)))
    return insns


def first_argument_sources(insns):
    """How often each location is moved into rdi: registers and rsp-relative stack slots."""
    counts = {}
    for insn in insns:
        m = re.match(r"mov rdi,(\w+|QWORD PTR \[rsp(?:\+0x[0-9a-f]+)?\])$", insn)
        if m and (m.group(1) in GPRS64 or m.group(1).startswith("QWORD")):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def entry_copies(insns, limit=48):
    """Registers the first instructions copy rdi into, directly or through other copies."""
    holders = {"rdi"}
    for insn in insns[:limit]:
        m = re.match(r"mov (\w+),(\w+)$", insn)
        if m and m.group(2) in holders and m.group(1) in GPRS64:
            holders.add(m.group(1))
    return holders


def register_oracle(insns):
    """(expected DWARF register or None when L is not in a callee-saved register, counts); the
    expectation is 'either' when two locations tie."""
    counts = first_argument_sources(insns)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    if not ranked:
        return None, counts
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return "either", counts
    return CALLEE_SAVED.get(ranked[0][0]), counts


# ---- mode: debian

def check_debian(tools, tool, path, version, reg_name, fail, symtab_expected=False):
    if not fail.check(os.path.exists(path), f"{path} is not installed"):
        return
    d = detect(tool, path)
    print(f"{path}: {describe(d)}")
    if not fail.check(d["result"] == "ok", f"{path}: result {d['result']}: {d.get('reason')}"):
        return
    fail.check(d["version"] == version, f"{path}: version {d['version']}, expected {version}")
    fail.check(d["reg"] == CALLEE_SAVED[reg_name],
               f"{path}: L register {REG_NAME.get(d['reg'], d['reg'])}, expected {reg_name}")
    fail.check(d["symtab"] == symtab_expected, f"{path}: from_symtab {d['symtab']}")
    fail.check((d["start"], d["end"]) in fde_ranges(tools, path),
               f"{path}: luaV_execute {d['start']:#x}..{d['end']:#x} is not one whole FDE")
    fail.check(d["end"] - d["start"] >= 4096, f"{path}: luaV_execute of {d['end'] - d['start']} bytes")


def mode_debian(args, tools):
    fail = Failures()
    for spec in args.expect:
        path, version, reg = spec.split(":")
        check_debian(tools, args.tool, path, version, reg, fail)
    # The checker must notice a wrong register and a wrong version.
    path, version, reg = args.expect[0].split(":")
    wrong_reg = "rbx" if reg != "rbx" else "r12"
    probe = Failures()
    print("self-test (mismatches expected):")
    check_debian(tools, args.tool, path, version + "9", wrong_reg, probe)
    fail.check(len(probe.messages) == 2, "self-test: a wrong version/register went unnoticed")
    fail.exit()


def mode_none(args, tools):
    del tools
    fail = Failures()
    for path in args.files:
        if not fail.check(os.path.exists(path), f"{path} is not installed"):
            continue
        d = detect(args.tool, path)
        print(f"{path}: {describe(d)}")
        fail.check(d["result"] == "none", f"{path}: result {d['result']}, expected none")
    fail.exit()


def mode_unsupported(args, tools):
    del tools
    fail = Failures()
    for spec in args.expect:
        path, text = spec.split(":", 1)
        if not fail.check(os.path.exists(path), f"{path} is not installed"):
            continue
        d = detect(args.tool, path)
        print(f"{path}: {describe(d)}")
        fail.check(d["result"] == "unsupported" and text in (d["reason"] or ""),
                   f"{path}: {d['result']} ({d.get('reason')}), expected unsupported: ...{text}...")
    fail.exit()


def mode_patched(args, tools):
    """Copies whose ident string names another release: PATH:RELEASE:REASON-TEXT."""
    del tools
    fail = Failures()
    os.makedirs(args.work, exist_ok=True)
    for spec in args.expect:
        path, release, text = spec.split(":", 2)
        if not fail.check(os.path.exists(path), f"{path} is not installed"):
            continue
        with open(path, "rb") as f:
            data = bytearray(f.read())
        at = -1
        for prefix in (b"$LuaVersion: Lua ", b"$Lua: Lua "):
            at = data.find(prefix)
            if at >= 0:
                at += len(prefix)
                break
        if not fail.check(at >= 0 and re.match(rb"\d\.\d\.\d ", bytes(data[at:at + 6])) is not None,
                          f"{path}: no 5.x.y ident string to patch"):
            continue
        data[at:at + 5] = release.encode()
        copy = os.path.join(args.work, f"{os.path.basename(path)}.as-{release}")
        with open(copy, "wb") as f:
            f.write(data)
        d = detect(args.tool, copy)
        print(f"{path} as Lua {release}: {describe(d)}")
        fail.check(d["result"] == "unsupported" and text in (d["reason"] or ""),
                   f"{copy}: {d['result']} ({d.get('reason')}), expected unsupported: ...{text}...")
    fail.exit()


# ---- building Lua from its source tree

CORE_EXCLUDE = {"lua.c", "luac.c", "print.c", "onelua.c", "ltests.c"}
COMPAT = {"5.1": [], "5.3": ["-DLUA_COMPAT_5_2"], "5.4": ["-DLUA_COMPAT_5_3"]}


def source_tree(sources, version):
    trees = sorted(glob.glob(os.path.join(sources, f"lua{version}-*", "src", "lvm.c")))
    if not trees:
        raise RuntimeError(f"no lua{version}-*/src/lvm.c under {sources} (scripts/fetch-lua-sources.sh)")
    return os.path.dirname(os.path.dirname(trees[-1]))


class Variant:
    def __init__(self, name, cflags, ldflags=(), shared=False):
        self.name, self.cflags, self.ldflags, self.shared = name, list(cflags), list(ldflags), shared


VARIANTS = [
    Variant("O1", ["-O1", "-fPIC"]),
    Variant("O2", ["-O2", "-fPIC"], shared=True),
    Variant("O3", ["-O3", "-fPIC"]),
    Variant("O2-nopie-cet", ["-O2", "-fno-pic", "-fcf-protection"], ["-no-pie"]),
]


def build_variant(cc, tree, version, variant, out_dir):
    """Compile the Lua core and lua.c with symbols; link lua (the API exported, like Debian's
    /usr/bin/lua5.x) and, for shared variants, liblua.so. Reused when the flags are unchanged."""
    stamp_path = os.path.join(out_dir, "stamp")
    stamp = " ".join([cc, tree] + variant.cflags + variant.ldflags + [str(variant.shared)])
    outputs = [os.path.join(out_dir, "lua")] + ([os.path.join(out_dir, "liblua.so")] if variant.shared else [])
    if os.path.exists(stamp_path) and all(os.path.exists(o) for o in outputs):
        with open(stamp_path) as f:
            if f.read() == stamp:
                return outputs
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    src = os.path.join(tree, "src")
    cflags = (["-std=gnu99", "-g", "-w", "-DLUA_USE_POSIX", "-DLUA_USE_DLOPEN"] + COMPAT[version] +
              variant.cflags)
    sources = sorted(f for f in os.listdir(src) if f.endswith(".c") and f not in CORE_EXCLUDE)
    objs = [os.path.join(out_dir, f[:-2] + ".o") for f in sources]
    jobs = [[cc] + cflags + ["-c", os.path.join(src, f), "-o", o] for f, o in zip(sources, objs)]
    main_obj = os.path.join(out_dir, "lua.o")
    jobs.append([cc] + cflags + ["-c", os.path.join(src, "lua.c"), "-o", main_obj])
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for result in pool.map(run, jobs):
            del result
    run([cc, "-g"] + variant.ldflags + ["-Wl,-E", "-o", outputs[0], main_obj] + objs + ["-lm", "-ldl"])
    if variant.shared:
        run([cc, "-shared", "-g", "-o", outputs[1]] + objs + ["-lm", "-ldl"])
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return outputs


# ---- mode: builds

def compare_build(label, truth, insns, unstripped, stripped, fail):
    """The checks on one build; truth = (start, end) of .symtab luaV_execute."""
    oracle, counts = register_oracle(insns)
    copies = entry_copies(insns)
    for kind, d in (("unstripped", unstripped), ("stripped", stripped)):
        want_symtab = kind == "unstripped"
        if not fail.check(d["result"] in ("ok", "unsupported") and d["start"] is not None,
                          f"{label} {kind}: result {d['result']}"):
            continue
        fail.check(d["symtab"] == want_symtab, f"{label} {kind}: from_symtab {d['symtab']}")
        fail.check((d["start"], d["end"]) == truth,
                   f"{label} {kind}: luaV_execute {d['start']:#x}..{d['end']:#x}, "
                   f".symtab {truth[0]:#x}..{truth[1]:#x}")
        if oracle == "either":
            continue
        if oracle is None:
            fail.check(d["result"] == "unsupported" and "lua_State" in (d["reason"] or ""),
                       f"{label} {kind}: {d['result']}, but L is not in a callee-saved register "
                       f"(first arguments {counts})")
        elif fail.check(d["result"] == "ok", f"{label} {kind}: {d['result']} ({d['reason']}), "
                        f"but L is in {REG_NAME[oracle]} (first arguments {counts})"):
            fail.check(d["reg"] == oracle, f"{label} {kind}: L register "
                       f"{REG_NAME.get(d['reg'], d['reg'])}, oracle {REG_NAME[oracle]} ({counts})")
            fail.check(REG_NAME.get(d["reg"]) in copies,
                       f"{label} {kind}: the entry code never copies rdi into "
                       f"{REG_NAME.get(d['reg'], d['reg'])} (copies: {sorted(copies)})")


def check_binary(args, tools, label, path, fail, report):
    syms = symtab_functions(tools, path, "luaV_execute")
    if not fail.check("luaV_execute" in syms, f"{label}: no luaV_execute in .symtab"):
        return
    truth = syms["luaV_execute"]
    stripped_path = path + ".stripped"
    run([tools.strip, "-o", stripped_path, path])
    insns = disassemble(tools, path, *truth)
    unstripped, stripped = detect(args.tool, path), detect(args.tool, stripped_path)
    compare_build(label, truth, insns, unstripped, stripped, fail)
    oracle, counts = register_oracle(insns)
    cold = syms.get("luaV_execute.cold")
    top = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:3])
    report.append(f"{label}: {describe(stripped)}; .symtab {truth[0]:#x}..{truth[1]:#x}" +
                  (f", .cold {cold[0]:#x}..{cold[1]:#x}" if cold else "") +
                  f"; first arguments: {top}")
    # Self-test: a range shifted by 16 bytes, and a different register, must both be reported.
    if stripped["result"] not in ("ok", "unsupported"):
        return
    probe = Failures()
    wrong = dict(stripped, start=stripped["start"] + 16, reg=stripped["reg"] ^ 1)
    with contextlib_quiet():
        compare_build(label, truth, insns, unstripped, wrong, probe)
    expected = 2 if stripped["result"] == "ok" and oracle != "either" else 1
    fail.check(len(probe.messages) >= expected,
               f"{label}: self-test: a wrong range or register went unnoticed")


class contextlib_quiet:
    """Silence the self-test's expected FAIL lines."""

    def __enter__(self):
        self.saved = sys.stdout
        sys.stdout = open(os.devnull, "w")

    def __exit__(self, *exc):
        sys.stdout.close()
        sys.stdout = self.saved


def mode_builds(args, tools):
    fail = Failures()
    tree = source_tree(args.sources, args.version)
    report = []
    for variant in VARIANTS:
        out_dir = os.path.join(args.work, f"lua{args.version}", variant.name)
        outputs = build_variant(args.cc, tree, args.version, variant, out_dir)
        for path in outputs:
            label = f"Lua {args.version} {variant.name} {os.path.basename(path)}"
            check_binary(args, tools, label, path, fail, report)
    print("\n".join(report))
    fail.exit()


# ---- mode: layouts

def parse_fields(text):
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        fields[name] = value
    return fields


def compare_layouts(release, probe, table, fail):
    for name in sorted(set(probe) | set(table)):
        if name == "release":
            continue
        fail.check(probe.get(name) == table.get(name),
                   f"Lua {release}: {name}: headers say {probe.get(name)}, lua_layouts.c says {table.get(name)}")


def mode_layouts(args, tools):
    del tools
    fail = Failures()
    tree = source_tree(args.sources, args.version)
    out_dir = os.path.join(args.work, f"lua{args.version}")
    os.makedirs(out_dir, exist_ok=True)
    probe_bin = os.path.join(out_dir, "layout_probe")
    run([args.cc, "-std=gnu99", "-Wall", "-Wextra", "-I", os.path.join(tree, "src"), "-o", probe_bin, args.probe])
    probe = parse_fields(run([probe_bin]))
    release = probe.get("release", "?")
    fail.check(release.startswith(args.version + "."), f"probe says release {release}")
    table = parse_fields(run([args.tool, "layout", release]))
    print(f"Lua {release} from {tree}: {len(probe) - 1} fields")
    for name in sorted(probe):
        print(f"  {name} {probe[name]}")
    compare_layouts(release, probe, table, fail)
    # Self-test: one wrong number must be reported with its field name.
    wrong = dict(table, **{"vm.ci_savedpc": str(int(table.get("vm.ci_savedpc", "0")) + 8)})
    probe_fail = Failures()
    with contextlib_quiet():
        compare_layouts(release, probe, wrong, probe_fail)
    fail.check(len(probe_fail.messages) == 1 and "vm.ci_savedpc" in probe_fail.messages[0],
               "self-test: a wrong ci_savedpc went unnoticed")
    fail.exit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["debian", "none", "unsupported", "patched", "builds", "layouts"])
    parser.add_argument("--tool", required=True)
    parser.add_argument("--expect", action="append", default=[],
                        help="debian: PATH:VERSION:REG; unsupported: PATH:REASON-TEXT; "
                        "patched: PATH:RELEASE:REASON-TEXT")
    parser.add_argument("--sources", help="directory of scripts/fetch-lua-sources.sh")
    parser.add_argument("--version", help="5.1, 5.3 or 5.4")
    parser.add_argument("--work", help="build directory")
    parser.add_argument("--probe", help="tests/lua_detect/lua_layout_probe.c")
    parser.add_argument("--cc", default="cc")
    for tool in ("readelf", "nm", "objdump", "strip"):
        parser.add_argument(f"--{tool}", default=tool)
    parser.add_argument("files", nargs="*")
    args = parser.parse_intermixed_args()
    modes = {"debian": mode_debian, "none": mode_none, "unsupported": mode_unsupported,
             "patched": mode_patched, "builds": mode_builds, "layouts": mode_layouts}
    try:
        modes[args.mode](args, args)
    except RuntimeError as e:
        print(f"FAIL {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
