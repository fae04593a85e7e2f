#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Kernel matrix: boots one of Debian's own kernels (scripts/fetch-kernels.sh) under QEMU
software emulation (TCG) with a busybox initramfs holding the built lua-perf, every shared
library it and the targets need, stock Debian lua5.4 and Debian's libluajit2, and runs lua-perf
inside against real Lua targets, all in one boot.

    kernel_matrix_test.py --lua-perf BIN --kernels DIR --luajit-run BIN --work DIR NAME

NAME (DIR/NAME/vmlinuz, KERNELS below), or `host`: the same runs and checks on the machine's own
kernel, without QEMU:
  bullseye   Debian 11, 5.10: no bpf_loop (5.17), lua-perf must refuse: exit 1 and exactly one
             error line naming the kernel and the missing feature (REFUSAL), and nothing about
             the verifier or a failed load but in -v's debug lines (the features are checked
             when the load fails: checking first cost 40-50 ms of every start-up)
  bookworm   Debian 12, 6.1;  trixie  Debian 13, 6.12;  backports  trixie-backports, 7.x:
             `lua-perf -p PID -d 3 -o F -v` on lua5.4 running tests/fixtures/lua/coroutines.lua
             and on tests/fixtures/luajit/luajit_embed.c as luajit_run (Debian's
             libluajit-5.1.so.2) running tests/fixtures/luajit/workloads.lua coroutine with the
             JIT on, `lua-perf --off-cpu -p PID -d 2 -o F -v` on lua5.4 running
             tests/fixtures/off_cpu/nap_loop.lua (off CPU in wait4 under L:nap nearly all the time),
             then two `lua-perf dump -v`
             of both processes. On 6.1 (no kfunc bpf_task_from_pid, 6.2) the dump unwinds only
             threads that run: it must say so in one warning (DUMP_RUNNING_ONLY) and load no
             dump_thread program; both targets are busy, so their chains are still there.
Asserted for a profile: exit 0; >= MIN_SAMPLES samples in the folded output; >= MIN_HOT hot
samples (those holding the chain's leaf function), >= MIN_SHARE of them with exactly the Lua
frames of the chain (CHAINS: only the `L:` frames, root first; the native frames between them
are checked by tests/e2e/lua_profile_test.py and tests/e2e/luajit_profile_test.py on the host);
LuaJIT: >= half of the hot samples ran compiled code (`_[j]`). For each dump: exit 0; and each
process's thread holds the chain's Lua functions in one of the two dumps (leaf first there, by
name: the dump shows current lines; a dump is one instant, which can fall between two calls).
For every run that loads BPF programs: the `-v` lines
    lua-perf: debug: BPF program NAME: N instructions verified in T ms
are there for the programs the run needs (profiling: on_sample, on_fork, on_exec; off CPU:
on_switch, on_fork, on_exec; the dump: on_sample and dump_thread) and N <= MAX_VERIFIED_INSNS.
Asserted for the off-CPU run: exit 0; the folded lines holding L:nap (the Lua frame spliced at
the switch) have >= OFF_CPU_MIN_SHARE of the run's duration, in microseconds, and nearly all
of it (>= 90%) ends with the reason frame `[blocked: wait4]`. A table of kernel/program/instructions/ms is printed at the end.

How it runs: the guest's /init (a busybox sh script written here) mounts proc, sysfs, devtmpfs,
tmpfs /tmp, debugfs, tracefs and bpffs, starts the targets (niced, so that lua-perf's start-up
gets the CPU), runs each step under busybox timeout, and sends results over the second serial
port (ttyS1, a file on the host), as marker lines and files framed by `@@KM-FILE NAME` and
`\\n@@KM-END NAME`; the first serial port is the kernel console (work/NAME/console.log). Then
poweroff -f (and, should /init end otherwise, panic=-1 with -no-reboot ends QEMU too). QEMU
runs under a timeout on the host. Everything of a run stays in work/NAME/ (initramfs tree,
console, results, the files sent back).

Exit status: 0 pass, 1 fail, 77 skipped (not root)."""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib.folded import parse_fold, top_stacks  # noqa: E402
from pylib.lua_profile import definition_lines  # noqa: E402
from pylib.paths import fixture  # noqa: E402
from pylib.report import fail, log, TestFailure  # noqa: E402

LUA54 = "/usr/bin/lua5.4"
LIBLUAJIT = "/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2"
COROUTINES = fixture("lua", "coroutines.lua")
NAP_LOOP = fixture("off_cpu", "nap_loop.lua")
WORKLOADS = fixture("luajit", "workloads.lua")
GUEST_DIR = "/kmtest"  # where the guest finds lua-perf, luajit_run and the scripts

# The refusal expected on a kernel without bpf_loop: the one error line must match LINE and
# hold each of WORDS; no stderr line but -v's debug lines may match ABSENT (the user is told
# of the missing feature, not of the verifier or the failed load behind it).
REFUSAL = {
    "line": re.compile(r"lua-perf: error: .*(5\.10|kernel).*"),
    "words": ("bpf_loop", "5.17"),
    "absent": re.compile(r"verif|PROG LOAD LOG|failed to load", re.IGNORECASE),
}

# What each kernel must do. dump: None (not run), "running" (only threads on a CPU: no
# bpf_task_from_pid before 6.2), "all" (the task iterator too).
KERNELS = {
    "bullseye": {"describe": "Debian 11", "expect": "refuse", "dump": None},
    "bookworm": {"describe": "Debian 12", "expect": "profile", "dump": "running"},
    "trixie": {"describe": "Debian 13", "expect": "profile", "dump": "all"},
    "backports": {"describe": "trixie-backports", "expect": "profile", "dump": "all"},
}

# The dump's one warning on a kernel that cannot unwind threads off CPU.
DUMP_RUNNING_ONLY = re.compile(r"lua-perf: warning: this kernel \(Linux \S+\) cannot unwind threads "
                               r"that are off CPU: that needs the kfunc bpf_task_from_pid \(Linux 6\.2 "
                               r"or later\); only threads that run during the dump get a stack")

VERIFIED_RE = re.compile(r"BPF program (\S+): (\d+) instructions verified in ([\d.]+) ms")
MAX_VERIFIED_INSNS = 250000
PROFILE_PROGRAMS = ("on_sample", "on_fork", "on_exec")
OFF_CPU_PROGRAMS = ("on_switch", "on_fork", "on_exec")
OFF_CPU_DURATION = 2
OFF_CPU_MIN_SHARE = 0.5  # of the duration, off CPU under L:nap
DUMP_PROGRAMS = ("on_sample", "dump_thread")
# Two dumps of the same targets: each is one instant (see check_dump).
DUMP_STEPS = ("dump", "dump_again")

DURATION = 3        # seconds of each profile
MIN_SAMPLES = 1000  # of ~3000 possible (1000 Hz, one busy thread, 3 s)
MIN_HOT = 800
MIN_SHARE = 0.95    # of the hot samples with exactly the chain's Lua frames
STEP_TIMEOUT = 150  # seconds for one lua-perf run in the guest (verification under TCG is slow)
READY_TIMEOUT = 60  # seconds for a target to print "ready" in the guest
BOOT_TIMEOUT = 270  # seconds for the whole QEMU run on the host (ctest's TIMEOUT is 330)
QEMU = ["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "2G",
        "-nic", "none", "-display", "none", "-monitor", "none", "-no-reboot"]


GUEST_SCRIPTS = (f"{GUEST_DIR}/coroutines.lua", f"{GUEST_DIR}/workloads.lua")
HOST_SCRIPTS = (COROUTINES, WORKLOADS)


def chains(scripts=GUEST_SCRIPTS):
    """{target: (Lua frames of the hot samples, root first, as regexes; leaf function name)},
    for the scripts (coroutines.lua, workloads.lua) run from these paths."""
    co, wl = scripts
    cdef = definition_lines(COROUTINES)
    wdef = definition_lines(WORKLOADS)

    def at(name, chunk, defs, jit=False):
        line = 0 if name == "main" else defs[name]
        return re.escape(f"L:{name}@{chunk}:{line}") + (r"(_\[j\])?" if jit else "")

    lua54 = [at(n, co, cdef) for n in
             ("main", "coro_workload", "coro_a_body", "coro_b_body", "coro_c_body", "leaf_burn")]
    luajit = [at("main", wl, wdef), at("run", wl, wdef), re.escape("L:coroutine.resume@builtin"),
              at("co_body", wl, wdef), at("hot_coroutine", wl, wdef, jit=True)]
    return {"lua54": (lua54, "leaf_burn"), "luajit": (luajit, "hot_coroutine")}


# ---- the initramfs -------------------------------------------------------------------------

def shared_libraries(binary):
    """The files the dynamic loader maps for binary (ldd), the loader included."""
    res = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if res.returncode != 0:
        fail(f"ldd {binary}: {res.stderr.strip() or res.stdout.strip()}")
    libs = []
    for line in res.stdout.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
        elif "not found" in line:
            fail(f"ldd {binary}: {line.strip()}")
    return libs


def install(root, host_path, guest_path=None):
    """Copies host_path into the tree at its real path; the path asked for (e.g. a /lib path
    of merged-/usr Debian) becomes a symlink to it, as on the host."""
    guest_path = guest_path or host_path
    real = os.path.realpath(host_path) if guest_path == host_path else guest_path
    dest = os.path.join(root, real.lstrip("/"))
    if not os.path.exists(dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(host_path, dest)
    if real != guest_path:
        link = os.path.join(root, guest_path.lstrip("/"))
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(real, link)


def build_initramfs(args, work, init_text):
    """work/initramfs.cpio (newc, uncompressed) from the tree work/root."""
    root = os.path.join(work, "root")
    shutil.rmtree(root, ignore_errors=True)
    for d in ("proc", "sys", "dev", "tmp", "bin", "sbin", "usr/bin", "usr/sbin", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    install(root, args.busybox, "/bin/busybox")
    out = subprocess.run([args.busybox, "--list-full"], capture_output=True, text=True,
                         check=True).stdout
    for applet in out.split():
        if os.path.basename(applet) in ("init", "linuxrc"):
            continue  # a broken /init must not fall back to busybox init (it would wait forever)
        link = os.path.join(root, applet)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/bin/busybox", link)
    install(root, args.lua_perf, f"{GUEST_DIR}/lua-perf")
    install(root, args.luajit_run, f"{GUEST_DIR}/luajit_run")
    install(root, COROUTINES, f"{GUEST_DIR}/coroutines.lua")
    install(root, WORKLOADS, f"{GUEST_DIR}/workloads.lua")
    install(root, NAP_LOOP, f"{GUEST_DIR}/nap_loop.lua")
    install(root, LUA54)
    for binary in (args.lua_perf, LUA54, args.luajit_run, LIBLUAJIT):
        for lib in shared_libraries(binary):
            install(root, lib)
    install(root, LIBLUAJIT)
    with open(os.path.join(root, "init"), "w") as f:
        f.write(init_text)
    os.chmod(os.path.join(root, "init"), 0o755)
    # busybox cpio -o takes the names on stdin; "." first so the archive's root is the tree
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        names.append(rel)
        names.extend(os.path.join(rel, n) for n in sorted(filenames))
    cpio = os.path.join(work, "initramfs.cpio")
    with open(cpio, "wb") as f:
        res = subprocess.run([args.busybox, "cpio", "-o", "-H", "newc"], cwd=root,
                             input="\n".join(names).encode() + b"\n", stdout=f,
                             stderr=subprocess.PIPE)
    if res.returncode != 0:
        fail(f"busybox cpio failed: {res.stderr.decode(errors='replace').strip()}")
    return cpio


# ---- the guest's /init ---------------------------------------------------------------------

INIT_HEAD = r"""#!/bin/sh
# /init of the kernel matrix (tests/e2e/kernel_matrix_test.py, generated): results go to ttyS1.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
stty -F /dev/ttyS1 raw -echo
exec 3>/dev/ttyS1
say() { echo "@@KM $*" >&3; }
# send NAME FILE: the file's bytes framed by marker lines (the newline before the end marker is
# the framing's, not the file's)
send() {
	echo "@@KM-FILE $1" >&3
	[ -f "$2" ] && cat "$2" >&3
	echo >&3
	echo "@@KM-END $1" >&3
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }
# target NAME ARGV...: started niced in the background; waits for its "ready" line; $NAME_pid
target() {
	name=$1
	shift
	"$@" >/tmp/$name.out 2>&1 &
	pid=$!
	renice -n 10 -p $pid >/dev/null # (busybox-static has no nice)
	i=0
	until grep -q '^ready' /tmp/$name.out; do
		i=$((i + 1))
		if [ $i -gt $((READY_TIMEOUT * 10)) ] || ! kill -0 $pid 2>/dev/null; then
			say target name=$name pid=$pid ready=no
			send $name.out /tmp/$name.out
			return 1
		fi
		sleep 0.1
	done
	eval ${name}_pid=$pid
	say target name=$name pid=$pid ready=yes uptime=$(uptime_s)
}
# step NAME ARGV...: runs under a timeout; exit status, times, stdout and stderr are sent. Once
# a step could not load the BPF program (or timed out), the later ones are skipped: they would
# fail the same way, each after as long a verification (minutes under TCG when it hits the
# verifier's limit).
step() {
	name=$1
	shift
	if [ -n "$load_failed" ]; then
		say skipped name=$name after=$load_failed
		return
	fi
	start=$(uptime_s)
	timeout -s KILL $STEP_TIMEOUT "$@" >/tmp/$name.stdout 2>/tmp/$name.stderr
	rc=$?
	say step name=$name rc=$rc start=$start end=$(uptime_s)
	send $name.stdout /tmp/$name.stdout
	send $name.stderr /tmp/$name.stderr
	grep -q '^lua-perf: error: cannot load the BPF' /tmp/$name.stderr && load_failed=$name
	[ $rc -eq 137 ] && load_failed=$name # killed by the timeout: most likely still verifying
}
"""


def render_init(kernel):
    """The guest's /init for a KERNELS entry."""
    lp = f"{GUEST_DIR}/lua-perf"
    body = [INIT_HEAD, f"READY_TIMEOUT={READY_TIMEOUT}", f"STEP_TIMEOUT={STEP_TIMEOUT}",
            'say init uptime=$(uptime_s) release=$(uname -r)',
            f"target lua54 {LUA54} {GUEST_DIR}/coroutines.lua"]
    profile = f"-d {DURATION} -v"
    if kernel["expect"] == "refuse":
        body.append(f'step refuse {lp} -p "$lua54_pid" {profile} -o /tmp/refuse.fold')
        # not asserted: what the dump says on this kernel, for the record (run in any case)
        body.append(f'load_failed= step dump_info {lp} dump -p "$lua54_pid" -v')
    else:
        body.append(f"target luajit {GUEST_DIR}/luajit_run {GUEST_DIR}/workloads.lua "
                    f"coroutine on 100000")
        for name in ("lua54", "luajit"):
            body.append(f'[ -n "${name}_pid" ] && step profile_{name} {lp} -p "${name}_pid" '
                        f"{profile} -o /tmp/{name}.fold")
            body.append(f"send {name}.fold /tmp/{name}.fold")
        body.append(f"target sleeper {LUA54} {GUEST_DIR}/nap_loop.lua")
        body.append(f'[ -n "$sleeper_pid" ] && step offcpu {lp} --off-cpu -p "$sleeper_pid" '
                    f"-d {OFF_CPU_DURATION} -v -o /tmp/offcpu.fold")
        body.append("send offcpu.fold /tmp/offcpu.fold")
        body.append('[ -n "$sleeper_pid" ] && kill "$sleeper_pid"')
        if kernel["dump"]:
            for step in DUMP_STEPS:
                body.append(f'[ -n "$lua54_pid" ] && [ -n "$luajit_pid" ] && '
                            f'step {step} {lp} dump -p "$lua54_pid" -p "$luajit_pid" -v')
    body += ["say finished uptime=$(uptime_s)", "sync", "poweroff -f",
             "sleep 10"]  # poweroff -f does not return; should it, /init ends: panic=-1
    return "\n".join(body) + "\n"


# ---- booting and reading the results -------------------------------------------------------

def boot(args, work, vmlinuz, cpio):
    """Runs QEMU to its end (or kills it at BOOT_TIMEOUT); returns (results text, seconds)."""
    console = os.path.join(work, "console.log")
    results = os.path.join(work, "results.log")
    for path in (console, results):
        if os.path.exists(path):
            os.unlink(path)
    argv = [args.qemu] + QEMU + [
        "-kernel", vmlinuz, "-initrd", cpio,
        "-append", "console=ttyS0 panic=-1 oops=panic",
        "-serial", f"file:{console}", "-serial", f"file:{results}"]
    log("$ " + " ".join(shlex.quote(a) for a in argv))
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        show_console(console)
        fail(f"QEMU did not end within {args.timeout} s (killed); results so far: "
             f"{read_text(results)[-2000:]!r}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - start
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0 or text:
        log(f"QEMU exited with {proc.returncode}: {text}")
    if proc.returncode != 0:
        show_console(console)
        fail(f"QEMU failed (exit {proc.returncode})")
    return read_text(results), elapsed


def boot_to_init(args, work, vmlinuz, cpio):
    """boot(), once more when the kernel died before /init ran: under QEMU's multi-threaded TCG a
    guest kernel rarely takes an int3 of its own boot-time code patching (text_poke_bp) on the
    other vCPU and panics (seen once with 7.3 in 2026-12, "Oops: int3" in sched_clock_cpu at
    1.4 s); nothing of lua-perf has run then."""
    text, elapsed = boot(args, work, vmlinuz, cpio)
    console = os.path.join(work, "console.log")
    if "@@KM init " not in text and "Kernel panic" in read_text(console):
        show_console(console, lines=30)
        log("the guest kernel panicked before /init: booting it again")
        text, more = boot(args, work, vmlinuz, cpio)
        elapsed += more
    return text, elapsed


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def show_console(path, lines=60):
    text = read_text(path).replace("\r", "").splitlines()
    log(f"---- last {min(lines, len(text))} lines of the guest console ({path})")
    for line in text[-lines:]:
        log("  " + line)
    log("----")


def parse_results(text, outdir):
    """(events, files): the `@@KM WHAT k=v ...` lines as (WHAT, {k: v}) and the framed files
    (also written to outdir)."""
    events, files = [], {}
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos)
        if end < 0:
            end = len(text)
        line = text[pos:end]
        pos = end + 1
        if line.startswith("@@KM-FILE "):
            name = line.split(" ", 1)[1]
            close = text.find(f"\n@@KM-END {name}\n", pos)
            if close < 0:
                fail(f"the guest's file {name} is cut short (QEMU ended while sending it?)")
            files[name] = text[pos:close]
            with open(os.path.join(outdir, name), "w") as f:
                f.write(files[name])
            pos = close + len(f"\n@@KM-END {name}\n")
        elif line.startswith("@@KM "):
            what, *fields = line[5:].split()
            events.append((what, dict(f.split("=", 1) for f in fields if "=" in f)))
    return events, files


# ---- checks --------------------------------------------------------------------------------

class Run:
    """One lua-perf run in the guest: exit status, stdout, stderr, verifier lines."""

    def __init__(self, name, event, files):
        self.name = name
        self.rc = int(event["rc"])
        self.seconds = float(event["end"]) - float(event["start"])
        self.stdout = files.get(f"{name}.stdout", "")
        self.stderr = files.get(f"{name}.stderr", "")
        self.verified = [(m.group(1), int(m.group(2)), float(m.group(3)))
                         for m in VERIFIED_RE.finditer(self.stderr)]

    def digest(self):
        """stderr without libbpf's debug lines and verifier logs, but with libbpf's lines that
        say what failed, and the last two lines of each verifier log (the verifier's complaint
        and its "processed N insns" summary)."""
        lines = self.stderr.splitlines()
        keep = []
        for i, line in enumerate(lines):
            if line.startswith("lua-perf: debug: libbpf:"):
                if re.search(r"not found|failed|error", line, re.IGNORECASE):
                    keep.append(line)
            elif line.startswith("lua-perf:"):
                keep.append(line)
            elif line == "-- END PROG LOAD LOG --":
                keep.extend("  (verifier) " + text for text in lines[max(0, i - 2):i])
        return keep

    def describe(self):
        err = self.digest()
        shown = "\n      ".join(err[-12:]) if err else "(nothing)"
        status = f"exit {self.rc}"
        if self.rc == 137:
            status = f"killed by the guest's timeout ({STEP_TIMEOUT} s)"
        return f"{status} after {self.seconds:.1f} s; stderr:\n      {shown}"


def check_verifier(run, programs, failures):
    """The verifier lines of a run: those of `programs` present, each within the budget."""
    names = [name for name, _, _ in run.verified]
    missing = [p for p in programs if p not in names]
    if missing:
        failures.append(f"{run.name}: no 'BPF program NAME: N instructions verified in T ms' "
                        f"line (-v) for {', '.join(missing)}; got {names or 'none'}")
    for name, insns, ms in run.verified:
        if insns > MAX_VERIFIED_INSNS:
            failures.append(f"{run.name}: BPF program {name}: {insns} instructions verified, "
                            f"over the budget of {MAX_VERIFIED_INSNS}")


def check_refusal(run, failures):
    errors = [line for line in run.stderr.splitlines() if line.startswith("lua-perf: error:")]
    problems = []
    if run.rc != 1:
        problems.append(f"exit status {run.rc}, want 1")
    if len(errors) != 1:
        problems.append(f"{len(errors)} 'lua-perf: error:' lines, want exactly 1")
    for line in errors[:1]:
        if not REFUSAL["line"].fullmatch(line):
            problems.append(f"the error line does not match {REFUSAL['line'].pattern!r}")
        for word in REFUSAL["words"]:
            if word not in line:
                problems.append(f"the error line does not say {word!r}")
    said = "\n".join(line for line in run.stderr.splitlines()
                     if not line.startswith("lua-perf: debug:"))
    if REFUSAL["absent"].search(said):
        problems.append(f"stderr (but debug lines) matches {REFUSAL['absent'].pattern!r}: the "
                        f"verifier or a failed load is told, not the missing feature")
    if problems:
        failures.append(f"{run.name}: not a clean refusal: {'; '.join(problems)}\n    "
                        + run.describe())


def check_profile(run, fold_path, target, failures, scripts=GUEST_SCRIPTS):
    """A profile run: exit status, samples, the Lua chain, JIT share, verifier lines."""
    if run.rc != 0:
        failures.append(f"{run.name}: {run.describe()}")
        return
    check_verifier(run, PROFILE_PROGRAMS, failures)
    try:
        stacks = parse_fold(fold_path)
    except TestFailure as e:
        failures.append(f"{run.name}: {e}")
        return
    chain, leaf = chains(scripts)[target]
    want = re.compile(";".join(chain))
    total = sum(count for _, count in stacks)
    hot = exact = jit = 0
    worst = {}
    for frames, count in stacks:
        lua = [f for f in frames if f.startswith("L:")]
        if not any(f.startswith(f"L:{leaf}@") for f in lua):
            continue
        hot += count
        if want.fullmatch(";".join(lua)):
            exact += count
        else:
            worst[";".join(lua)] = worst.get(";".join(lua), 0) + count
        if any(f.endswith("_[j]") for f in lua):
            jit += count
    log(f"{run.name}: {total} samples, {hot} hot ({leaf}), {exact} with the exact Lua chain, "
        f"{jit} compiled")
    for text, count in sorted(worst.items(), key=lambda kv: -kv[1])[:3]:
        log(f"  other chain x{count}: {text[-300:]}")
    if total < MIN_SAMPLES:
        failures.append(f"{run.name}: {total} samples, want >= {MIN_SAMPLES}")
    if hot < MIN_HOT:
        failures.append(f"{run.name}: {hot} samples in {leaf}, want >= {MIN_HOT}")
    elif exact < MIN_SHARE * hot:
        failures.append(f"{run.name}: {exact}/{hot} hot samples have the Lua chain "
                        f"{want.pattern!r}")
    if target == "luajit" and jit < 0.5 * max(hot, 1):
        failures.append(f"{run.name}: only {jit}/{hot} hot samples ran compiled code (`_[j]`)")


def check_off_cpu(run, fold_path, failures, nap_script):
    """The --off-cpu run on nap_loop.lua: its time off CPU on L:nap, in wait4."""
    if run.rc != 0:
        failures.append(f"{run.name}: {run.describe()}")
        return
    check_verifier(run, OFF_CPU_PROGRAMS, failures)
    stacks = parse_fold(fold_path) if os.path.exists(fold_path) else []
    nap = f"L:nap@{nap_script}:{definition_lines(NAP_LOOP)['nap']}"
    on_nap = [(frames, n) for frames, n in stacks if nap in frames]
    total = sum(n for _, n in on_nap)
    in_wait4 = sum(n for frames, n in on_nap if frames[-1] == "[blocked: wait4]")
    want = OFF_CPU_MIN_SHARE * OFF_CPU_DURATION * 1e6
    log(f"{run.name}: {total / 1e6:.3f} s off CPU under L:nap, {in_wait4 / 1e6:.3f} s of it "
        f"[blocked: wait4]")
    if total < want or in_wait4 < 0.9 * total:
        log(top_stacks(stacks))
        failures.append(f"{run.name}: {total} us off CPU under {nap} (want >= {want:.0f}), "
                        f"{in_wait4} us of it ending [blocked: wait4] (want >= 90%)")


def parse_dump(text):
    """{pid: [frames of its first thread, leaf first]} from `lua-perf dump`'s stdout."""
    procs, pid, current = {}, None, None
    for line in text.splitlines():
        m = re.match(r"process (\d+) ", line)
        if m:
            pid, current = int(m.group(1)), None
            continue
        m = re.match(r"  (\d+) (\d+) ", line)
        if m and pid is not None and pid not in procs:
            current = procs.setdefault(pid, [])
            continue
        m = re.match(r"    #\d+\s+(\S.*)$", line)
        if m and current is not None:
            current.append(m.group(1))
        elif m is None and line.startswith("  ") and not line.startswith("    "):
            current = None  # a later thread of the process: only the first one is kept
    return procs


def check_dump_run(run, failures, mode):
    """What a dump run must print whatever its targets were doing: exit 0, the programs, warnings."""
    if run.rc != 0:
        failures.append(f"{run.name}: {run.describe()}")
        return False
    warned = [line for line in run.stderr.splitlines() if DUMP_RUNNING_ONLY.fullmatch(line)]
    loaded = [name for name, _, _ in run.verified]
    if mode == "running":
        check_verifier(run, ("on_sample",), failures)  # the dump loads no follower
        if len(warned) != 1 or "dump_thread" in loaded:
            failures.append(f"{run.name}: want exactly one warning {DUMP_RUNNING_ONLY.pattern!r} "
                            f"and no dump_thread program; got {len(warned)} warnings, programs "
                            f"{loaded}")
    else:
        check_verifier(run, DUMP_PROGRAMS, failures)
        if warned:
            failures.append(f"{run.name}: unexpected warning {warned[0]!r}")
    return True


def check_dump(runs, pids, failures, mode, scripts=GUEST_SCRIPTS):
    """The dump runs (DUMP_STEPS); mode: "all" (every thread can be unwound), "running" (only
    those on a CPU). A dump is one instant: a target caught between two calls of its chain
    (measured: 5 of 2736 samples on 6.12) is not a failure if another dump shows the chain."""
    dumps = [(run, parse_dump(run.stdout)) for run in runs if check_dump_run(run, failures, mode)]
    for target, pid in pids.items():
        chain, _ = chains(scripts)[target]
        # the function names of the chain, leaf first as the dump lists them
        names = [re.sub(r"\\(.)", r"\1", c).split("@")[0] for c in reversed(chain)]
        misses = []
        for run, procs in dumps:
            frames = procs.get(pid)
            if frames is None:
                misses.append(f"{run.name}: no block for {target} (PID {pid}) in:\n"
                              f"{run.stdout[-1500:]}")
                continue
            got = [f.split("@")[0] for f in frames if f.startswith("L:")]
            log(f"{run.name}: {target} (PID {pid}): Lua frames {got}")
            if got == names:
                break
            misses.append(f"{run.name}: {target}: Lua frames {got}, want {names}; frames: "
                          f"{frames}")
        else:
            failures.extend(misses)


# ---- the host's own kernel ------------------------------------------------------------------

def start_target(name, argv, work):
    """A target started on the host, once it printed its "ready" line."""
    out_path = os.path.join(work, f"{name}.out")
    out = open(out_path, "w")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    deadline = time.monotonic() + READY_TIMEOUT
    while not re.search(r"^ready", read_text(out_path), re.MULTILINE):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            fail(f"target {name} did not get ready: {read_text(out_path)[-800:]!r}")
        time.sleep(0.1)
    return proc


def host_step(name, argv):
    """A lua-perf run on the host, as a Run."""
    start = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    run = Run(name, {"rc": res.returncode, "start": 0, "end": time.monotonic() - start},
              {f"{name}.stdout": res.stdout, f"{name}.stderr": res.stderr})
    log(f"step {name}: exit {run.rc} in {run.seconds:.1f} s; stderr (digest):")
    for line in run.digest():
        log(f"  {line}")
    return run


def off_cpu_on_host(args, work):
    """The --off-cpu step on the host (its own target: it would slow the dumps' targets)."""
    sleeper = start_target("sleeper", [LUA54, NAP_LOOP], work)
    fold = os.path.join(work, "offcpu.fold")
    failures = []
    try:
        run = host_step("offcpu", [args.lua_perf, "--off-cpu", "-p", str(sleeper.pid), "-d",
                                   str(OFF_CPU_DURATION), "-v", "-o", fold])
    finally:
        sleeper.kill()
        sleeper.wait()
    check_off_cpu(run, fold, failures, NAP_LOOP)
    run.failures = failures
    return run


def run_host(args):
    """The profile and dump runs of a supported kernel, on the host's own kernel."""
    release = os.uname().release
    major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", release).groups())
    dump_mode = "all" if (major, minor) >= (6, 2) else "running"
    log(f"host kernel {release}: dump expected to unwind {dump_mode} threads")
    work = os.path.join(args.work, "host")
    os.makedirs(work, exist_ok=True)
    targets = {"lua54": start_target("lua54", [LUA54, COROUTINES], work)}
    failures, runs = [], {}
    try:
        targets["luajit"] = start_target("luajit", [args.luajit_run, WORKLOADS, "coroutine", "on",
                                                    "100000"], work)
        pids = {name: proc.pid for name, proc in targets.items()}
        for name, pid in pids.items():
            fold = os.path.join(work, f"{name}.fold")
            runs[name] = host_step(f"profile_{name}", [args.lua_perf, "-p", str(pid), "-d",
                                                       str(DURATION), "-v", "-o", fold])
            check_profile(runs[name], fold, name, failures, HOST_SCRIPTS)
        runs["offcpu"] = off_cpu_on_host(args, work)
        for step in DUMP_STEPS:
            runs[step] = host_step(step, [args.lua_perf, "dump", "-v"] +
                                   [a for pid in pids.values() for a in ("-p", str(pid))])
        failures += runs["offcpu"].failures
        check_dump([runs[step] for step in DUMP_STEPS], pids, failures, dump_mode, HOST_SCRIPTS)
    finally:
        for proc in targets.values():
            proc.kill()
            proc.wait()
    summary("host", {"RELEASE": release}, runs)
    return failures


# ---- main ----------------------------------------------------------------------------------

def kernel_env(kdir):
    env = {}
    try:
        with open(os.path.join(kdir, "kernel.env")) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                env[key] = value
    except FileNotFoundError:
        pass
    return env


def run_kernel(args, name):
    kernel = KERNELS[name]
    kdir = os.path.join(args.kernels, name)
    vmlinuz = os.path.join(kdir, "vmlinuz")
    if not os.path.exists(vmlinuz):
        fail(f"no {vmlinuz}: fetch it with scripts/fetch-kernels.sh {args.kernels} {name}")
    info = kernel_env(kdir)
    log(f"{name} ({kernel['describe']}): {info.get('PACKAGE', '?')} {info.get('VERSION', '?')}, "
        f"kernel {info.get('RELEASE', '?')}")
    work = os.path.join(args.work, name)
    outdir = os.path.join(work, "out")
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    cpio = build_initramfs(args, work, render_init(kernel))
    log(f"initramfs {cpio}: {os.path.getsize(cpio) // 1024} KiB")
    text, elapsed = boot_to_init(args, work, vmlinuz, cpio)
    events, files = parse_results(text, outdir)
    by_kind = {}
    for what, fields in events:
        by_kind.setdefault(what, []).append(fields)
    init = by_kind.get("init", [{}])[0]
    if not init:
        show_console(os.path.join(work, "console.log"))
        fail("the guest's /init never reported (see the console above)")
    log(f"boot: /init at {init['uptime']} s of guest uptime (kernel {init['release']}); "
        f"QEMU ran {elapsed:.0f} s; the guest finished: "
        f"{'at ' + by_kind['finished'][0]['uptime'] + ' s' if 'finished' in by_kind else 'NO'}")
    failures = []
    runs_skipped = set()
    pids = {}
    for t in by_kind.get("target", []):
        if t["ready"] != "yes":
            failures.append(f"target {t['name']} did not get ready: "
                            f"{files.get(t['name'] + '.out', '')[-800:]!r}")
        else:
            pids[t["name"]] = int(t["pid"])
    runs = {s["name"]: Run(s["name"], s, files) for s in by_kind.get("step", [])}
    for r in runs.values():
        # libbpf's debug lines and verifier logs are many: whole in work/NAME/out/STEP.stderr
        log(f"step {r.name}: exit {r.rc} in {r.seconds:.1f} s; stderr (digest):")
        for line in r.digest():
            log(f"  {line}")
    for s in by_kind.get("skipped", []):
        failures.append(f"step {s['name']} skipped: the BPF program did not load in {s['after']} "
                        f"(or it timed out)")
        runs_skipped.add(s["name"])

    def need(step):
        if step not in runs and step not in runs_skipped:
            failures.append(f"step {step} did not run (guest stopped early?)")
        return runs.get(step)

    if kernel["expect"] == "refuse":
        if need("refuse"):
            check_refusal(runs["refuse"], failures)
    else:
        for target in ("lua54", "luajit"):
            if need(f"profile_{target}"):
                check_profile(runs[f"profile_{target}"], os.path.join(outdir, f"{target}.fold"),
                              target, failures)
        if need("offcpu"):
            check_off_cpu(runs["offcpu"], os.path.join(outdir, "offcpu.fold"), failures,
                          f"{GUEST_DIR}/nap_loop.lua")
        if kernel["dump"]:
            dumps = [runs[step] for step in DUMP_STEPS if need(step)]
            if dumps:
                dumped = {name: pid for name, pid in pids.items() if name != "sleeper"}
                check_dump(dumps, dumped, failures, kernel["dump"])
    if "finished" not in by_kind:
        show_console(os.path.join(work, "console.log"))
        failures.append("the guest did not finish its script")
    summary(name, info, runs)
    return failures


def summary(name, info, runs):
    """The verifier table: kernel, run, program, instructions, ms."""
    log(f"\n{'kernel':<34} {'run':<16} {'program':<14} {'insns':>8} {'ms':>10}")
    kernel = f"{name} {info.get('RELEASE', '?')}"
    rows = [(r.name, p, n, ms) for r in runs.values() for p, n, ms in r.verified]
    for run, prog, insns, ms in rows:
        log(f"{kernel:<34} {run:<16} {prog:<14} {insns:>8} {ms:>10.1f}")
    if not rows:
        log(f"{kernel:<34} (no 'instructions verified' lines)")
    log()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lua-perf", required=True)
    ap.add_argument("--kernels", required=True, help="scripts/fetch-kernels.sh's DIR")
    ap.add_argument("--luajit-run", required=True, help="tests/fixtures/luajit/luajit_embed.c, built")
    ap.add_argument("--work", required=True)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--busybox", default="/bin/busybox")
    ap.add_argument("--timeout", type=int, default=BOOT_TIMEOUT,
                    help="seconds QEMU may run (default %(default)s)")
    ap.add_argument("kernel", choices=sorted(KERNELS) + ["host"])
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (as every test labelled bpf)")
        return 77
    for tool in (args.qemu, args.busybox) if args.kernel != "host" else ():
        if not shutil.which(tool):
            print(f"FAIL: {tool} not found (scripts/install-deps.sh installs qemu-system-x86 "
                  f"and busybox-static)")
            return 1
    args.qemu = shutil.which(args.qemu)
    os.makedirs(args.work, exist_ok=True)
    try:
        failures = run_host(args) if args.kernel == "host" else run_kernel(args, args.kernel)
    except TestFailure as e:
        print(f"FAIL: {e}")
        return 1
    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
