#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lua_slot_profile_test.py - end to end under real BPF: Lua 5.4 built so that luaV_execute keeps
lua_State *L in its own stack frame instead of a callee-saved register (gcc -O1: [rsp+8] =
CFA-0xb8; gcc -O3: [rsp] = CFA-0xa0; clang -O2: [rsp+0x10] = CFA-0xc0), stripped, and profiled
by lua-perf on tests/fixtures/lua/deep_recursion.lua. The BPF walker reads L at the frame's CFA + l_cfa_off.

    lua_slot_profile_test.py --variant O1|O3|clang-O2 --lua-perf BIN --tool LUA_DETECT_TOOL
        --sources DIR --work DIR --scripts DIR [--cc CC] [--clang CLANG] [--keep]

1. The interpreter is built from the Debian 5.4 source tree (scripts/fetch-lua-sources.sh, in
   --sources) exactly as lua_detect_test.py mode builds does (pylib/lua_builds.py's
   build_variant: the C API exported with -Wl,-E like Debian's /usr/bin/lua5.4), once, in
   WORK/lua5.4-VARIANT, and a stripped copy `lua5.4-VARIANT` is made: lua-perf must find
   luaV_execute without symbols.
2. lua_detect_tool on that copy must report L in the frame (l_in_frame=1): otherwise this test
   would not exercise the stack-slot path at all.
3. lua_profile_test.py's scenario "deep" runs with that interpreter (pylib/lua_profile.py):
   >= 99% of the >= 1000 samples whose leaf is `L:leaf_burn@...` must be exactly
   `_start;...;main;<exe frames>*;luaV_execute;L:main@<chunk>:0;L:deep_workload@<chunk>:<line>;
   L:descend@<chunk>:<line> x120;L:leaf_burn@<chunk>:<line>`, >= 99% of all samples complete,
   every Lua frame well formed (see that file's docstring for all its checks).

Exit status: 0 pass, 1 fail, 77 skipped (not root).
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import detect_checks, lua_builds, lua_profile, profiling  # noqa: E402
from pylib.report import fail, log  # noqa: E402


def build_interpreter(args):
    """The stripped interpreter of the variant (built once, then reused)."""
    variant = next(v for v in lua_builds.VARIANTS if v.name == args.variant)
    cc = args.clang if variant.compiler == "clang" else args.cc
    out_dir = os.path.join(args.work, f"lua5.4-{variant.name}")
    try:
        tree = lua_builds.source_tree(args.sources, "5.4")
        exe = lua_builds.build_variant(cc, tree, "5.4", variant, out_dir)[0]
        stripped = os.path.join(out_dir, f"lua5.4-{variant.name}")
        detect_checks.run(["strip", "-o", stripped, exe])
    except RuntimeError as e:
        fail(f"building Lua 5.4 {variant.name}: {e}")
    return stripped


def check_detection(args, exe):
    try:
        d = lua_builds.detect(args.tool, exe)
    except RuntimeError as e:
        fail(str(e))
    log(f"{exe}: {lua_builds.describe(d)}")
    if d["result"] != "ok" or not d["in_frame"]:
        fail(f"{exe}: detection says {lua_builds.describe(d)}: this test needs a build whose "
             "luaV_execute keeps L in its stack frame (l_in_frame=1)")


def case_slot(args, tmp):
    exe = build_interpreter(args)
    check_detection(args, exe)
    lua_profile.INTERPRETERS[args.interp] = {"exe": exe, "version": "Lua 5.4",
                                     "package": f"the Lua 5.4 {args.variant} build"}
    lua_profile.case_scenario(args, tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", required=True,
                    choices=[v.name for v in lua_builds.VARIANTS if not v.shared])
    ap.add_argument("--lua-perf", required=True, help="path of the lua-perf binary")
    ap.add_argument("--tool", required=True, help="lua_detect_tool")
    ap.add_argument("--sources", required=True, help="directory of scripts/fetch-lua-sources.sh")
    ap.add_argument("--work", required=True, help="build directory of the interpreter")
    ap.add_argument("--scripts", required=True, help="tests/fixtures/lua (the workloads)")
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--clang", default="clang")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    # What pylib.lua_profile.case_scenario reads.
    args.case, args.interp, args.relative, args.embed = "deep", f"54-{args.variant}", False, None
    args.use_perf = False
    status = profiling.cannot_profile(args)
    if status is not None:
        return status
    return profiling.run_case(case_slot, args, f"lua-perf-lua-slot-{args.variant}-")


if __name__ == "__main__":
    sys.exit(main())
