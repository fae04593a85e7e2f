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
  tailhook   tail_call_hook.lua  a call hook burns the CPU: L:main;L:hook_workload;L:<f>;<vm>*;
                                 lua_call[k];<vm>*;<VM>;L:hook_burn, <f> = tail_first,
                                 tail_middle or tail_target (>= 20% each; together >= 99%): in
                                 the hook of a tail call, run before 5.1/5.3 remove the caller's
                                 CallInfo, the caller is left out too
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

Exit status: 0 pass, 1 fail, 77 skipped (not root). Python 3 standard library only; the
interpreters, scenarios and Lua checks are tests/pylib/lua_profile.py (other drivers run them too).
"""
import argparse
import collections
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import chains, profiling  # noqa: E402
from pylib.chains import exact, one, times  # noqa: E402
from pylib.folded import top_stacks  # noqa: E402
from pylib.lua_profile import (  # noqa: E402
    BUILTINS, case_scenario, definition_line, INTERPRETERS, L, line_containing, MIN_HOT, SCENARIOS,
    start_workload, vm_file_of)
from pylib.paths import fixture  # noqa: E402
from pylib.profiling import Child  # noqa: E402
from pylib.report import fail, log, TestFailure  # noqa: E402

DURATION = 3

# --------------------------------------------------------------------------------------------
# Running


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

    _, stacks = profiling.profile_child(args, tmp, child, label, during=start_phase1)
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
    err, stacks = profiling.profile_child(args, tmp, child, "lua5.2")
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
    err, stacks = profiling.profile_child(args, tmp, child, "fixture")
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
    depth = int(profiling.need_info(child, "depth"))
    chain = [one(exact("main")), one(exact("run_deep")), times(exact("recurse"), depth),
             one(exact("burn_deep"))]
    chains.check_chains(stacks, exact("burn_deep"), chains.MAIN_PREFIX, chain, MIN_HOT,
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
    args.use_perf = False  # pylib.profiling.Profiler option; perf has no Lua frames

    if args.case in SCENARIOS and not args.interp:
        ap.error("--interp is required for a scenario")
    if args.case == "nonlua" and not args.fixture:
        ap.error("--fixture is required for nonlua")
    if args.case != "self-check":
        status = profiling.cannot_profile(args)
        if status is not None:
            return status
    cases = {"nonlua": case_nonlua, "freed_protos": case_freed_protos,
             "unsupported": case_unsupported, "self-check": case_self_check}
    return profiling.run_case(cases.get(args.case, case_scenario), args,
                              f"lua-perf-lua-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
