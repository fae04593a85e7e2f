#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lua_detect_test.py - tests of PUC Lua detection (runtime/lua_runtime.c) and of the layout table
(runtime/puc/lua_layouts.c), driven through tests/fixtures/lua_detect/lua_detect_tool.c.

Modes (each is one or more ctest tests, tests/cmake/lua_detect.cmake):
  debian   stock Debian binaries: version, luaV_execute range equal to one whole FDE (readelf),
           the lua_State register as given on the command line
  none     files that hold no PUC Lua VM (LuaJIT, nginx, libc): result none
  unsupported  files detection must refuse, with a reason containing a given text
  patched  copies whose ident string is rewritten to a release without support (5.2.4, 5.4.9,
           5.0.3): refused, with the release in the reason
  builds   one Lua release built from its Debian source tree with symbols at -O1, -O2, -O3, a
           non-PIE CET variant, -O1 with a frame pointer, and by clang at -O2: detection on a
           stripped copy must find exactly the .symtab luaV_execute (its hot part) and where the
           unstripped code keeps L (a callee-saved register, or a slot of luaV_execute's frame
           named by its offset from the CFA)
  layouts  a probe compiled against the release's own headers prints every layout field;
           each must equal lua_detect_tool's table entry for that release

Where L lives (builds) is checked by two oracles, both independent of runtime/puc/lua_state_home.c:
  - static, from binutils on the unstripped build: luaV_execute passes L as the first argument of
    most calls, so the location most often moved into rdi (`mov rdi, r15` / `mov rdi, [rsp+8]`)
    across the whole function is where L lives. A stack slot is named by its offset from the CFA:
    readelf's own CFI interpreter (--debug-dump=frames-interp) gives the CFA rule at each such
    load (CFA = rsp + N: [rsp + d] is CFA - N + d; likewise rbp under CFA = rbp + N), and the
    loads are counted by that name. A callee-saved register there: detection must report it (and
    the entry code must copy rdi into it); a frame slot: detection must report that slot
    (l_in_frame, l_cfa_off); a caller-saved register: detection must refuse. clang keeps L in rdi itself between opcodes and copies it
    into scratch callee-saved registers around calls, so for the clang build the oracle is the
    frame slot most often moved into rdi (its registers are not L's home: the probe below shows
    them missing L at some calls).
  - at run time, for each executable: tests/fixtures/lua_detect/lua_home_probe.c, a C module loaded into
    the unstripped interpreter, is called by lua_home_calls.lua from some 40 places of luaV_execute
    (calls, tail calls, metamethods, a generic for, a coroutine); each time it unwinds its own
    stack with libgcc's unwinder (.eh_frame, not lua-perf's CFI compiler) to the innermost
    luaV_execute frame and lists every callee-saved register and frame slot that holds the calling
    lua_State there. The place detection reports must hold L at every one of them. (A shared
    library is built from the same objects as its executable: its result must equal the
    executable's.)

Every comparison is also run once against deliberately wrong expectations, which must be
reported: the checks can fail.
"""
import argparse
import bisect
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib.detect_checks import Failures, run  # noqa: E402
from pylib.lua_builds import (  # noqa: E402
    build_variant, CALLEE_SAVED, describe, detect, home_of, REG_NAME, source_tree, VARIANTS)
from pylib.paths import fixture  # noqa: E402

GPRS64 = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
          "r12", "r13", "r14", "r15"}
HOME_PROBE = fixture("lua_detect", "lua_home_probe.c")
HOME_CALLS = fixture("lua_detect", "lua_home_calls.lua")
MIN_PROBE_EVENTS = 20


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
    """[(address, instruction text)] of [start, end), Intel syntax."""
    text = run([tools.objdump, "-d", "--no-show-raw-insn", "-M", "intel",
                f"--start-address={start:#x}", f"--stop-address={end:#x}", path])
    insns = []
    for line in text.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+(.*?)\s*(?:#.*)?$", line)
        if m and m.group(2):
            insns.append((int(m.group(1), 16), re.sub(r"\s+", " ", m.group(2))))
    return insns


def cfa_rules(tools, path, start):
    """[(pc, base register, offset)] of the FDE starting at start, from readelf's own CFI
    interpreter; base is None for a CFA rule that is not register + offset."""
    text = run([tools.readelf, "--debug-dump=frames-interp", path])
    rules, inside = [], False
    for line in text.splitlines():
        m = re.search(r"FDE cie=\S+ pc=([0-9a-f]+)\.\.", line)
        if m:
            if inside:
                break
            inside = int(m.group(1), 16) == start
            continue
        m = re.match(r"([0-9a-f]{8,16}) (\S+)", line)
        if inside and m:
            r = re.fullmatch(r"(r[a-z0-9]+)([+-]\d+)", m.group(2))
            rules.append((int(m.group(1), 16), r.group(1) if r else None,
                          int(r.group(2)) if r else 0))
    return rules


def rule_at(rules, pc):
    i = bisect.bisect_right([r[0] for r in rules], pc) - 1
    return rules[i] if i >= 0 else (pc, None, 0)


def first_argument_sources(insns, rules):
    """How often each location is moved into rdi: registers by name, frame slots by their offset
    from the CFA ('cfa-184'; the raw operand when the CFA rule there is not on its base)."""
    counts = {}
    for pc, insn in insns:
        m = re.match(r"mov rdi,(\w+|QWORD PTR \[(rsp|rbp)(?:([+-])0x([0-9a-f]+))?\])$", insn)
        if not m or (m.group(2) is None and m.group(1) not in GPRS64):
            continue
        key = m.group(1)
        if m.group(2):
            disp = int(m.group(4) or "0", 16) * (-1 if m.group(3) == "-" else 1)
            _, base, off = rule_at(rules, pc)
            if base == m.group(2):
                key = f"cfa{disp - off:+d}"
            elif m.group(2) == "rbp":
                continue  # rbp is a general register there: not the frame
        counts[key] = counts.get(key, 0) + 1
    return counts


def entry_copies(insns, limit=48):
    """Registers the first instructions copy rdi into, directly or through other copies."""
    holders = {"rdi"}
    for _, insn in insns[:limit]:
        m = re.match(r"mov (\w+),(\w+)$", insn)
        if m and m.group(2) in holders and m.group(1) in GPRS64:
            holders.add(m.group(1))
    return holders


def home_oracle(counts, slots_only=False):
    """Where the most first arguments come from: a callee-saved register name or a frame slot
    ('cfa-N'), None for anything else (a caller-saved register), 'either' on a tie. slots_only:
    among the frame slots only (the clang build)."""
    ranked = sorted(((k, v) for k, v in counts.items() if not slots_only or k.startswith("cfa")),
                    key=lambda kv: -kv[1])
    if not ranked:
        return None
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return "either"
    key = ranked[0][0]
    return key if key in CALLEE_SAVED or re.fullmatch(r"cfa-\d+", key) else None


# ---- mode: debian

def dynsym_address(tools, path, name):
    """The address of an exported function, None when it is not exported."""
    for line in run([tools.nm, "-D", "--defined-only", path]).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tT" and parts[2].split("@")[0] == name:
            return int(parts[0], 16)
    return None


def check_resume(tools, path, d, fail):
    """lua_resume's range and where it keeps L (the coroutine whose pending frames the walker
    splices at its frame) against binutils: the FDE of the exported lua_resume, and the register
    or frame slot its code passes most often as the first argument (5.1: nothing, it needs no
    splice)."""
    if d["version"].startswith("5.1."):
        fail.check(d["resume_start"] == 0, f"{path}: a lua_resume range for Lua 5.1")
        return
    start = dynsym_address(tools, path, "lua_resume")
    if not fail.check(start is not None, f"{path}: lua_resume is not exported"):
        return
    ends = [b for a, b in fde_ranges(tools, path) if a == start]
    if not fail.check(len(ends) == 1, f"{path}: lua_resume at {start:#x} starts no single FDE"):
        return
    fail.check((d["resume_start"], d["resume_end"]) == (start, ends[0]),
               f"{path}: lua_resume {d['resume_start']:#x}..{d['resume_end']:#x}, expected its "
               f"FDE {start:#x}..{ends[0]:#x}")
    rules = cfa_rules(tools, path, start)
    oracle = home_oracle(first_argument_sources(disassemble(tools, path, start, ends[0]), rules))
    found = home_of(d["resume"])
    print(f"{path}: lua_resume keeps L in {found} (its code's first arguments: {oracle})")
    fail.check(found == oracle, f"{path}: lua_resume's L in {found}, its code says {oracle}")


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
    check_resume(tools, path, d, fail)


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


# ---- the run-time probe

def probe_homes(cc, tree, exe, truth, work):
    """Run lua_home_probe.c in the unstripped executable exe: [(call site, {places holding L})],
    one per call of the probe from Lua code."""
    probe = os.path.join(work, "lua_home_probe.so")
    run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-I", os.path.join(tree, "src"), "-o", probe,
         HOME_PROBE])
    # Only the probe module is found by require; no LUA_INIT from the caller.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUA_")}
    env.update(LUA_CPATH=os.path.join(work, "?.so"), LUA_PATH=os.path.join(work, "?.none"))
    out = subprocess.run([exe, HOME_CALLS, f"{truth[0]:x}", f"{truth[1]:x}"], cwd=work, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"{exe} {HOME_CALLS} exited {out.returncode}: {out.stderr[-2000:]}")
    events = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] != "none":
            events.append((int(parts[0], 16), set(parts[1:])))
        elif parts:
            events.append((None, set()))
    return events


def check_probe(label, kind, d, events, fail):
    """The place detection reports holds L at every probe."""
    if events is None or d["result"] != "ok":
        return
    home = home_of(d)
    missing = [f"{site:#x}" if site is not None else "(no luaV_execute frame)"
               for site, places in events if home not in places]
    fail.check(not missing, f"{label} {kind}: L={home}, but at {len(missing)} of {len(events)} "
               f"probes L was not there (call sites {', '.join(missing[:6])})")


def summarize_probe(events):
    if not events:
        return "no probe"
    common = set.intersection(*(places for _, places in events))
    sites = len({site for site, _ in events})
    return (f"probe: {len(events)} calls from {sites} call sites, L always in "
            f"{' '.join(sorted(common)) or 'no one place'}")


# ---- mode: builds

def compare_build(label, truth, oracle, counts, copies, unstripped, stripped, fail, events=None):
    """The checks on one build; truth = (start, end) of .symtab luaV_execute; oracle:
    home_oracle(); events: probe_homes() (None for a shared library)."""
    for kind, d in (("unstripped", unstripped), ("stripped", stripped)):
        want_symtab = kind == "unstripped"
        if not fail.check(d["result"] in ("ok", "unsupported") and d["start"] is not None,
                          f"{label} {kind}: result {d['result']}"):
            continue
        fail.check(d["symtab"] == want_symtab, f"{label} {kind}: from_symtab {d['symtab']}")
        fail.check((d["start"], d["end"]) == truth,
                   f"{label} {kind}: luaV_execute {d['start']:#x}..{d['end']:#x}, "
                   f".symtab {truth[0]:#x}..{truth[1]:#x}")
        check_probe(label, kind, d, events, fail)
        if oracle == "either":
            continue
        if oracle is None:
            fail.check(d["result"] == "unsupported" and "lua_State" in (d["reason"] or ""),
                       f"{label} {kind}: {d['result']}, but L is not in a callee-saved register "
                       f"nor a frame slot (first arguments {counts})")
        elif fail.check(d["result"] == "ok", f"{label} {kind}: {d['result']} ({d['reason']}), "
                        f"but L is in {oracle} (first arguments {counts})"):
            fail.check(home_of(d) == oracle, f"{label} {kind}: L={home_of(d)}, oracle {oracle} "
                       f"({counts})")
            if not d["in_frame"]:
                fail.check(REG_NAME.get(d["reg"]) in copies,
                           f"{label} {kind}: the entry code never copies rdi into "
                           f"{REG_NAME.get(d['reg'], d['reg'])} (copies: {sorted(copies)})")


def check_binary(args, tools, label, path, variant, tree, fail, report, same_code_as=None):
    """Returns the stripped copy's detection result."""
    syms = symtab_functions(tools, path, "luaV_execute")
    if not fail.check("luaV_execute" in syms, f"{label}: no luaV_execute in .symtab"):
        return None
    truth = syms["luaV_execute"]
    stripped_path = path + ".stripped"
    run([tools.strip, "-o", stripped_path, path])
    insns = disassemble(tools, path, *truth)
    counts = first_argument_sources(insns, cfa_rules(tools, path, truth[0]))
    oracle = home_oracle(counts, slots_only=variant.compiler == "clang")
    copies = entry_copies(insns)
    unstripped, stripped = detect(args.tool, path), detect(args.tool, stripped_path)
    events = None
    if path.endswith("/lua"):
        events = probe_homes(args.cc, tree, path, truth, os.path.dirname(path))
        fail.check(len(events) >= MIN_PROBE_EVENTS and all(site for site, _ in events),
                   f"{label}: the probe ran {len(events)} times (want >= {MIN_PROBE_EVENTS}), "
                   f"{sum(1 for site, _ in events if not site)} without a luaV_execute frame")
    compare_build(label, truth, oracle, counts, copies, unstripped, stripped, fail, events)
    if same_code_as is not None and stripped["result"] == "ok":
        fail.check(home_of(stripped) == home_of(same_code_as),
                   f"{label}: L={home_of(stripped)}, but L={home_of(same_code_as)} in the "
                   "executable built from the same objects")
    cold = syms.get("luaV_execute.cold")
    top = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:3])
    report.append(f"{label}: {describe(stripped)}; .symtab {truth[0]:#x}..{truth[1]:#x}" +
                  (f", .cold {cold[0]:#x}..{cold[1]:#x}" if cold else "") +
                  f"; first arguments: {top}" +
                  (f"; {summarize_probe(events)}" if events is not None else ""))
    # Self-test: a range shifted by 16 bytes, and another register or slot, must be reported.
    if stripped["result"] not in ("ok", "unsupported"):
        return stripped
    probe = Failures()
    wrong = dict(stripped, start=stripped["start"] + 16, reg=stripped["reg"] ^ 1,
                 cfa_off=stripped["cfa_off"] - 8)
    with contextlib_quiet():
        compare_build(label, truth, oracle, counts, copies, unstripped, wrong, probe, events)
    expected = 2 if stripped["result"] == "ok" and oracle != "either" else 1
    fail.check(len(probe.messages) >= expected,
               f"{label}: self-test: a wrong range or L location went unnoticed")
    return stripped


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
        cc = args.clang if variant.compiler == "clang" else args.cc
        outputs = build_variant(cc, tree, args.version, variant, out_dir)
        exe_result = None
        for path in outputs:
            label = f"Lua {args.version} {variant.name} {os.path.basename(path)}"
            result = check_binary(args, tools, label, path, variant, tree, fail, report,
                                  same_code_as=exe_result)
            if path.endswith("/lua") and result and result["result"] == "ok":
                exe_result = result
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
    parser.add_argument("--probe", help="tests/fixtures/lua_detect/lua_layout_probe.c")
    parser.add_argument("--cc", default="cc")
    parser.add_argument("--clang", default="clang", help="the compiler of the clang build")
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
