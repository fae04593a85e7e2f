#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The BPF Lua walkers against a target that corrupts its own VM while it is profiled.

    hostile_target_test.py --lua-perf BIN --target PROGRAM {lua54,luajit}

PROGRAM is tests/fixtures/hostile/hostile_<vm>.c built against Debian's liblua5.4 or libluajit:
it calls the C function hostile(mode) from Lua (main -> top -> mid -> leaf -> hostile, or
main -> victim -> leaf for the absurd Proto), which corrupts the VM as the mode says, burns CPU
in spin_<mode> and repairs everything before returning (the modes are listed in each
program's header comment). lua-perf profiles it for 4 s at 997 Hz with --stats. Asserted:
  (a) lua-perf exits 0 and writes its output; the target is still running;
  (b) every mode has at least MIN_MODE samples, and >= 95% of them have exactly the expected
      stack: the clean modes a complete stack from _start with their Lua frames; the corrupt
      modes a stack that ends at the interpreter frame (luaV_execute, lj_vm) running the
      damaged frames, with exactly the Lua frames that precede the damage (the consistent
      CallInfo cycle: MAX_LUA_FRAMES_PER_ACTIVATION frames of leaf);
  (c) --stats counts them by reason: "Lua frames unreadable or inconsistent" and "depth limit"
      each within [95%, 100% + 1% of all samples] of the samples of the modes that end so,
      "complete" at least 95% of the clean modes' samples;
  (d) the absurd Proto's frame has a name of at most 200 characters.
Exit status: 0 pass, 1 fail, 77 skipped (not root).
"""
import argparse
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib.folded import compress, user_part  # noqa: E402
from pylib.profiling import (  # noqa: E402
    cannot_profile, Child, end_reasons, profile_child, run_case)
from pylib.report import fail, log  # noqa: E402

MIN_MODE = 150        # each mode burns 1/7 (Lua 5.4) or 1/4 (LuaJIT) of ~4000 samples
MIN_SHARE = 0.95
MAX_LUA_FRAMES_PER_ACTIVATION = 200  # bpf/abi/lua_abi.h
BROKEN = "Lua frames unreadable or inconsistent"
DEPTH = "depth limit"
COMPLETE = "complete"

# mode -> (the stack's first frame, its Lua frames root first, how --stats counts it);
# None for a Lua name: any (the absurd Proto's frame)
PUC_MODES = {
    "clean": ("_start", ["main", "top", "mid", "leaf"], COMPLETE),
    "absurd_proto": ("_start", ["main", None, "leaf"], COMPLETE),
    "loop_self": ("luaV_execute", ["mid", "leaf"], BROKEN),
    "unreadable_previous": ("luaV_execute", ["mid", "leaf"], BROKEN),
    "garbage_previous": ("luaV_execute", ["leaf"], BROKEN),
    "garbage_ci": ("luaV_execute", [], BROKEN),
    "consistent_cycle": ("luaV_execute", ["leaf"] * MAX_LUA_FRAMES_PER_ACTIVATION, DEPTH),
}
LUAJIT_MODES = {
    "clean": ("_start", ["main", "top", "mid", "leaf"], COMPLETE),
    "link_loop": ("lj_vm", ["leaf"], BROKEN),
    "bad_return_pc": ("lj_vm", [], BROKEN),
    "not_a_function": ("lj_vm", [], BROKEN),
}
LUA_FRAME = re.compile(r"L:([^@]*)@")


def mode_of(user):
    spins = [i for i, f in enumerate(user) if f.startswith("spin_")]
    return (user[spins[0]][len("spin_"):], user[:spins[0] + 1]) if spins else (None, user)


def shape_ok(stack, expected):
    first, lua_names, _ = expected
    if not stack or stack[0] != first or stack[-2:-1] != ("hostile",):
        return False
    names = [m[1] for m in map(LUA_FRAME.match, stack) if m]
    return len(names) == len(lua_names) and all(
        want is None or got == want for got, want in zip(names, lua_names))


def check_modes(stacks, modes):
    """(b) and (d); returns {mode: samples}."""
    samples = {mode: 0 for mode in modes}
    good = dict(samples)
    examples = {}
    for frames, count in stacks:
        mode, stack = mode_of(user_part(frames))
        if mode not in modes:
            continue
        samples[mode] += count
        if shape_ok(stack, modes[mode]):
            good[mode] += count
        else:
            examples.setdefault(mode, compress(stack))
        for frame in stack:
            if LUA_FRAME.match(frame) and len(frame) > 200:
                fail(f"{mode}: a Lua frame name of {len(frame)} characters: {frame[:300]!r}")
    for mode, n in samples.items():
        log(f"  {mode:20} {n:6d} samples, {good[mode]:6d} with the expected stack")
        if n < MIN_MODE:
            fail(f"{mode}: {n} samples (want >= {MIN_MODE})")
        if good[mode] < MIN_SHARE * n:
            fail(f"{mode}: {good[mode]} of {n} samples with the expected stack "
                 f"{modes[mode][:2]}; e.g. {examples.get(mode)}")
    return samples


def check_reasons(reasons, samples, modes, total):
    """(c)"""
    for reason in (BROKEN, DEPTH, COMPLETE):
        want = sum(n for mode, n in samples.items() if modes[mode][2] == reason)
        got = reasons.get(reason, 0)
        log(f"  --stats {reason!r}: {got} (modes ending so: {want})")
        if want and got < MIN_SHARE * want:
            fail(f"--stats counts {got} stacks as {reason!r}, want >= {MIN_SHARE} * {want}")
        if reason != COMPLETE and got > want + 0.01 * total:
            fail(f"--stats counts {got} stacks as {reason!r}: more than the {want} of the "
                 "modes that end so")


def run(args, tmp):
    child = Child([args.target])
    err, stacks = profile_child(args, tmp, child, os.path.basename(args.target),
                                extra=["--stats"])
    modes = PUC_MODES if args.vm == "lua54" else LUAJIT_MODES
    samples = check_modes(stacks, modes)
    check_reasons(end_reasons(err), samples, modes, sum(c for _, c in stacks))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lua-perf", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("vm", choices=["lua54", "luajit"])
    args = ap.parse_args()
    args.use_perf = False
    args.case = f"hostile_{args.vm}"
    status = cannot_profile(args)
    if status is not None:
        sys.exit(status)
    sys.exit(run_case(run, args, "lua-perf-hostile-"))


if __name__ == "__main__":
    main()
