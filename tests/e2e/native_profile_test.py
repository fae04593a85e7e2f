#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end native profiling tests: run a fixture (tests/fixtures/native/), profile it with lua-perf,
check the folded stacks it wrote.

    native_profile_test.py --lua-perf BIN CASE [--fixture F] [--plugin P] [--unstripped U]
                           [--other-plugin P2]
    native_profile_test.py self-check --fixture-dir DIR --plugin P

CASE: deep, deep_stripped, deep_stripped_semicolon, qsort, signal, vdso, dlopen,
dlopen_no_sections, dlopen_damaged_cfi, dlopen_same_address, not_elf_mapped, threads, realign,
ucontext, errors, target_exit;
self-check needs neither root nor lua-perf: it checks the fixtures' machine code with objdump
(real calls, real recursion, no renamed clones) and runs each fixture briefly.

For each profiled fixture the "hot" samples are those whose leaf (ignoring the kernel's
`..._[k]` frames at the leaf end) is the fixture's hot function. Asserted:
  (a) at least MIN_HOT hot samples, and >= 99% of them carry exactly the expected chain from
      the chain's first function (`main`, or `thread_main` for threads) to the hot function;
  (b) >= 99% of them are complete: the root frame is `_start` (or, for threads, glibc's clone3
      at the offset the fixture reports), with exactly the expected libc start-up frames
      between the root and the chain;
  (c) lua-perf exited 0 and its stderr summary mentions samples.
Runs are `-f 997 -d 4` with MIN_HOT 1000, except dlopen (-d 5, the dlopen is triggered once
lua-perf holds perf_event fds, MIN_HOT 500; dlopen_no_sections: the same with the plugin's
section headers dropped, its frames BASE+0xOFF named by the --unstripped plugin's symbols;
dlopen_damaged_cfi: the plugin's .eh_frame is garbage, fixture_deep from --fixture-dir is profiled
alongside with MIN_HOT 1000, --stats; dlopen_same_address: two processes on one CPU, MIN_HOT 500
each; see their docstrings) and target_exit (the target is ended by SIGTERM
1.5 s into sampling during a 7 s run; lua-perf must exit 0 and keep >= 300 hot samples).
errors: a free PID, a kernel thread (PID 2) and an unprivileged run (lua-perf and its target
both as uid 65534) must each give exit code != 0 and exactly one stderr line matching
respectively /no such process|does not exist|.../, /kernel thread/, /permission|privilege|
root|CAP_.../ (the first two must also name the PID).
Exit status: 0 pass, 1 fail, 77 skipped (not root).

Development aid: --use-perf replaces lua-perf by `perf record --call-graph dwarf` + `perf script`,
converted to the same folded format, to check these expectations independently of lua-perf.

Python 3 standard library only.
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib.chains import (  # noqa: E402
    check_chains, exact, LIBC, libc_fn, M, MAIN_PREFIX, MIN_SHARE, one, some, times)
from pylib.elf import Elf  # noqa: E402
from pylib.folded import parse_fold, split_offset, top_stacks, user_part  # noqa: E402
from pylib.profiling import (  # noqa: E402
    cannot_profile, check_exit, Child, die_with_parent, DURATION, end_reasons, expect_error, FREQ,
    need_info, profile_child, Profiler, run_case)
from pylib.report import fail, log, SKIP, TestFailure  # noqa: E402

MIN_HOT = 1000          # hot samples for a 4 s run at 997 Hz (~4000 possible per busy thread)


# --------------------------------------------------------------------------------------------
# Frame matchers and chain specifications

def any_in_file(basename):
    return M(f"<{basename}+0x*>", lambda fr: (split_offset(fr) or ("",))[0] == basename)


def vdso_frame():
    """A vDSO frame: __vdso_* names, or any name mentioning vdso ([vdso]+0x..,
    linux-vdso.so.1+0x..). The vDSO's weak alias `clock_gettime` is not accepted: it would be
    indistinguishable from libc's clock_gettime just below it."""
    return M("<__vdso_*|*vdso*>",
             lambda fr: fr.startswith("__vdso_") or "vdso" in fr.lower())


# --------------------------------------------------------------------------------------------
# Checks


def parse_file_offset(text, what):
    so = split_offset(text)
    if so is None:
        fail(f"cannot parse {what} {text!r} (want FILE+0xOFFSET)")
    return so


def profile_fixture(args, tmp, argv, duration=DURATION, stdin=False):
    """Start the fixture, wait for 'ready', profile it; returns (child, stacks)."""
    child = Child(argv, stdin=stdin)
    _, stacks = profile_child(args, tmp, child, "fixture", duration)
    return child, stacks


# --------------------------------------------------------------------------------------------
# Cases


def case_deep(args, tmp, stripped=False):
    child, stacks = profile_fixture(args, tmp, [args.fixture])
    depth = int(need_info(child, "depth"))
    if depth < 100:
        fail(f"fixture_deep reports depth {depth}, want >= 100")
    translate = None
    if stripped:
        translate = check_stripped_frames(args, stacks)
    chain = [one(exact("main")), one(exact("run_deep")), times(exact("recurse"), depth),
             one(exact("burn_deep"))]
    check_chains(stacks, exact("burn_deep"), MAIN_PREFIX, chain, MIN_HOT,
                 "fixture_deep" + ("_stripped" if stripped else ""), translate)


def case_ucontext(args, tmp):
    """A recursion on a makecontext stack whose first frame sits at the end of its mapping (an
    inaccessible page follows): the unwinder's copies of that stack stop at the mapping's end
    (bpf/lib/stack_window.bpf.h), and the stacks must be as whole as on the main stack, down
    to glibc's context start (which has no unwind row: the unwind ends there)."""
    child, stacks = profile_fixture(args, tmp, [args.fixture])
    depth = int(need_info(child, "depth"))
    chain = [one(exact("on_own_stack")), times(exact("recurse"), depth), one(exact("burn_deep"))]
    check_chains(stacks, exact("burn_deep"), [one(libc_fn({"start_context"}))], chain, MIN_HOT,
                 "fixture_ucontext")


def case_deep_stripped_semicolon(args, tmp):
    """The stripped fixture run from a file whose name holds ';', the folded frame separator:
    its frames must read `fixture:deep+0xOFF`, one frame each (a name is the target's to
    choose)."""
    odd = os.path.join(tmp, "fixture;deep")
    shutil.copy2(args.fixture, odd)
    args.fixture = odd
    case_deep(args, tmp, stripped=True)


def case_realign(args, tmp):
    """The caller's CFA is rbp-based and its rbp is only recoverable through the realigned
    callee's DW_CFA_expression (saved at rbp + 0)."""
    child, stacks = profile_fixture(args, tmp, [args.fixture])
    chain = [one(exact("main")), one(exact("run_realign")), one(exact("frame_pointer_caller")),
             one(exact("realigned")), one(exact("burn_realign"))]
    check_chains(stacks, exact("burn_realign"), MAIN_PREFIX, chain, MIN_HOT, "fixture_realign")


def check_stripped_frames(args, stacks):
    """The stripped binary has no .symtab: its frames must be BASENAME+0xOFF; translate them
    with the unstripped twin's symbols (strip does not move code)."""
    base = os.path.basename(args.fixture).replace(";", ":")  # ';' separates frames: replaced
    stripped, full = Elf(args.fixture), Elf(args.unstripped)
    if stripped.has_section(".symtab"):
        fail(f"{args.fixture} still has a .symtab: not a stripped binary")
    if stripped.entry != full.entry or not full.has_section(".symtab"):
        fail(f"{args.fixture} and {args.unstripped} are not the same program")
    if not stripped.text_offset_is_vaddr():
        fail(f"{args.fixture}: text file offsets differ from addresses; offsets are ambiguous")
    # Names only .symtab has (main and _start could be found by heuristics, these cannot).
    own = {"run_deep", "recurse", "burn_deep"}
    named = collections.Counter()
    for frames, c in stacks:
        for fr in user_part(frames):
            if fr in own:
                named[fr] += c
    if named:
        fail(f"frames named {dict(named)} for {base}, which has no symbols for them "
             "(stripped): where did the names come from?\n" + top_stacks(stacks))

    return names_from_twin(base, full)


def names_from_twin(base, full):
    """A stack translation: frames BASE+0xOFF named by the symbols of full, the Elf of the same
    code with its symbols (stripping does not move code)."""
    def translate(frames):
        out = []
        for fr in frames:
            so = split_offset(fr)
            if so and so[0] == base:
                name = full.lookup(so[1]) or full.lookup(so[1] - 1)
                out.append(name or fr)
            else:
                out.append(fr)
        return tuple(out)

    return translate


def case_qsort(args, tmp):
    _, stacks = profile_fixture(args, tmp, [args.fixture])
    libc_part = [one(libc_fn({"qsort_r", "qsort"}, allow_offset=False)),
                 one(libc_fn({"msort_with_tmp"}))]
    chain = [one(exact("main")), one(exact("sort_forever"))] + libc_part + \
        [one(exact("compare_slowly"))]
    hot = check_chains(stacks, exact("compare_slowly"), MAIN_PREFIX, chain, MIN_HOT,
                       "fixture_qsort")
    # Consistency: the libc frames between sort_forever and compare_slowly are one and the same
    # sequence (two ints: one comparator call site in msort_with_tmp).
    middles = collections.Counter()
    for f, c in hot:
        if "sort_forever" in f:
            i = len(f) - 1 - f[::-1].index("sort_forever")
            middles[f[i + 1:-1]] += c
    n_hot = sum(c for _, c in hot)
    common, n = middles.most_common(1)[0]
    log(f"  libc frames between sort_forever and compare_slowly: {';'.join(common)} "
        f"({n}/{n_hot})")
    if n < MIN_SHARE * n_hot:
        fail("fixture_qsort: the libc frames between sort_forever and compare_slowly vary:\n"
             + "\n".join(f"  {c:7d}  {';'.join(m)}" for m, c in middles.most_common(8)))


def case_signal(args, tmp):
    child, stacks = profile_fixture(args, tmp, [args.fixture])
    restorer = need_info(child, "restorer")
    if restorer == "unknown":
        r = libc_fn({"restore_rt"})
    else:
        f, off = parse_file_offset(restorer, "restorer")
        if f != LIBC:
            fail(f"signal restorer is in {f}, not {LIBC}: unexpected libc layout")
        r = libc_fn({"restore_rt"}, offsets=[off])
    chain = [one(exact("main")), one(exact("wait_for_signals")), one(r),
             one(exact("signal_handler")), one(exact("burn_in_handler"))]
    check_chains(stacks, exact("burn_in_handler"), MAIN_PREFIX, chain, MIN_HOT,
                 "fixture_signal")


def case_vdso(args, tmp):
    _, stacks = profile_fixture(args, tmp, [args.fixture])
    v = vdso_frame()
    chain = [one(exact("main")), one(exact("time_loop")),
             one(libc_fn({"clock_gettime", "clock_gettime64"}, allow_offset=False)),
             some(v, 1, 3)]
    try:
        check_chains(stacks, v, MAIN_PREFIX, chain, MIN_HOT, "fixture_vdso")
    except TestFailure as e:
        twice = sum(c for f, c in stacks if user_part(f)[-2:] == ("clock_gettime",) * 2)
        if twice:
            raise TestFailure(
                f"{e}\n  hint: {twice} samples end in clock_gettime;clock_gettime: the vDSO "
                "frame got the vDSO's WEAK alias `clock_gettime`, indistinguishable from libc's; "
                "prefer its GLOBAL `__vdso_clock_gettime` (as perf does) or mark vDSO frames "
                "([vdso]+0x...)") from None
        raise


def case_threads(args, tmp):
    child, stacks = profile_fixture(args, tmp, [args.fixture])
    offs = {}
    for key in ("thread_root", "thread_start"):
        val = need_info(child, key)
        if val != "unknown":
            f, off = parse_file_offset(val, key)
            if f != LIBC:
                fail(f"{key} is in {f}, not {LIBC}: unexpected libc layout")
            offs[key] = [off]
    prefix = [one(libc_fn({"clone3"}, offsets=offs.get("thread_root"))),
              one(libc_fn({"start_thread"}, offsets=offs.get("thread_start")))]
    chain = [one(exact("thread_main")), one(exact("worker_loop")), one(exact("burn_thread"))]
    check_chains(stacks, exact("burn_thread"), prefix, chain, MIN_HOT, "fixture_threads")


def profile_dlopen(args, tmp, others=(), extra=()):
    """fixture_dlopen made to dlopen() args.plugin once lua-perf samples it (and the already
    running Child objects `others`, profiled alongside); returns (lua-perf's stderr, stacks)."""
    child = Child([args.fixture, args.plugin], stdin=True)
    prof = None
    try:
        child.wait_for("ready")
        with open("/proc/%d/maps" % child.pid) as f:
            if os.path.basename(args.plugin) in f.read():
                fail("plugin already mapped before the test asked for the dlopen")
        prof = Profiler(args, [child.pid] + [o.pid for o in others], DURATION + 1,
                        os.path.join(tmp, "out.fold"), extra=extra)
        if not prof.wait_attached():
            log("warning: no perf_event fd seen in the profiler within 15 s; going on")
        time.sleep(0.5)
        log(f"profiler attached after {time.monotonic() - prof.start_time:.1f} s; "
            "triggering dlopen")
        child.send("go\n")
        child.wait_for("loaded", timeout=5)
        rc, _, err = prof.finish()
        check_exit(rc, err, args)
    finally:
        if prof:
            prof.kill()
        child.close()
    return err, parse_fold(os.path.join(tmp, "out.fold"))


def case_dlopen(args, tmp, translate=None):
    _, stacks = profile_dlopen(args, tmp)
    chain = [one(exact("main")), one(exact("plugin_entry")), one(exact("plugin_hot"))]
    check_chains(stacks, exact("plugin_hot"), MAIN_PREFIX, chain, MIN_HOT // 2, "fixture_dlopen",
                 translate)


def case_dlopen_no_sections(args, tmp):
    """dlopen of the plugin without section headers: lua-perf unwinds through it with the
    .eh_frame PT_GNU_EH_FRAME names, and (no symbols) names its frames BASE+0xOFF."""
    base, plugin, full = os.path.basename(args.plugin), Elf(args.plugin), Elf(args.unstripped)
    if plugin.sections or not any(p[0] == 0x6474E550 for p in plugin.phdrs):  # PT_GNU_EH_FRAME
        fail(f"{args.plugin}: has section headers, or no PT_GNU_EH_FRAME")
    if not plugin.text_offset_is_vaddr():
        fail(f"{args.plugin}: text file offsets differ from addresses; offsets are ambiguous")
    case_dlopen(args, tmp, names_from_twin(base, full))


def case_dlopen_damaged_cfi(args, tmp):
    """dlopen of the plugin with garbage in .eh_frame and .eh_frame_hdr, while fixture_deep runs
    in a second profiled process: exactly one warning, naming the plugin's path; the plugin's
    stacks end in it (plugin_hot alone: its symbols are intact), counted in --stats as "file
    without unwind table"; fixture_deep's stacks are as complete as in `deep`."""
    deep = Child([os.path.join(args.fixture_dir, "fixture_deep")])
    try:
        deep.wait_for("ready")
        err, stacks = profile_dlopen(args, tmp, others=[deep], extra=["--stats"])
        if deep.proc.poll() is not None:
            fail(f"fixture_deep exited during profiling with {deep.proc.returncode}")
    finally:
        deep.close()
    warnings = [line for line in err.split("\n") if line.startswith("lua-perf: warning:")]
    about = [line for line in warnings if args.plugin in line]
    log(f"warnings: {warnings!r}")
    if len(warnings) != 1 or len(about) != 1:
        fail(f"want exactly one warning, naming {args.plugin}; got {warnings!r}")
    if ".eh_frame" not in about[0] or "no unwind table" not in about[0]:
        fail(f"the warning does not say .eh_frame is unusable and there is no unwind table: "
             f"{about[0]!r}")
    # The plugin's samples: no table, so the unwind stops at the leaf, named from .symtab.
    hot = sum(c for f, c in stacks if user_part(f) and user_part(f)[-1] == "plugin_hot")
    alone = sum(c for f, c in stacks if user_part(f) == ("plugin_hot",))
    log(f"plugin_hot: {hot} samples, {alone} of them with plugin_hot alone")
    if hot < MIN_HOT // 2 or alone < MIN_SHARE * hot:
        fail(f"want >= {MIN_HOT // 2} samples in plugin_hot, >= 99% of them ending there\n"
             + top_stacks(stacks))
    reasons = end_reasons(err)
    log(f"end reasons: {reasons}")
    if reasons.get("file without unwind table", 0) < alone:
        fail(f"--stats counts {reasons.get('file without unwind table', 0)} stacks ended in a "
             f"file without unwind table, fewer than the {alone} that ended in plugin_hot")
    depth = int(need_info(deep, "depth"))
    chain = [one(exact("main")), one(exact("run_deep")), times(exact("recurse"), depth),
             one(exact("burn_deep"))]
    check_chains(stacks, exact("burn_deep"), MAIN_PREFIX, chain, MIN_HOT, "fixture_deep")


def plugin_base(pid, plugin):
    """The lowest address at which process pid maps the file plugin."""
    with open("/proc/%d/maps" % pid) as f:
        starts = [int(line.split("-", 1)[0], 16) for line in f
                  if line.rstrip().endswith(os.path.realpath(plugin))]
    if not starts:
        fail(f"PID {pid} does not map {plugin}")
    return min(starts)


def text_bytes(path):
    """The bytes of an ELF file's .text section."""
    elf = Elf(path)
    sh = elf.sections.get(".text")
    if not sh:
        fail(f"{path}: no .text section")
    return elf.data[sh[4]:sh[4] + sh[5]]


def case_dlopen_same_address(args, tmp):
    """Two fixture_dlopen processes, on CPU 0 and with ASLR off (setarch -R), dlopen() the
    plugin and its twin --other-plugin: the same machine code, but CFI that says plugin_hot has
    no caller (.cfi_undefined rip). Both land at the same address, so at the same pcs: a native
    lookup one process left in the CPU's cache (bpf/lib/frame_rules.bpf.h, remembered_lookup)
    must not serve the other. The plugin's stacks are whole as in `dlopen`; the twin's end at
    plugin_hot."""
    plugins = (args.plugin, args.other_plugin)
    if text_bytes(args.plugin) != text_bytes(args.other_plugin):
        fail(f"{args.other_plugin}: its code differs from {args.plugin}'s: nothing is tested")
    # One CPU for both: the cache is per CPU.
    children = [Child(["taskset", "-c", "0", "setarch", "-R", args.fixture, plugin], stdin=True)
                for plugin in plugins]
    prof = None
    try:
        for child in children:
            child.wait_for("ready")
        prof = Profiler(args, [c.pid for c in children], DURATION + 1,
                        os.path.join(tmp, "out.fold"))
        if not prof.wait_attached():
            log("warning: no perf_event fd seen in the profiler within 15 s; going on")
        time.sleep(0.5)
        for child in children:
            child.send("go\n")
        for child in children:
            child.wait_for("loaded", timeout=5)
        bases = [plugin_base(c.pid, p) for c, p in zip(children, plugins)]
        log(f"plugin bases: {[hex(b) for b in bases]}")
        if bases[0] != bases[1]:
            fail(f"the two plugins are mapped at different addresses {bases}: setarch -R did not "
                 "give both processes the same layout, nothing is tested")
        rc, _, err = prof.finish()
        check_exit(rc, err, args)
    finally:
        if prof:
            prof.kill()
        for child in children:
            child.close()
    stacks = parse_fold(os.path.join(tmp, "out.fold"))
    alone = [(f, c) for f, c in stacks if user_part(f) == ("plugin_hot",)]
    whole = [(f, c) for f, c in stacks if user_part(f) != ("plugin_hot",)]
    n_alone = sum(c for _, c in alone)
    log(f"plugin_hot alone (the twin without caller): {n_alone} samples")
    if n_alone < MIN_HOT // 2:
        fail(f"want >= {MIN_HOT // 2} samples of the twin plugin ending in plugin_hot\n"
             + top_stacks(stacks))
    chain = [one(exact("main")), one(exact("plugin_entry")), one(exact("plugin_hot"))]
    check_chains(whole, exact("plugin_hot"), MAIN_PREFIX, chain, MIN_HOT // 2, "the plugin")


# A process that maps a file executable which is no ELF file, then burns CPU in Python.
MAP_NOT_ELF = """
import mmap, sys, time
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC)
print("ready", flush=True)
x = 0
while True:
    x = (x * 6364136223846793005 + 1) % (1 << 64)
"""


def case_not_elf_mapped(args, tmp):
    """Two processes map the same non-ELF file executable (as a container could): lua-perf says
    so in exactly one warning naming the file, not once per process or per reading of their
    maps, profiles both and exits 0."""
    garbage = os.path.join(tmp, "not-elf.so")
    with open(garbage, "wb") as f:
        f.write(b"\x7fELF" + bytes(range(256)) * 64)  # an ELF magic, a garbage header
    children = [Child([sys.executable, "-c", MAP_NOT_ELF, garbage]) for _ in range(2)]
    try:
        for child in children:
            child.wait_for("ready")
        out = os.path.join(tmp, "out.fold")
        prof = Profiler(args, [c.pid for c in children], 2, out)
        rc, _, err = prof.finish()
        check_exit(rc, err, args)
    finally:
        for child in children:
            child.close()
    warnings = [line for line in err.split("\n") if line.startswith("lua-perf: warning:")]
    log(f"warnings: {warnings!r}")
    if len(warnings) != 1 or garbage not in warnings[0]:
        fail(f"want exactly one warning, naming {garbage}; got {warnings!r}")
    parse_fold(out)


def profile_dd(args, tmp, extra):
    """Stock dd copying /dev/zero to /dev/null: most of its time is in the kernel's read path."""
    dd = subprocess.Popen(["dd", "if=/dev/zero", "of=/dev/null", "bs=1M"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          preexec_fn=die_with_parent)
    out = os.path.join(tmp, "dd%s.fold" % "".join(extra))
    prof = None
    try:
        time.sleep(0.3)
        prof = Profiler(args, [dd.pid], 2, out, extra=extra)
        rc, _, err = prof.finish()
        check_exit(rc, err, args)
    finally:
        if prof:
            prof.kill()
        dd.kill()
        dd.wait()
    return parse_fold(out)


def case_kernel_frames(args, tmp):
    """Kernel frames `symbol_[k]` at the leaf end of the user stack; --no-kernel drops them and
    keeps the user stacks complete."""
    stacks = profile_dd(args, tmp, [])
    total = sum(c for _, c in stacks)
    in_kernel = sum(c for f, c in stacks if f[-1].endswith("_[k]"))
    read_path = sum(c for f, c in stacks
                    if any(fr in ("ksys_read_[k]", "__x64_sys_read_[k]", "vfs_read_[k]")
                           for fr in f))
    log(f"dd: {total} samples, {in_kernel} ending in kernel frames, {read_path} in the read path")
    if total < 1000 or in_kernel < 0.5 * total or read_path < 0.3 * total:
        fail("dd: want >= 1000 samples, >= 50% ending in kernel frames and >= 30% in the "
             "kernel's read path\n" + top_stacks(stacks))
    stacks = profile_dd(args, tmp, ["--no-kernel"])
    total = sum(c for _, c in stacks)
    kernel = sum(c for f, c in stacks if any(fr.endswith("_[k]") for fr in f))
    complete = sum(c for f, c in stacks if f and f[0] == "_start")
    log(f"dd --no-kernel: {total} samples, {kernel} with kernel frames, {complete} from _start")
    if total < 1000 or kernel or complete < MIN_SHARE * total:
        fail("dd --no-kernel: want >= 1000 samples, no kernel frame, >= 99% complete user "
             "stacks\n" + top_stacks(stacks))


def case_target_exit(args, tmp):
    """The target is ended (SIGTERM) 1.5 s after lua-perf started sampling, during a 7 s run: not
    at a fixed time, since lua-perf's own start-up can take seconds on a loaded machine."""
    child = Child([args.fixture, "60"])
    prof = None
    try:
        child.wait_for("ready")
        reaper = threading.Thread(target=child.proc.wait, daemon=True)  # no zombie left
        reaper.start()
        prof = Profiler(args, [child.pid], DURATION + 3, os.path.join(tmp, "out.fold"))
        if not prof.wait_attached():
            fail("lua-perf opened no perf event within 15 s")
        time.sleep(1.5)
        os.kill(child.pid, signal.SIGTERM)
        rc, _, err = prof.finish(timeout=DURATION + 23)
        reaper.join(timeout=5)
        if child.proc.returncode != -signal.SIGTERM:
            fail(f"fixture_deep exited with {child.proc.returncode}, expected SIGTERM")
        check_exit(rc, err, args)
    finally:
        if prof:
            prof.kill()
        child.close()
    stacks = parse_fold(os.path.join(tmp, "out.fold"))
    depth = int(need_info(child, "depth"))
    chain = [one(exact("main")), one(exact("run_deep")), times(exact("recurse"), depth),
             one(exact("burn_deep"))]
    check_chains(stacks, exact("burn_deep"), MAIN_PREFIX, chain, 300, "fixture_deep (ended during the run)")


def free_pid():
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
    except OSError:
        pid_max = 32768
    for pid in range(pid_max - 1, 300, -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    fail("no free PID found")


def kernel_thread_pid():
    """PID 2 (kthreadd) if it is a kernel thread, else any kernel thread."""
    candidates = [2] + sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    for pid in candidates:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        flags = int(stat.rsplit(")", 1)[1].split()[6])
        if flags & 0x00200000:  # PF_KTHREAD
            return pid
    fail("no kernel thread found")


def case_errors(args, tmp):
    if args.use_perf:
        fail("errors: not applicable with --use-perf")
    problems = []
    out = os.path.join(tmp, "err.fold")
    base = [args.lua_perf]
    opts = ["-f", str(FREQ), "-d", "2", "-o", out]

    pid = free_pid()
    problems += expect_error(
        args, f"nonexistent PID {pid}", base + ["-p", str(pid)] + opts,
        r"no such process|does not exist|doesn't exist|not exist|no process|not found|esrch",
        pid=pid)

    kpid = kernel_thread_pid()
    problems += expect_error(args, f"kernel thread PID {kpid}", base + ["-p", str(kpid)] + opts,
                             r"kernel[ -]?thread|kthread", pid=kpid)

    # Unprivileged: both lua-perf and its target run as nobody, so that /proc access is fine and
    # only the missing capabilities (BPF, perf events) can fail. lua-perf is copied to a
    # directory nobody can reach.
    setpriv = shutil.which("setpriv")
    if not setpriv:
        fail("setpriv (util-linux) not found: cannot test the unprivileged run")
    drop = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    pub = tempfile.mkdtemp(prefix="lua-perf-nobody-")
    target = None
    try:
        os.chmod(pub, 0o777)
        exe = os.path.join(pub, "lua-perf")
        shutil.copy2(args.lua_perf, exe)
        os.chmod(exe, 0o755)
        target = Child(drop + ["sleep", "60"])
        time.sleep(0.2)
        problems += expect_error(
            args, f"unprivileged (uid 65534) against PID {target.pid}",
            drop + [exe, "-p", str(target.pid), "-f", str(FREQ), "-d", "2", "-o",
                    os.path.join(pub, "out.fold")],
            r"permission|privilege|not permitted|root|CAP_(BPF|PERFMON|SYS_ADMIN)|capabilit")
    finally:
        if target:
            target.close()
        shutil.rmtree(pub, ignore_errors=True)
    if problems:
        fail("error handling:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------
# Self-check of the fixtures (no profiler, no root)


def objdump_functions(path):
    """{function name: [(mnemonic, operand text)]} from objdump -d."""
    res = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=True)
    funcs = {}
    cur = None
    for line in res.stdout.decode(errors="replace").split("\n"):
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$", line)
        if m and cur is not None:
            cur.append((m.group(1), m.group(2)))
    return funcs


def check_calls(problems, path, funcs, caller, callee):
    """caller must `call <callee>` (not jump to it) and do something after the call."""
    body = funcs.get(caller)
    if body is None:
        problems.append(f"{path}: no function {caller} (renamed clone? inlined?)")
        return
    target = re.compile(rf"<{re.escape(callee)}(@plt)?>")
    calls = [i for i, (mn, ops) in enumerate(body) if mn.startswith("call") and target.search(ops)]
    jumps = [i for i, (mn, ops) in enumerate(body) if mn.startswith("j") and target.search(ops)]
    if not calls:
        problems.append(f"{path}: {caller} does not call {callee}")
    if jumps:
        problems.append(f"{path}: {caller} jumps to {callee} (tail call)")
    for i in calls:
        rest = [mn for mn, _ in body[i + 1:] if not mn.startswith("nop") and mn not in
                ("xchg", "cs", "data16")]
        if not rest:
            problems.append(f"{path}: the call {caller} -> {callee} is the last instruction")


def case_self_check(args, tmp):
    if not shutil.which("objdump"):
        log("SKIP: objdump not found")
        sys.exit(SKIP)
    d = args.fixture_dir
    problems = []
    expected = {
        "fixture_deep": [("main", "run_deep"), ("run_deep", "recurse"), ("recurse", "recurse"),
                         ("recurse", "burn_deep")],
        "fixture_qsort": [("main", "sort_forever"), ("sort_forever", "qsort")],
        "fixture_signal": [("main", "wait_for_signals"), ("signal_handler", "burn_in_handler")],
        "fixture_vdso": [("main", "time_loop"), ("time_loop", "clock_gettime")],
        "fixture_threads": [("thread_main", "worker_loop"), ("worker_loop", "burn_thread")],
        "fixture_ucontext": [("on_own_stack", "recurse"), ("recurse", "recurse"),
                             ("recurse", "burn_deep")],
        "fixture_realign": [("main", "run_realign"), ("run_realign", "frame_pointer_caller"),
                            ("frame_pointer_caller", "realigned"), ("realigned", "burn_realign")],
        "fixture_fork": [("main", "start_early"), ("start_early", "spawn_child"),
                         ("spawn_child", "spawn_child"), ("main", "serve_requests"),
                         ("serve_requests", "spawn_child")],
        "fixture_dump": [("main", "wait_workers"), ("thread_main", "spin_outer"),
                         ("spin_outer", "spin_inner"), ("thread_main", "nap_outer"),
                         ("nap_outer", "nap_inner"), ("nap_inner", "nanosleep"),
                         ("thread_main", "read_outer"), ("read_outer", "read_inner"),
                         ("read_inner", "read")],
        os.path.basename(args.plugin): [("plugin_entry", "plugin_hot")],
    }
    for name, pairs in expected.items():
        path = os.path.join(d, name) if not name.startswith("lib") else args.plugin
        funcs = objdump_functions(path)
        clones = [f for f in funcs if re.search(r"\.(constprop|isra|part|cold)\.\d+$", f)]
        if clones:
            problems.append(f"{path}: compiler-made clones {clones}")
        for caller, callee in pairs:
            check_calls(problems, path, funcs, caller, callee)
        for hot in ("burn_deep", "burn_realign", "compare_slowly", "burn_in_handler", "burn_thread",
                    "plugin_hot", "wait_for_signals", "time_loop", "burn_early", "burn_late"):
            if hot in funcs and any(mn.startswith("call") and "<" + hot in ops
                                    for mn, ops in funcs[hot]):
                problems.append(f"{path}: {hot} calls itself")
    # fixture_realign must really realign (its test is about the rules this produces).
    frames = subprocess.run(["readelf", "--debug-dump=frames", os.path.join(d, "fixture_realign")],
                            capture_output=True, text=True).stdout
    for rule in ("DW_CFA_expression: r6 (rbp) (DW_OP_breg6 (rbp): 0)",
                 "DW_CFA_def_cfa_expression (DW_OP_breg6 (rbp): -8; DW_OP_deref)",
                 "DW_CFA_def_cfa_register: r6 (rbp)"):
        if rule not in frames:
            problems.append(f"fixture_realign: no '{rule}' in its .eh_frame")
    # The stripped copy: no .symtab, same code.
    full = Elf(os.path.join(d, "fixture_deep"))
    stripped = Elf(os.path.join(d, "fixture_deep_stripped"))
    if stripped.has_section(".symtab") or not stripped.has_section(".eh_frame"):
        problems.append("fixture_deep_stripped: has .symtab or lacks .eh_frame")
    if (stripped.entry, stripped.fde_starts) != (full.entry, full.fde_starts):
        problems.append("fixture_deep_stripped: code differs from fixture_deep")
    if not stripped.text_offset_is_vaddr():
        problems.append("fixture_deep_stripped: text offsets != addresses")
    # Each fixture starts, reaches its hot loop and exits 0 at its deadline.
    runs = [[os.path.join(d, n), "0.5"] for n in ("fixture_deep", "fixture_deep_stripped",
                                                  "fixture_qsort", "fixture_signal",
                                                  "fixture_vdso", "fixture_threads",
                                                  "fixture_realign", "fixture_fork",
                                                  "fixture_dump")]
    for argv in runs + [[os.path.join(d, "fixture_dlopen"), args.plugin, "1"]]:
        child = Child(argv, stdin=True)
        try:
            child.wait_for("ready")
            if "fixture_dlopen" in argv[0]:
                child.send("go\n")
                child.wait_for("loaded", timeout=5)
            rc = child.proc.wait(timeout=10)
            if rc != 0:
                problems.append(f"{' '.join(argv)}: exit code {rc}")
            log(f"ran {' '.join(argv)}: info {child.info}, exit {rc}")
        except (TestFailure, subprocess.TimeoutExpired) as e:
            problems.append(f"{' '.join(argv)}: {e}")
        finally:
            child.close()
    if problems:
        fail("fixture self-check:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------

CASES = {
    "deep": case_deep,
    "dlopen_same_address": case_dlopen_same_address,
    "ucontext": case_ucontext,
    "deep_stripped": lambda a, t: case_deep(a, t, stripped=True),
    "deep_stripped_semicolon": case_deep_stripped_semicolon,
    "qsort": case_qsort,
    "signal": case_signal,
    "vdso": case_vdso,
    "threads": case_threads,
    "kernel_frames": case_kernel_frames,
    "realign": case_realign,
    "dlopen": case_dlopen,
    "dlopen_no_sections": case_dlopen_no_sections,
    "dlopen_damaged_cfi": case_dlopen_damaged_cfi,
    "not_elf_mapped": case_not_elf_mapped,
    "errors": case_errors,
    "target_exit": case_target_exit,
    "self-check": case_self_check,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", help="path of the lua-perf binary")
    ap.add_argument("--fixture", help="fixture executable")
    ap.add_argument("--plugin", help="libfixture_plugin.so (dlopen, self-check)")
    ap.add_argument("--unstripped", help="unstripped twin of a stripped fixture")
    ap.add_argument("--other-plugin", help="the plugin's twin whose plugin_hot has no caller "
                    "(dlopen_same_address)")
    ap.add_argument("--fixture-dir", help="directory of the fixtures (self-check)")
    ap.add_argument("--use-perf", action="store_true",
                    help="profile with perf instead of lua-perf (checks the expectations)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    if args.case != "self-check":
        status = cannot_profile(args)
        if status is not None:
            return status
    return run_case(CASES[args.case], args, f"lua-perf-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
