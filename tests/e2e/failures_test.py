#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Least privilege and clean failures (docs/privileges.md).

    failures_test.py --lua-perf BIN --fixture-dir DIR --deny-syscall TOOL CASE

capabilities: lua-perf run by `nobody` through capsh with exactly CAP_BPF, CAP_PERFMON,
  CAP_SYS_PTRACE and CAP_SYSLOG as ambient capabilities (checked in /proc/self/status), against
  processes of root: a profile of fixture_deep and dd (complete user stacks named from the
  fixture's .symtab, kernel frames named) and a dump of fixture_dump (its reader thread asleep in
  read, with its chain) both work; with --no-kernel, without CAP_SYSLOG, a profile works too.
  With any one of the four left out, and with none at all: exit code 1 and exactly one line on
  stderr, naming the missing capabilities (the one left out, or all four) and no other.
startup_exit: the target exits 50 ms after lua-perf starts (reaped by its parent, or left a
  zombie), or is killed as soon as lua-perf holds its loaded BPF program (while the unwind tables
  are built): exit code 1, exactly one error line, naming the PID and saying it exited (or, when
  it was gone before lua-perf first looked, that there is no such process); progress lines may
  come before it.
unwritable: -o in a directory that does not exist: exit code 1, one line naming the path, within a
  few seconds (before any BPF work); -o /dev/full: the run ends with exit code 1 and one `error:`
  line naming /dev/full.
no_bpf: the bpf() system call fails with ENOSYS (a seccomp filter, tests/fixtures/tools/deny_syscall.c),
  for a profile and a dump; perf_event_open() fails with ENOSYS, and with EPERM (a dump of a
  process that runs needs it; one whose threads all sleep is dumped without); the kernel's BTF
  is hidden (/sys/kernel/btf/vmlinux bind-mounted over in a mount namespace): exit code 1 and one
  `error:` line saying what the kernel lacks.
After every run: lua-perf is gone, and no BPF program named like lua-perf's (on_sample,
on_fork, on_exec, dump_thread) is left that no process holds (bpftool prog show,
/proc/*/fdinfo prog_id). A perf event lives as long as a file or a BPF link refers to it, and
lua-perf's links hold its program: with lua-perf gone and no program left, no perf event is left
either.

Exit status: 0 pass, 1 fail, 77 skipped (not root).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import chains, folded, profiling, thread_dump  # noqa: E402
from pylib.profiling import Child  # noqa: E402
from pylib.report import fail, log  # noqa: E402

CAPSH = "/usr/sbin/capsh"
CAPABILITY_H = "/usr/include/linux/capability.h"
NEEDED = ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE", "CAP_SYSLOG"]
LUA_PERF_PROGS = ("on_sample", "on_fork", "on_exec", "dump_thread")
RUN_TIMEOUT = 120  # seconds: BPF verification on a busy 2-core machine


# --------------------------------------------------------------------------------------------
# Leftovers


def lua_perf_progs():
    """{id: name} of the BPF programs named like lua-perf's, system wide."""
    res = subprocess.run(["bpftool", "-j", "prog", "show"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    if res.returncode != 0:
        fail(f"bpftool prog show: {res.stderr.decode(errors='replace')}")
    return {p["id"]: p.get("name") for p in json.loads(res.stdout or b"[]")
            if p.get("name") in LUA_PERF_PROGS}


def held_progs():
    """IDs of the BPF programs some process holds: a program or link file (fdinfo prog_id)."""
    held = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    m = re.search(r"^prog_id:\s+(\d+)$", f.read(), re.M)
            except OSError:
                continue
            if m:
                held.add(int(m[1]))
    return held


def check_no_leftovers(before, pid, label):
    """lua-perf (pid) is gone; every lua-perf-like program that appeared since `before` is held
    by a live process (another lua-perf run on this machine), none is left orphaned. Freeing a
    program after its last file closes is asynchronous: allow a few seconds."""
    if os.path.exists(f"/proc/{pid}"):
        fail(f"{label}: lua-perf (PID {pid}) still exists after its exit")
    deadline = time.monotonic() + 10
    while True:
        orphans = {i: n for i, n in lua_perf_progs().items() if i not in before}
        if orphans:
            held = held_progs()
            orphans = {i: n for i, n in orphans.items() if i not in held}
        if not orphans:
            return
        if time.monotonic() > deadline:
            fail(f"{label}: BPF programs left behind, held by no process: {orphans}")
        time.sleep(0.2)


def run_lua_perf(argv, label, timeout=RUN_TIMEOUT, during=None):
    """Run lua-perf (argv may start with a wrapper), calling during(its Popen) once started;
    (exit code, stdout, stderr, seconds). Checks afterwards that it left nothing behind."""
    before = lua_perf_progs()
    log(f"--- {label}: $ {' '.join(argv)}")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=profiling.die_with_parent)
    try:
        if during:
            threading.Thread(target=during, args=(proc,), daemon=True).start()
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        fail(f"{label}: lua-perf did not exit within {timeout} s")
    elapsed = time.monotonic() - started
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    log(f"exit code {proc.returncode} after {elapsed:.1f} s; stderr: {err!r}")
    check_no_leftovers(before, proc.pid, label)
    return proc.returncode, out, err, elapsed


def expect_one_line(label, rc, err, pattern, names=()):
    """Exit code 1 and exactly one stderr line matching pattern and naming every string of
    names."""
    lines = err.rstrip("\n").split("\n") if err.strip() else []
    problems = []
    if rc != 1:
        problems.append(f"exit code {rc} (want 1)")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr (want 1)")
    if not re.search(pattern, err, re.I):
        problems.append(f"stderr does not match /{pattern}/i")
    problems += [f"stderr does not name {n!r}" for n in names if n not in err]
    if problems:
        fail(f"{label}: " + "; ".join(problems) + f"\n    stderr: {err!r}")


def expect_one_error(label, rc, err, pattern, names=()):
    """Exit code 1 and exactly one `error:` line (progress lines before it are fine), matching
    pattern and naming every string of names; no warning."""
    errors = [line for line in err.split("\n") if "error" in line.lower()]
    warnings = [line for line in err.split("\n") if line.startswith("lua-perf: warning:")]
    problems = []
    if rc != 1:
        problems.append(f"exit code {rc} (want 1)")
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines (want 1)")
    elif not re.search(pattern, errors[0], re.I):
        problems.append(f"the error line does not match /{pattern}/i")
    if warnings:
        problems.append(f"warnings {warnings}")
    problems += [f"the error does not name {n!r}" for n in names if not errors or n not in errors[0]]
    if problems:
        fail(f"{label}: " + "; ".join(problems) + f"\n    stderr: {err!r}")


# --------------------------------------------------------------------------------------------
# capabilities


def capability_numbers():
    numbers = {}
    with open(CAPABILITY_H) as f:
        for line in f:
            m = re.match(r"#define (CAP_[A-Z_]+)\s+(\d+)\s*$", line)
            if m:
                numbers[m[1]] = int(m[2])
    missing = [c for c in NEEDED if c not in numbers]
    if missing:
        fail(f"{CAPABILITY_H} does not define {missing}")
    return numbers


def as_nobody(caps, argv):
    """argv run by nobody with exactly `caps` (ambient, so they survive the exec)."""
    keep = "cap_setuid,cap_setgid,cap_setpcap+ep"
    names = ",".join(c.lower() for c in caps)
    wrapper = [CAPSH, f"--caps={names}+eip {keep}" if caps else f"--caps={keep}", "--keep=1",
               "--user=nobody"]
    if caps:
        wrapper.append(f"--addamb={names}")
    return wrapper + ["--", "-c", 'exec "$0" "$@"'] + argv


def check_capability_set(caps, numbers):
    """What the wrapped process really holds: CapEff = CapAmb = caps, and it runs as nobody."""
    res = subprocess.run(as_nobody(caps, ["cat", "/proc/self/status"]), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=30)
    status = res.stdout.decode(errors="replace")
    want = sum(1 << numbers[c] for c in caps)
    fields = dict(re.findall(r"^(\w+):\s+(.*)$", status, re.M))
    got = {k: int(fields.get(k, "-1"), 16) for k in ("CapEff", "CapAmb")}
    uid = fields.get("Uid", "").split()
    if got["CapEff"] != want or got["CapAmb"] != want or not uid or int(uid[0]) == 0:
        fail(f"capsh wrapper for {caps}: CapEff {got['CapEff']:#x}, CapAmb {got['CapAmb']:#x}, "
             f"Uid {uid} (want {want:#x}, non-root); stderr {res.stderr!r}")


def public_copy(path, directory):
    """A copy that the user nobody can execute (the build tree may be out of its reach)."""
    dest = os.path.join(directory, os.path.basename(path))
    shutil.copy2(path, dest)
    os.chmod(dest, 0o755)
    return dest


def check_profile_as_nobody(exe, pub, deep_pid, dd_pid):
    out = os.path.join(pub, "caps.fold")
    rc, _, err, _ = run_lua_perf(as_nobody(NEEDED, [exe, "-p", str(deep_pid), "-p", str(dd_pid),
                                                    "-d", "2", "-o", out]), "profile, 4 capabilities")
    if rc != 0:
        fail(f"profile as nobody with {NEEDED}: exit code {rc}; stderr {err!r}")
    stacks = folded.parse_fold(out)
    deep = sum(c for f, c in stacks if folded.user_part(f)
               and folded.user_part(f)[-1] == "burn_deep" and f[0] == "_start")
    kernel = [fr for f, c in stacks for fr in f if fr.endswith("_[k]") for _ in range(c)]
    named = [fr for fr in kernel if not fr.startswith("0x")]
    log(f"profile as nobody: {deep} complete fixture_deep samples in burn_deep, "
        f"{len(named)}/{len(kernel)} kernel frames named")
    if deep < 100:
        fail(f"profile as nobody: only {deep} complete samples of fixture_deep in burn_deep "
             "(its files unreadable without CAP_SYS_PTRACE?)\n" + folded.top_stacks(stacks))
    if len(kernel) < 100 or len(named) < 0.99 * len(kernel):
        fail(f"profile as nobody: {len(named)} of {len(kernel)} kernel frames named (want >= 99% "
             "of >= 100)\n" + folded.top_stacks(stacks))


def check_dump_as_nobody(exe, dump_fixture):
    rc, out, err, _ = run_lua_perf(as_nobody(NEEDED, [exe, "dump", "-p", str(dump_fixture.pid)]),
                                   "dump, 4 capabilities")
    if rc != 0:
        fail(f"dump as nobody with {NEEDED}: exit code {rc}; stderr {err!r}")
    dump = thread_dump.parse_dump(out)
    reader = thread_dump.fixture_threads(dump_fixture)["reader"]
    t = dump.get(dump_fixture.pid, {}).get("threads", {}).get(reader)
    if t is None or t.state != "sleeping" or t.syscall != "read":
        fail(f"dump as nobody: reader thread {reader}: {t.describe() if t else 'missing'}")
    reader_chain = [chains.one(chains.exact(f)) for f in ("thread_main", "read_outer", "read_inner")]
    thread_dump.check_stack(t, thread_dump.THREAD_ROOT + reader_chain,
                            leaf=[thread_dump.libc_any()], label="dump as nobody, reader")
    log("dump as nobody: the reader thread's stack is complete")


def case_capabilities(args, tmp):
    if not os.access(CAPSH, os.X_OK):
        fail(f"{CAPSH} not found: the project's install script installs libcap2-bin")
    numbers = capability_numbers()
    pub = tempfile.mkdtemp(prefix="lua-perf-caps-")
    targets = []
    try:
        os.chmod(pub, 0o777)
        exe = public_copy(args.lua_perf, pub)
        for caps in [NEEDED, [], NEEDED[:2]]:
            check_capability_set(caps, numbers)
        # root's processes, from files nobody can reach (lua-perf reads them as nobody)
        deep = Child([public_copy(os.path.join(args.fixture_dir, "fixture_deep"), pub), "300"])
        dd = Child(["dd", "if=/dev/zero", "of=/dev/null", "bs=64k"])
        dump_fixture = Child([public_copy(os.path.join(args.fixture_dir, "fixture_dump"), pub),
                              "300"])
        targets = [deep, dd, dump_fixture]
        deep.wait_for("ready")
        dump_fixture.wait_for("ready")
        check_profile_as_nobody(exe, pub, deep.pid, dd.pid)
        check_dump_as_nobody(exe, dump_fixture)

        rc, _, err, _ = run_lua_perf(
            as_nobody([c for c in NEEDED if c != "CAP_SYSLOG"],
                      [exe, "-p", str(deep.pid), "-d", "1", "--no-kernel", "-o",
                       os.path.join(pub, "nokernel.fold")]), "--no-kernel without CAP_SYSLOG")
        if rc != 0:
            fail(f"--no-kernel without CAP_SYSLOG: exit code {rc}; stderr {err!r}")

        for left_out in NEEDED + [None]:
            caps = [c for c in NEEDED if c != left_out] if left_out else []
            missing = [left_out] if left_out else NEEDED
            label = f"without {left_out}" if left_out else "no capability"
            for argv in ([exe, "-p", str(deep.pid), "-d", "1", "-o", os.path.join(pub, "x.fold")],
                         [exe, "dump", "-p", str(deep.pid)]):
                rc, _, err, _ = run_lua_perf(as_nobody(caps, argv), label, timeout=30)
                expect_one_line(label, rc, err, r"missing capabilit", missing)
                extra = [c for c in NEEDED if c not in missing and f"{c} (" in err]
                if extra:
                    fail(f"{label}: stderr says {extra} are missing too: {err!r}")
    finally:
        for t in targets:
            t.close()
        shutil.rmtree(pub, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Start-up, outputs, kernel support


def holds_bpf_program(pid):
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-prog"
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def case_startup_exit(args, tmp):
    """Targets that exit while lua-perf starts: 50 ms after it was started (before or after its
    first look at the PID: under ASan lua-perf may need longer than that to get there), reaped
    or left a zombie; and killed as soon as lua-perf holds its loaded BPF program (while the
    unwind tables are built)."""
    for when in ("50 ms, reaped", "50 ms, zombie", "at BPF load, reaped"):
        label = f"target exits {when}"
        target = subprocess.Popen(["sh", "-c", "read go; exec sleep 0.05"], stdin=subprocess.PIPE)
        if when.endswith("reaped"):
            threading.Thread(target=target.wait, daemon=True).start()

        def release(lua_perf):
            if when.startswith("at BPF load"):
                deadline = time.monotonic() + RUN_TIMEOUT
                while not holds_bpf_program(lua_perf.pid) and lua_perf.poll() is None \
                        and time.monotonic() < deadline:
                    time.sleep(0.002)
                target.kill()
            else:
                target.stdin.write(b"go\n")
            target.stdin.close()

        out = os.path.join(tmp, "exit.fold")
        try:
            rc, _, err, _ = run_lua_perf([args.lua_perf, "-p", str(target.pid), "-d", "5", "-o",
                                          out], label, during=release)
        finally:
            target.kill()
            target.wait()
        # "no such process" when it exited before lua-perf first looked at it; progress lines
        # (its runtime, the tables built) may come first: lua-perf looks at its targets while
        # the kernel verifies its programs
        pattern = r"exited|no such process" if when == "50 ms, reaped" else r"exited"
        expect_one_error(label, rc, err, pattern, [str(target.pid)])
        if os.path.exists(out):
            fail(f"{label}: the output file was created")


def case_unwritable(args, tmp):
    target = Child(["dd", "if=/dev/zero", "of=/dev/null", "bs=64k"])  # samples: no warning
    try:
        path = os.path.join(tmp, "no-such-directory", "out.fold")
        rc, _, err, elapsed = run_lua_perf([args.lua_perf, "-p", str(target.pid), "-d", "1",
                                            "-o", path], "output in a missing directory")
        expect_one_line("unwritable output", rc, err, r"cannot write", [path])
        if elapsed > 5:
            fail(f"unwritable output: lua-perf took {elapsed:.1f} s to say so (want it before "
                 "any BPF work)")
        rc, _, err, _ = run_lua_perf([args.lua_perf, "-p", str(target.pid), "-d", "1", "-o",
                                      "/dev/full"], "output /dev/full")
        expect_one_error("output /dev/full", rc, err, r"cannot write", ["/dev/full"])
    finally:
        target.close()


def case_no_bpf(args, tmp):
    target = Child(["sleep", "300"])
    busy = Child(["dd", "if=/dev/zero", "of=/dev/null", "bs=64k"])  # runs: needs perf events
    try:
        out = ["-o", os.path.join(tmp, "nobpf.fold")]
        runs = [
            ("bpf() ENOSYS, profile", ["bpf", "ENOSYS"], ["-p", str(target.pid), "-d", "1"] + out,
             r"no BPF system call"),
            ("bpf() ENOSYS, dump", ["bpf", "ENOSYS"], ["dump", "-p", str(target.pid)],
             r"no BPF system call"),
            ("perf_event_open() ENOSYS", ["perf_event_open", "ENOSYS"],
             ["-p", str(target.pid), "-d", "1"] + out, r"no perf events"),
            ("perf_event_open() ENOSYS, dump", ["perf_event_open", "ENOSYS"],
             ["dump", "-p", str(busy.pid)], r"no perf events"),
            ("perf_event_open() EPERM", ["perf_event_open", "EPERM"],
             ["-p", str(target.pid), "-d", "1"] + out, r"CAP_PERFMON"),
        ]
        for label, deny, argv, pattern in runs:
            rc, _, err, _ = run_lua_perf([args.deny_syscall] + deny + [args.lua_perf] + argv, label)
            expect_one_error(label, rc, err, pattern)
        # a process whose threads all sleep is dumped by the task iterator alone
        label = "perf_event_open() ENOSYS, dump of a sleeping process"
        rc, dumped, err, _ = run_lua_perf([args.deny_syscall, "perf_event_open", "ENOSYS",
                                           args.lua_perf, "dump", "-p", str(target.pid)], label)
        if rc != 0 or "error" in err or f"{target.pid} sleep" not in dumped:
            fail(f"{label}: exit code {rc}, want 0 and its thread dumped; stdout {dumped!r}, "
                 f"stderr {err!r}")
        unshare = shutil.which("unshare")
        if not unshare:
            fail("unshare (util-linux) not found")
        hide = ('mount --bind /dev/null /sys/kernel/btf/vmlinux && exec "$0" "$@"')
        rc, _, err, _ = run_lua_perf([unshare, "-m", "sh", "-c", hide, args.lua_perf, "-p",
                                      str(target.pid), "-d", "1"] + out, "no kernel BTF")
        expect_one_line("no kernel BTF", rc, err, r"no BTF", ["/sys/kernel/btf/vmlinux"])
    finally:
        target.close()
        busy.close()


CASES = {
    "capabilities": case_capabilities,
    "startup_exit": case_startup_exit,
    "unwritable": case_unwritable,
    "no_bpf": case_no_bpf,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", required=True, help="path of the lua-perf binary")
    ap.add_argument("--fixture-dir", help="directory of the fixtures (capabilities)")
    ap.add_argument("--deny-syscall", help="tests/fixtures/tools/deny_syscall (no_bpf)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False  # cannot_profile asks (no perf mode here)
    status = profiling.cannot_profile(args)  # needs root: capabilities to hand out, BPF
    if status is not None:
        return status
    return profiling.run_case(CASES[args.case], args, f"lua-perf-failures-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
