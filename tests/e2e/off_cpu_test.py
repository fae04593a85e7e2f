#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`lua-perf --off-cpu`: where threads wait, weighted by how long, with the reason at the leaf.

    off_cpu_test.py --lua-perf BIN lua54|min_block|command|nginx|errors
    off_cpu_test.py --lua-perf BIN luajit --luajit LUAJIT
    off_cpu_test.py --lua-perf BIN preempt --fixture preempt_pair

Every off-CPU profile is parsed strictly (parse_off_cpu_fold): one line per distinct stack, root
first, `frame;...;frame COUNT` with COUNT in microseconds (a positive integer), the last frame
the reason (`[preempted]`, `[blocked: <syscall>]`, `[blocked uninterruptible: <syscall>]`,
`[blocked]`, `[blocked uninterruptible]`; the system call a name of the kernel's
asm/unistd_64.h, or `system call N` for a number it lacks) and nowhere else, the kernel frames
(`_[k]`) one run right before it. Lua frames are `L:<function>@<chunk>:<line defined>` as in
on-CPU profiles (tests/e2e/lua_profile_test.py). lua-perf must exit 0 and write the SVG of the
same run; its stderr summary (class Summary) must agree with the folded file: the total off-CPU
time with the sum of the counts, each process's time with the sum of its reasons; and it must
not warn that the kernel counted time the drains did not take, or skipped its program (the
nanoseconds BPF added to its counts are compared with those the drains took out).

The truth each case is held to, and how it is known:

lua54: tests/fixtures/off_cpu/blocking.lua under /usr/bin/lua5.4, `--off-cpu -p PID -d 7`. Once
  lua-perf says it is profiling, the test writes "go" on the script's stdin; the script runs 8
  rounds of wait_child() (os.execute("sleep 0.3"): glibc's system() waits in wait4, strace), then
  read_fifo() (opens a FIFO whose writer, a thread of the test, already waits in its open, and
  reads one line that the writer writes 0.2 s after opening), then short_waits(10) (10 times
  os.execute("true")), each call framed by "begin F I" / "end F I" lines on stdout, which the
  test timestamps as they arrive (CLOCK_MONOTONIC): the known time of F is the sum of its calls'
  wall times. All calls start after the profiling started and end before it stops, so no edge of
  the run cuts them: absolute times, not shares, are compared. Asserted:
    - the time of the stacks whose Lua frames are exactly L:main@S:0;L:wait_child@S:N (S the
      script, N its definition line) with leaf [blocked: wait4] is within 10% of wait_child's
      known time (the call also spends ~1 ms per call in clone3 and on the CPU: < 1%), and
      likewise L:main;L:read_fifo with [blocked: read] against read_fifo's;
    - no other reason holds more than 10% of either chain's time; their stacks are complete
      (root _start) and their kernel frames start at the system call entry (entry_SYSCALL_64);
    - after its last round the script prints "done" and waits in io.read in the main chunk until
      lua-perf stops: L:main@S:0 alone with [blocked: read] holds that tail (a thread still off
      CPU at the end is counted up to the end) within 10% + 0.15 s, the end lying between the
      "profiling" line's time + 7 s and the summary's first line (the wait for the go, begun
      before the run and not counted by lua-perf, may add up to its own length);
    - the stderr summary gives the script's PID a total off-CPU time at least the known blocked
      time and at most the run's length (+5%), and by reason at least 90% of wait_child's known
      time in "blocked: wait4" and of read_fifo's in "blocked: read".
min_block: the same with `--min-block-us 100000`, 4 rounds of short_waits(30): every folded
  count is >= 100000 (each line adds up blocks of >= 0.1 s); wait_child and read_fifo keep their
  known times (within 10%); short_waits' chain holds no time (its waits take ~1 ms; at most
  0.3 s tolerated for a stalled machine); the summary line "not counted: N blocks shorter than
  100000 us (X s in all), ..." names the minimum, and N is at least one per short os.execute
  (its wait4): 120.
command: `lua-perf --off-cpu -o F -- lua5.4 naps.lua` (a script of the test: 0.5 s of CPU, then
  nap() runs os.execute("sleep 0.4") 3 times, then os.exit(3)): lua-perf exits with the command's
  status 3, and L:main;L:nap holds 1.2 s to 1.32 s of [blocked: wait4] (sleep 0.4 three times,
  plus starting sh and sleep: a lower bound that cannot be undercut). The 0.5 s first: a wait
  that begins within milliseconds of an exec is recorded before lua-perf has published the new
  program's unwind tables, with no user frames (measured: the first nap's 0.4 s, and every wait
  of the short-lived `sleep` children); this case leaves that out.
luajit: tests/fixtures/off_cpu/blocking_ffi.lua under Debian's luajit 2.1 (the upstream LuaJIT
  package, extracted privately by scripts/fetch-luajit.sh: it conflicts with the libluajit2 that
  nginx's Lua module needs), `-p PID -d 5`, "go" as above, 10 rounds of ffi_poll() (FFI
  poll(NULL, 0, 200)) and ffi_usleep() (FFI usleep(100000): clock_nanosleep in glibc 2.36), each
  call timed by the script itself (clock_gettime through the FFI, printed in ns): the known times
  are their sums. Asserted: L:main;L:ffi_poll (Lua frames other than @builtin fast functions)
  with [blocked: poll], and L:main;L:ffi_usleep with [blocked: clock_nanosleep], within 10%;
  the tail in io.read and the summary as for lua54.
nginx: nginx + ngx_lua (1 worker, JIT off) serving tests/fixtures/off_cpu/fifo_handler.lua, whose
  handler reads a line of the FIFO named in the request; `-p <master> -d 6`. The test sends 8
  requests 0.25 s apart (HTTP/1.0, one connection each); for each its writer thread waits in
  open(O_WRONLY), then writes 0.2 s after the worker opened: the known blocked time is the sum of
  the reads' times the handler measured (ngx.now() around f:read, ms resolution; the writer's
  holds are logged beside them: a worker that reached its read late would block less).
  Asserted: the stacks with L:read_fifo hold exactly the Lua frames
  content_by_lua chunk;_M.run;read_fifo (fast functions aside) right above
  ngx_http_lua_run_thread;lj_vm, and their [blocked: read] time is within 10% of the known;
  every [blocked: epoll_wait] stack has no Lua frame and goes through the worker's
  ngx_process_events_and_timers, and they hold the worker's known idle time (from each response
  to the next request, and from the last one to the end of the run) within 10% (the wait
  before the first request, begun before the run, may add up to its own length); the summary
  gives the worker at least 90% of both known times under those reasons.
preempt: tests/fixtures/off_cpu/preempt_pair (two CPU-bound threads pinned to CPU 0), `-p PID
  -d 4`. The truth is the kernel's: each thread's run_delay (time runnable but not running,
  /proc/PID/task/TID/schedstat) between the "profiling" line and 4 s later. Asserted: the
  [preempted] time on each thread's chain (clone3;start_thread;run_X;burn_X, complete) is within
  10% of its run_delay, the chain holds >= 95% of the thread's off-CPU time, and, unless the
  machine's other load kept CPU 0 busy (run_delay itself outside it: then only reported), each
  is 35%-65% of the 4 s; the summary gives the process at least 90% of both run_delays as
  "preempted".
errors: `--off-cpu -p <a PID that does not exist>`; --min-block-us -1, abc, 1e3, "" and 2^63; --min-block-us without --off-cpu; -f with --off-cpu; `dump
  --off-cpu`: one line on stderr naming the PID or the option(s), nothing written, exit status
  1 for the PID (a run that fails, as on-CPU) and 2 for the command lines (lua-perf's status for
  every option it rejects, e.g. -f abc).

Exit status: 0 pass, 1 fail, 77 skipped (not root).
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import nginx, profiling  # noqa: E402
from pylib.chains import exact, full_match, libc_fn, MAIN_PREFIX, one, spec_desc  # noqa: E402
from pylib.folded import compress, OFF_CPU_REASON, parse_fold, user_part  # noqa: E402
from pylib.paths import fixture  # noqa: E402
from pylib.profiling import Child, die_with_parent  # noqa: E402
from pylib.report import fail, log  # noqa: E402

LUA = "/usr/bin/lua5.4"
UNISTD_64 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
BLOCKING = fixture("off_cpu", "blocking.lua")
BLOCKING_FFI = fixture("off_cpu", "blocking_ffi.lua")
FIFO_HANDLER = fixture("off_cpu", "fifo_handler.lua")
USAGE = 2                 # lua-perf's exit status for a command line it rejects (as for -f abc)
TOLERANCE = 0.10          # relative error allowed against a known time
START_TIMEOUT = 90        # s: BPF verification on a busy 2-core machine
THREAD_ROOT = [one(libc_fn({"clone3"})), one(libc_fn({"start_thread"}))]


# --------------------------------------------------------------------------------------------
# The folded off-CPU profile


def syscall_names():
    names = set()
    with open(UNISTD_64) as f:
        for line in f:
            m = re.match(r"#define __NR_(\w+) (\d+)$", line.strip())
            if m:
                names.add(m[1])
    return names


class Stack:
    """One folded line: user frames (root first), kernel frames (root first), the reason
    (`blocked: read`, without brackets), its system call or None, microseconds."""

    def __init__(self, user, kernel, reason, syscall, us):
        self.user, self.kernel, self.reason = user, kernel, reason
        self.syscall, self.us = syscall, us

    def lua(self, builtins=False):
        return [f for f in self.user
                if f.startswith("L:") and (builtins or not f.endswith("@builtin"))]

    def text(self):
        return compress(list(self.user) + list(self.kernel) + [f"[{self.reason}]"])


def parse_off_cpu_fold(path):
    """Strictly parse lua-perf's --off-cpu folded output (the module docstring): [Stack]."""
    known = syscall_names()
    stacks = []
    for n, (frames, count) in enumerate(parse_fold(path), 1):
        where = f"{path}:{n}: {';'.join(frames)[:300]!r}"
        m = OFF_CPU_REASON.fullmatch(frames[-1])
        if not m:
            fail(f"{where}: the leaf frame {frames[-1]!r} is no off-CPU reason")
        syscall = m["syscall"]
        if syscall and not syscall.startswith("system call ") and syscall not in known:
            fail(f"{where}: {syscall!r} is not a system call of {UNISTD_64}")
        if any(OFF_CPU_REASON.fullmatch(fr) for fr in frames[:-1]):
            fail(f"{where}: a reason frame before the leaf")
        user = user_part(frames)
        stacks.append(Stack(user, frames[len(user):-1], m["reason"], syscall, count))
    if not stacks:
        fail(f"{path}: empty")
    return stacks


def top(stacks, n=12, title="top off-CPU stacks"):
    total = sum(s.us for s in stacks) or 1
    lines = [f"  {title} ({total / 1e6:.3f} s in {len(stacks)} stacks):"]
    for s in sorted(stacks, key=lambda s: -s.us)[:n]:
        lines.append(f"  {s.us / 1e6:9.3f} s {100.0 * s.us / total:5.1f}%  {s.text()[-400:]}")
    return "\n".join(lines)


def by_reason(stacks):
    out = {}
    for s in stacks:
        out[s.reason] = out.get(s.reason, 0) + s.us
    return out


def fmt_reasons(stacks):
    return ", ".join(f"[{r}] {us / 1e6:.3f} s"
                     for r, us in sorted(by_reason(stacks).items(), key=lambda kv: -kv[1]))


def check_near(label, got_s, want_s, tolerance=TOLERANCE, slack=0.0):
    err = (got_s - want_s) / want_s if want_s else float("inf")
    log(f"  {label}: {got_s:.3f} s measured, {want_s:.3f} s known ({100 * err:+.1f}%)")
    if abs(got_s - want_s) > tolerance * want_s + slack:
        fail(f"{label}: {got_s:.3f} s off CPU, known {want_s:.3f} s: {100 * err:+.1f}% "
             f"(allowed {100 * tolerance:.0f}%{f' + {slack} s' if slack else ''})")


def check_syscall_entry(stacks, label):
    """Stacks blocked in a system call: their kernel frames start (root) at the syscall entry."""
    bad = [s for s in stacks if s.syscall and not (s.kernel and s.kernel[0].startswith(
        ("entry_SYSCALL_64", "do_syscall_64")))]
    if sum(s.us for s in bad) > 0.01 * max(1, sum(s.us for s in stacks if s.syscall)):
        fail(f"{label}: stacks in a system call whose kernel frames do not start at "
             "entry_SYSCALL_64\n" + top(bad))


def check_complete(stacks, prefix, label):
    bad = [s for s in stacks if not (len(s.user) >= len(prefix)
                                    and full_match(s.user[:len(prefix)], prefix))]
    if sum(s.us for s in bad) > 0.01 * max(1, sum(s.us for s in stacks)):
        fail(f"{label}: stacks not starting with {spec_desc(prefix)} (incomplete)\n" + top(bad))


# --------------------------------------------------------------------------------------------
# Running lua-perf --off-cpu and the workloads


class TimedLines:
    """The stdout lines of a Child, each with the CLOCK_MONOTONIC time it was read at."""

    def __init__(self, child):
        self.child = child
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = self.child.buf
        self.child.buf = b""
        fd = self.child.proc.stdout.fileno()
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with self.cond:
                    self.lines.append((time.monotonic(), line.decode(errors="replace")))
                    self.cond.notify_all()
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cond:
                    self.lines.append((time.monotonic(), None))
                    self.cond.notify_all()
                return
            buf += chunk

    def wait_for(self, text, timeout, prefix=False):
        """The time of the line `text` (or the first line starting with it: prefix)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, line in self.lines:
                    if line == text or prefix and line is not None and line.startswith(text):
                        return t
                    if line is None:
                        fail(f"the workload closed its stdout before {text!r}: "
                             f"{[l for _, l in self.lines][-10:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    t0 = self.lines[0][0] if self.lines else 0
                    fail(f"no {text!r} line within {timeout} s; the lines (s): "
                         + ", ".join(f"{t - t0:.3f} {l}" for t, l in self.lines))
                self.cond.wait(left)

    def calls(self, name):
        """{i: (begin, end)} from "begin NAME I" / "end NAME I ..." lines."""
        begins, out = {}, {}
        for t, line in self.lines:
            parts = (line or "").split()
            if len(parts) >= 3 and parts[1] == name:
                if parts[0] == "begin":
                    begins[int(parts[2])] = t
                elif parts[0] == "end":
                    out[int(parts[2])] = (begins[int(parts[2])], t)
        return out


class OffCpu:
    """lua-perf --off-cpu against some PIDs, its stderr read as it comes (with times)."""

    def __init__(self, args, tmp, pids, duration, extra=(), svg=True):
        self.fold = os.path.join(tmp, "off.fold")
        self.svg = os.path.join(tmp, "off.svg")
        self.duration = duration
        argv = [args.lua_perf, "--off-cpu"]
        for p in pids:
            argv += ["-p", str(p)]
        argv += ["-d", str(duration), "-o", self.fold] + (["-o", self.svg] if svg else [])
        argv += list(extra)
        log("$ " + " ".join(argv))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True, preexec_fn=die_with_parent)
        self.err_lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.err_lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.err_lines.append((time.monotonic(), None))
            self.cond.notify_all()

    def wait_profiling(self):
        """The time of lua-perf's "lua-perf: profiling ..." line (its events are on)."""
        deadline = time.monotonic() + START_TIMEOUT
        with self.cond:
            while True:
                for t, line in self.err_lines:
                    if line is None:
                        self.proc.wait()
                        fail(f"lua-perf exited ({self.proc.returncode}) before profiling: "
                             + " | ".join(l for _, l in self.err_lines if l))
                    if line.startswith("lua-perf: profiling"):
                        self.t_profiling = t
                        log(f"  lua-perf profiling after {t - self.started:.1f} s: {line}")
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    fail(f"lua-perf not profiling within {START_TIMEOUT} s: "
                         + " | ".join(l for _, l in self.err_lines if l))
                self.cond.wait(left)

    def finish(self):
        """Wait for lua-perf's exit (status 0, a summary): its stderr."""
        try:
            self.proc.wait(timeout=self.duration + profiling.PROFILER_GRACE + START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            fail(f"lua-perf still running long after -d {self.duration}")
        self.thread.join(timeout=10)
        err = "\n".join(l for _, l in self.err_lines if l is not None)
        self.t_summary = next((t for t, l in self.err_lines
                               if l and re.match(r"lua-perf: [0-9.]+ s off CPU in ", l)),
                              time.monotonic())
        log(f"lua-perf exit code {self.proc.returncode} after "
            f"{time.monotonic() - self.started:.1f} s; stderr:")
        for line in err.split("\n"):
            log("  | " + line)
        if self.proc.returncode != 0:
            fail(f"lua-perf exited with {self.proc.returncode}")
        return err

    def stacks(self):
        if not os.path.exists(self.svg):
            fail(f"lua-perf wrote no {self.svg}")
        with open(self.svg, "rb") as f:
            if b"<svg" not in f.read(4096):
                fail(f"{self.svg} is not an SVG")
        stacks = parse_off_cpu_fold(self.fold)
        log(top(stacks))
        return stacks

    def kill(self):
        profiling.kill_group(self.proc)
        self.proc.wait()


def run_end(prof):
    """When lua-perf stopped counting: the "profiling" line's time + -d."""
    return prof.t_profiling + prof.duration


class FifoWriter:
    """A thread that, `count` times: waits for turn(i) (the reader closed the FIFO after its
    previous line: else the next open could pair with the old reader and the write fail), opens
    the FIFO for writing (blocking until its reader opens it), sleeps `hold` s, writes a line,
    closes. Records (opened, written) times."""

    def __init__(self, path, count, turn, hold=0.2):
        self.path, self.count, self.turn, self.hold = path, count, turn, hold
        self.times = []
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for i in range(1, self.count + 1):
                self.turn(i)
                fd = os.open(self.path, os.O_WRONLY)
                opened = time.monotonic()
                time.sleep(self.hold)
                written = time.monotonic()
                os.write(fd, f"line {i}\n".encode())
                os.close(fd)
                self.times.append((opened, written))
        except Exception as e:  # noqa: BLE001 - reported by the case
            self.error = e

    def release(self):
        """Unblock a writer still waiting in open (no reader coming)."""
        if self.thread.is_alive():
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
                time.sleep(0.05)
                os.close(fd)
            except OSError:
                pass

    def blocked(self):
        return sum(w - o for o, w in self.times)


def make_fifo(tmp):
    path = os.path.join(tmp, "fifo")
    os.mkfifo(path)
    os.chmod(path, 0o666)  # nginx workers run as nobody
    return path


def marks(path):
    """{name: line} of the `-- MARK name` comments of a script."""
    with open(path) as f:
        return {m[1]: n for n, line in enumerate(f, 1)
                for m in [re.search(r"-- MARK (\w+)$", line.rstrip("\n"))] if m}


def chain_stacks(stacks, lua_chain, builtins=False):
    """Stacks whose Lua frames (root first; fast functions left out unless builtins) are
    exactly lua_chain."""
    return [s for s in stacks if s.lua(builtins) == lua_chain]


def check_chain_time(stacks, lua_chain, reason, known_s, label, prefix=MAIN_PREFIX):
    """The stacks with exactly these Lua frames: the time with `reason` is within TOLERANCE of
    known_s, no other reason holds more than TOLERANCE of the chain, complete, in a syscall."""
    mine = chain_stacks(stacks, lua_chain)
    if not mine:
        fail(f"{label}: no stack has the Lua frames {';'.join(lua_chain)}\n" + top(stacks, 25))
    total = sum(s.us for s in mine)
    log(f"  {label}: {total / 1e6:.3f} s on {';'.join(lua_chain)}: {fmt_reasons(mine)}")
    got = by_reason(mine).get(reason, 0) / 1e6
    check_near(f"{label} [{reason}]", got, known_s)
    others = {r: us for r, us in by_reason(mine).items() if r != reason}
    for r, us in others.items():
        if us > TOLERANCE * total:
            fail(f"{label}: [{r}] holds {us / 1e6:.3f} s of the chain's {total / 1e6:.3f} s\n"
                 + top(mine))
    if prefix is not None:
        check_complete(mine, prefix, label)
    check_syscall_entry(mine, label)
    return mine


class Summary:
    """lua-perf's stderr summary of an --off-cpu run:
        lua-perf: T s off CPU in E s, N blocks followed; ...
        lua-perf: not counted: S blocks shorter than M us (X s in all), U blocks not followed ...
        lua-perf: off-CPU time per process (PID, seconds, share, command; then ...):
                PID    SECONDS  SHARE%  COMM
                       REASON S s, REASON S s[, K more S s]
    """

    def __init__(self, err):
        m = re.search(r"^lua-perf: ([0-9.]+) s off CPU in ([0-9.]+) s, (\d+) blocks followed; "
                      r".*complete stacks: ([0-9.]+)% of the time$", err, re.M)
        if not m:
            fail("no 'lua-perf: T s off CPU in E s, N blocks followed; ...' summary line")
        self.total, self.elapsed, self.blocks, self.complete = (
            float(m[1]), float(m[2]), int(m[3]), float(m[4]))
        m = re.search(r"^lua-perf: not counted: (\d+) blocks shorter than (\d+) us "
                      r"\(([0-9.]+) s in all\), (\d+) blocks not followed", err, re.M)
        if not m:
            fail("no 'lua-perf: not counted: N blocks shorter than M us ...' summary line")
        self.short, self.min_us, self.short_s, self.untracked = (
            int(m[1]), int(m[2]), float(m[3]), int(m[4]))
        profiling.check_nothing_lost(err)
        lines = err.split("\n")
        heads = [i for i, line in enumerate(lines)
                 if line.startswith("lua-perf: off-CPU time per process")]
        if len(heads) != 1:
            fail(f"{len(heads)} 'off-CPU time per process' summaries on stderr, want 1")
        self.procs = {}  # pid: (seconds, comm, {reason: seconds})
        pid = None
        for line in lines[heads[0] + 1:]:
            m = re.fullmatch(r"  +(\d+) +([0-9.]+) +[0-9.]+%  (.*)", line)
            if m:
                pid = int(m[1])
                self.procs[pid] = (float(m[2]), m[3], {})
                continue
            if pid is not None and re.fullmatch(r" {12,}\S.*", line):
                for item in line.strip().split(", "):
                    r = re.fullmatch(r"(.+) ([0-9.]+) s", item)
                    if not r:
                        fail(f"summary: bad reason item {item!r} in {line!r}")
                    self.procs[pid][2][r[1]] = float(r[2])
                continue
            break
        log(f"  summary: {self.total:.3f} s off CPU in {self.elapsed:.2f} s, {self.blocks} blocks; "
            f"not counted {self.short} shorter than {self.min_us} us ({self.short_s:.3f} s); "
            f"{len(self.procs)} processes listed")

    def check_against(self, stacks):
        """The totals agree with the folded file and with themselves (3-decimal rounding)."""
        fold_s = sum(s.us for s in stacks) / 1e6
        if abs(fold_s - self.total) > 0.0015:
            fail(f"summary: {self.total:.3f} s off CPU, the folded counts add up to {fold_s:.6f} s")
        for pid, (secs, comm, reasons) in self.procs.items():
            listed = sum(reasons.values())
            if abs(listed - secs) > 0.001 * len(reasons) + 0.0015:
                fail(f"summary: PID {pid} ({comm}) {secs:.3f} s, its reasons add up to "
                     f"{listed:.3f} s")


def check_process(summary, pid, low_s, high_s, reasons, label):
    """PID's summary line: total within [low_s, high_s]; each of `reasons` ({name: seconds})
    at least (1 - TOLERANCE) times that."""
    if pid not in summary.procs:
        fail(f"{label}: the summary lists no PID {pid}: {sorted(summary.procs)}")
    secs, comm, by = summary.procs[pid]
    log(f"  summary: PID {pid} ({comm}) {secs:.3f} s off CPU: {by}")
    if not low_s <= secs <= high_s:
        fail(f"{label}: the summary says PID {pid} spent {secs:.3f} s off CPU; want "
             f"{low_s:.3f} to {high_s:.3f} s")
    for name, want in reasons.items():
        if by.get(name, 0.0) < (1 - TOLERANCE) * want:
            fail(f"{label}: the summary gives PID {pid} {by.get(name, 0.0):.3f} s of {name}, "
                 f"want at least {want:.3f} s")


def check_tail(stacks, chain, prof, t_go, t_done, label):
    """The main chunk's last wait, from t_done until lua-perf stopped (still off CPU then): the
    end lies between the "profiling" line + -d and the summary's first line. The wait for the
    go, begun before the run, may count too (from the start of the run: at most t_go - the
    "profiling" line more)."""
    tail = [s for s in chain_stacks(stacks, chain) if s.reason == "blocked: read"]
    got = sum(s.us for s in tail) / 1e6
    low, high = run_end(prof) - 0.05 - t_done, prof.t_summary - t_done
    head = t_go - prof.t_profiling
    log(f"  tail: {got:.3f} s on {';'.join(chain)} [blocked: read]; known {low:.3f} to "
        f"{high:.3f} s from the last round to the end of the run (+ up to {head:.3f} s before "
        "the go)")
    if not (1 - TOLERANCE) * low - 0.15 <= got <= (1 + TOLERANCE) * (high + head) + 0.15:
        fail(f"{label}: the last wait (still off CPU at the end): {got:.3f} s, known "
             f"{low:.3f} to {high:.3f} s")


# --------------------------------------------------------------------------------------------
# Cases


def run_blocking_lua(args, tmp, rounds, shorts, duration, extra=()):
    """blocking.lua profiled as described for lua54: (stacks, stderr, times)."""
    if not os.access(LUA, os.X_OK):
        fail(f"{LUA} not found: the project's install script installs lua5.4")
    fifo = make_fifo(tmp)
    child = Child([LUA, BLOCKING, fifo, str(rounds), str(shorts)], stdin=True)
    writer = prof = None
    try:
        child.wait_for("ready")
        lines = TimedLines(child)
        writer = FifoWriter(fifo, rounds, lambda i: i == 1 or lines.wait_for(
            f"end read_fifo {i - 1} ", 60, prefix=True))
        prof = OffCpu(args, tmp, [child.pid], duration, extra)
        prof.wait_profiling()
        t_go = time.monotonic()
        child.send("go\n")
        t_done = lines.wait_for("done", duration)
        if t_done > run_end(prof) - 0.5:
            fail(f"the script ended its rounds {t_done - t_go:.1f} s after the go: too close to "
                 f"the end of the {duration} s run (machine too slow?)")
        err = prof.finish()
        if child.proc.poll() is not None:
            fail(f"lua5.4 exited during profiling ({child.proc.returncode})")
        if writer.error:
            fail(f"FIFO writer: {writer.error}")
        stacks = prof.stacks()
    finally:
        if prof:
            prof.kill()
        if writer:
            writer.release()
        child.close()
    known = {}
    for name in ("wait_child", "read_fifo", "short_waits"):
        calls = lines.calls(name)
        if sorted(calls) != list(range(1, rounds + 1)):
            fail(f"{name}: calls {sorted(calls)} completed, want 1..{rounds}")
        known[name] = sum(e - b for b, e in calls.values())
        log(f"  known: {name} {rounds} calls, {known[name]:.3f} s")
    times = {"go": t_go, "done": t_done, "known": known, "pid": child.pid,
             "fifo_writer": writer.blocked(), "prof": prof}
    log(f"  known: the FIFO writer held {times['fifo_writer']:.3f} s between open and write")
    return stacks, Summary(err), times


def lua54_chain(name, at):
    return [f"L:main@{BLOCKING}:0", f"L:{name}@{BLOCKING}:{at[name]}"]


def case_lua54(args, tmp):
    rounds, duration = 8, 7
    stacks, summary, t = run_blocking_lua(args, tmp, rounds, 10, duration)
    summary.check_against(stacks)
    at = marks(BLOCKING)
    check_chain_time(stacks, lua54_chain("wait_child", at), "blocked: wait4",
                     t["known"]["wait_child"], "wait_child")
    check_chain_time(stacks, lua54_chain("read_fifo", at), "blocked: read",
                     t["known"]["read_fifo"], "read_fifo")
    check_tail(stacks, [f"L:main@{BLOCKING}:0"], t["prof"], t["go"], t["done"], "lua54")
    check_process(summary, t["pid"], t["known"]["wait_child"] + t["known"]["read_fifo"],
                  duration * 1.05, {"blocked: wait4": t["known"]["wait_child"],
                                    "blocked: read": t["known"]["read_fifo"]}, "lua54")


def case_min_block(args, tmp):
    rounds, shorts, duration = 4, 30, 6
    stacks, summary, t = run_blocking_lua(args, tmp, rounds, shorts, duration,
                                          extra=["--min-block-us", "100000"])
    summary.check_against(stacks)
    small = [s for s in stacks if s.us < 100000]
    if small:
        fail("folded lines below the minimum block of 100000 us:\n" + top(small))
    at = marks(BLOCKING)
    check_chain_time(stacks, lua54_chain("wait_child", at), "blocked: wait4",
                     t["known"]["wait_child"], "wait_child")
    check_chain_time(stacks, lua54_chain("read_fifo", at), "blocked: read",
                     t["known"]["read_fifo"], "read_fifo")
    short = chain_stacks(stacks, lua54_chain("short_waits", at))
    kept = sum(s.us for s in short) / 1e6
    log(f"  short_waits: {kept:.3f} s kept of its {t['known']['short_waits']:.3f} s "
        f"({rounds * shorts} os.execute(\"true\"))")
    if kept > 0.3:
        fail(f"short_waits' chain kept {kept:.3f} s: its ~1 ms waits should be dropped\n"
             + top(short))
    log(f"  summary: {summary.short} blocks shorter than {summary.min_us} us not counted "
        f"({summary.short_s:.3f} s)")
    if summary.min_us != 100000:
        fail(f"the summary says blocks shorter than {summary.min_us} us, want 100000")
    if summary.short < rounds * shorts:
        fail(f"the summary says {summary.short} blocks were dropped; the script alone made at "
             f"least {rounds * shorts} short waits in wait4")
    if summary.short_s > 0.1 * summary.short:
        fail(f"the {summary.short} dropped blocks add up to {summary.short_s:.3f} s: more than "
             "0.1 s each")


def case_luajit(args, tmp):
    if not args.luajit or not os.access(args.luajit, os.X_OK):
        fail(f"Debian's luajit not found at {args.luajit!r} (scripts/fetch-luajit.sh DIR "
             "extracts it to DIR/upstream/usr/bin/luajit)")
    rounds, duration = 10, 5
    env = dict(os.environ)
    libdir = os.path.join(os.path.dirname(os.path.dirname(args.luajit)), "lib",
                          "x86_64-linux-gnu")
    if os.path.isdir(libdir):
        env["LD_LIBRARY_PATH"] = libdir
    child = Child([args.luajit, BLOCKING_FFI, str(rounds)], stdin=True, env=env)
    prof = None
    try:
        child.wait_for("ready")
        lines = TimedLines(child)
        prof = OffCpu(args, tmp, [child.pid], duration)
        prof.wait_profiling()
        t_go = time.monotonic()
        child.send("go\n")
        t_done = lines.wait_for("done", duration)
        if t_done > run_end(prof) - 0.3:
            fail("the script ended its rounds too close to the end of the run (machine too slow?)")
        err = prof.finish()
        stacks = prof.stacks()
    finally:
        if prof:
            prof.kill()
        child.close()
    known = {"ffi_poll": 0.0, "ffi_usleep": 0.0}
    n = {"ffi_poll": 0, "ffi_usleep": 0}
    for _, line in lines.lines:
        parts = (line or "").split()
        if len(parts) == 3 and parts[0] in known:
            known[parts[0]] += int(parts[2]) / 1e9
            n[parts[0]] += 1
    if n != {"ffi_poll": rounds, "ffi_usleep": rounds}:
        fail(f"calls made: {n}, want {rounds} each")
    log(f"  known (the script's own clock): {known}")
    at = marks(BLOCKING_FFI)
    for name, reason in (("ffi_poll", "blocked: poll"), ("ffi_usleep", "blocked: clock_nanosleep")):
        chain = [f"L:main@{BLOCKING_FFI}:0", f"L:{name}@{BLOCKING_FFI}:{at[name]}"]
        check_chain_time(stacks, chain, reason, known[name], name)
    check_tail(stacks, [f"L:main@{BLOCKING_FFI}:0"], prof, t_go, t_done, "luajit")
    summary = Summary(err)
    summary.check_against(stacks)
    check_process(summary, child.pid, sum(known.values()), duration * 1.05,
                  {"blocked: poll": known["ffi_poll"],
                   "blocked: clock_nanosleep": known["ffi_usleep"]}, "luajit")


def content_by_lua_line(conf_text):
    lines = [n for n, line in enumerate(conf_text.split("\n"), 1) if "content_by_lua_block" in line]
    if len(lines) != 1:
        fail(f"nginx.conf has content_by_lua_block on lines {lines}, want one")
    return lines[0]


def fifo_request(port, fifo, i):
    """GET /?fifo=FIFO: (time sent, time the whole response was read, seconds the handler's read
    of the FIFO took by its own clock)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sent = time.monotonic()
        sock.sendall(f"GET /?fifo={fifo} HTTP/1.0\r\nHost: lua-perf\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    done = time.monotonic()
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        fail(f"request {i}: {head[:200]!r}")
    m = re.fullmatch(rf"read line {i} in (\d+\.\d+) s", body.strip().decode(errors="replace"))
    if not m:
        fail(f"request {i}: body {body!r}, want 'read line {i} in SECONDS s'")
    return sent, done, float(m[1])


def case_nginx(args, tmp):
    if not os.access(nginx.NGINX, os.X_OK):
        fail(f"{nginx.NGINX} not found: the project's install script installs nginx-light")
    requests, gap, duration = 8, 0.25, 6
    port = nginx.free_port()
    conf = nginx.nginx_lua_conf(tmp, port, jit=False, workers=1, handler=FIFO_HANDLER)
    chunk = f"content_by_lua(nginx.conf:{content_by_lua_line(conf)})"
    handler = os.path.join(tmp, "lua", "handler.lua")
    fifo = make_fifo(tmp)
    master, workers = nginx.start_nginx(tmp, conf, port, workers=1)
    prof = writer = None
    try:
        prof = OffCpu(args, tmp, [master.pid], duration)
        prof.wait_profiling()
        time.sleep(0.2)
        turns = threading.Semaphore(1)
        writer = FifoWriter(fifo, requests, lambda i: turns.acquire(timeout=60))
        served = []
        for i in range(1, requests + 1):
            served.append(fifo_request(port, fifo, i))
            turns.release()  # the handler closed the FIFO before it answered
            time.sleep(gap)
        if served[-1][1] > run_end(prof) - 0.3:
            fail("the requests ended too close to the end of the run (machine too slow?)")
        err = prof.finish()
        stacks = prof.stacks()
        if writer.error:
            fail(f"FIFO writer: {writer.error}")
    finally:
        if prof:
            prof.kill()
        if writer:
            writer.release()
        nginx.stop_nginx(master)
    known_read = sum(s[2] for s in served)
    between = sum(served[i + 1][0] - served[i][1] for i in range(len(served) - 1))
    idle = between + run_end(prof) - 0.05 - served[-1][1]
    idle_high = between + prof.t_summary - served[-1][1]
    head = served[0][0] - prof.t_profiling
    log(f"  known: {requests} requests, read by the handler in {known_read:.3f} s ("
        + ", ".join(f"{s[2]:.3f}" for s in served) + f"), the writer held {writer.blocked():.3f}"
        f" s; worker idle {idle:.3f} to {idle_high:.3f} s between and after them (+ {head:.3f} s "
        "before the first, when it was already waiting)")
    at = marks(FIFO_HANDLER)
    chain = [f"L:main@{chunk}:0", f"L:_M.run@{handler}:{at['run']}",
             f"L:read_fifo@{handler}:{at['read_fifo']}"]
    ef = nginx.ElfFrames(nginx.NGINX)
    mine = check_chain_time(stacks, chain, "blocked: read", known_read, "read_fifo",
                            prefix=nginx.startup_prefix(ef))
    for s in mine:
        first = next(i for i, f in enumerate(s.user) if f.startswith("L:"))
        if list(s.user[first - 2:first]) != ["ngx_http_lua_run_thread", "lj_vm"]:
            fail(f"read_fifo: below the Lua frames {s.user[first - 2:first]}, want "
                 f"ngx_http_lua_run_thread;lj_vm\n    {s.text()}")
    waits = [s for s in stacks if s.reason == "blocked: epoll_wait"]
    lua = [s for s in waits if any(f.startswith("L:") for f in s.user)]
    if lua:
        fail("[blocked: epoll_wait] stacks with Lua frames:\n" + top(lua))
    not_worker = [s for s in waits if "ngx_process_events_and_timers" not in s.user]
    if not_worker:
        fail("[blocked: epoll_wait] stacks outside ngx_process_events_and_timers:\n"
             + top(not_worker))
    got = sum(s.us for s in waits) / 1e6
    log(f"  worker idle: {got:.3f} s in [blocked: epoll_wait]; known {idle:.3f} to "
        f"{idle_high:.3f} s (+ {head:.3f} s)")
    if not (1 - TOLERANCE) * idle <= got <= (1 + TOLERANCE) * (idle_high + head):
        fail(f"[blocked: epoll_wait] holds {got:.3f} s; the worker was idle {idle:.3f} to "
             f"{idle_high:.3f} s (+ {head:.3f} s before the first request) of the "
             f"{duration} s run")
    summary = Summary(err)
    summary.check_against(stacks)
    check_process(summary, workers[0], known_read + (1 - TOLERANCE) * idle, duration * 1.05,
                  {"blocked: read": known_read, "blocked: epoll_wait": idle}, "nginx worker")


def schedstat(pid, tid):
    """(ns on CPU, ns runnable waiting for a CPU) of a thread."""
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        on, wait, _ = f.read().split()
    return int(on), int(wait)


def case_preempt(args, tmp):
    if not args.fixture or not os.access(args.fixture, os.X_OK):
        fail(f"preempt_pair fixture not found: {args.fixture!r}")
    duration = 4
    child = Child([args.fixture])
    prof = None
    try:
        child.wait_for("ready")
        tids = {}
        for line in child.lines:
            m = re.fullmatch(r"thread (burn-[ab]) (\d+)", line)
            if m:
                tids[m[1]] = int(m[2])
        if set(tids) != {"burn-a", "burn-b"}:
            fail(f"fixture printed threads {tids}")
        prof = OffCpu(args, tmp, [child.pid], duration)
        t0 = prof.wait_profiling()
        before = {n: schedstat(child.pid, t) for n, t in tids.items()}
        time.sleep(max(0.0, t0 + duration - time.monotonic()))
        after = {n: schedstat(child.pid, t) for n, t in tids.items()}
        err = prof.finish()
        stacks = prof.stacks()
        if child.proc.poll() is not None:
            fail(f"fixture exited ({child.proc.returncode})")
    finally:
        if prof:
            prof.kill()
        child.close()
    figures = []
    delays = 0.0
    for name, fn in (("burn-a", "a"), ("burn-b", "b")):
        run_delay = (after[name][1] - before[name][1]) / 1e9
        delays += run_delay
        on_cpu = (after[name][0] - before[name][0]) / 1e9
        chain = THREAD_ROOT + [one(exact(f"run_{fn}")), one(exact(f"burn_{fn}"))]
        thread = [s for s in stacks if f"burn_{fn}" in s.user or f"run_{fn}" in s.user]
        mine = [s for s in thread if full_match(s.user, chain)]
        total = sum(s.us for s in thread) / 1e6
        exact_s = sum(s.us for s in mine) / 1e6
        preempted = sum(s.us for s in mine if s.reason == "preempted") / 1e6
        log(f"  {name}: on CPU {on_cpu:.3f} s, runnable waiting {run_delay:.3f} s (schedstat); "
            f"off-CPU stacks of its chain: {fmt_reasons(thread)}")
        if exact_s < 0.95 * total:
            fail(f"{name}: only {exact_s:.3f} of {total:.3f} s on exactly "
                 f"{spec_desc(chain)}\n" + top(thread))
        check_near(f"{name} [preempted]", preempted, run_delay)
        share = preempted / duration
        figures.append(f"{name} {100 * share:.1f}%")
        if 0.35 <= run_delay / duration <= 0.65 and not 0.35 <= share <= 0.65:
            fail(f"{name}: [preempted] {100 * share:.1f}% of the run, want 35%-65%")
        if not 0.35 <= run_delay / duration <= 0.65:
            log(f"  note: {name} waited {100 * run_delay / duration:.1f}% of the run by schedstat: "
                "CPU 0 had other load; the 35%-65% check is left out")
    log("  [preempted] share of the run: " + ", ".join(figures))
    summary = Summary(err)
    summary.check_against(stacks)
    check_process(summary, child.pid, (1 - TOLERANCE) * delays, 2 * duration * 1.05,
                  {"preempted": delays}, "preempt_pair")


NAPS_LUA = """\
local function nap() -- MARK nap
  local ok = os.execute("sleep 0.4")
  return ok
end
local t0 = os.clock()
while os.clock() - t0 < 0.5 do end -- lua-perf publishes lua5.4's unwind tables meanwhile
for _ = 1, 3 do nap() end
os.exit(3)
"""


def case_command(args, tmp):
    """lua-perf --off-cpu -- lua5.4 naps.lua: the command is profiled from its start, lua-perf
    exits with its status (3), and nap's 3 waits for `sleep 0.4` are there."""
    script = os.path.join(tmp, "naps.lua")
    with open(script, "w") as f:
        f.write(NAPS_LUA)
    fold = os.path.join(tmp, "off.fold")
    argv = [args.lua_perf, "--off-cpu", "-o", fold, "--", LUA, script]
    log("$ " + " ".join(argv))
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=START_TIMEOUT + 30,
                             start_new_session=True, preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired:
        fail("lua-perf -- lua5.4 naps.lua did not end")
    err = res.stderr.decode(errors="replace")
    for line in err.rstrip("\n").split("\n"):
        log("  | " + line)
    if res.returncode != 3:
        fail(f"lua-perf exited with {res.returncode}, want the command's 3")
    stacks = parse_off_cpu_fold(fold)
    log(top(stacks))
    at = marks(script)
    mine = chain_stacks(stacks, [f"L:main@{script}:0", f"L:nap@{script}:{at['nap']}"])
    got = sum(s.us for s in mine if s.reason == "blocked: wait4") / 1e6
    log(f"  nap: {got:.3f} s in [blocked: wait4]; 3 x sleep 0.4 = 1.2 s (+ starting sh and sleep)")
    if not 1.2 <= got <= 1.2 * (1 + TOLERANCE):
        fail(f"nap's waits for sleep 0.4: {got:.3f} s, want 1.2 to {1.2 * (1 + TOLERANCE):.2f} s\n"
             + top(stacks))
    Summary(err).check_against(stacks)


def expect_error(args, label, argv, words, status=1):
    """lua-perf exits with `status` and one stderr line that contains each of `words`."""
    log(f"--- {label}: $ {' '.join(argv)}")
    try:
        res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                             start_new_session=True)
    except subprocess.TimeoutExpired:
        return [f"{label}: lua-perf did not exit within 60 s"]
    err = res.stderr.decode(errors="replace")
    log(f"    exit {res.returncode}; stderr: {err!r}")
    problems = []
    if res.returncode != status:
        problems.append(f"exit status {res.returncode}, want {status}")
    lines = err.rstrip("\n").split("\n") if err.strip() else []
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, want 1")
    for w in words:
        if w.lower() not in err.lower():
            problems.append(f"stderr does not mention {w!r}")
    return [f"{label}: " + "; ".join(problems) + f"\n    stderr: {err!r}"] if problems else []


def free_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def case_errors(args, tmp):
    out = os.path.join(tmp, "off.fold")
    lp = [args.lua_perf]
    child = Child(["sleep", "600"])
    problems = []
    try:
        pid = str(child.pid)
        gone = str(free_pid())
        problems += expect_error(args, "no such PID", lp + ["--off-cpu", "-p", gone, "-d", "1",
                                                            "-o", out], [gone])
        for bad in ("-1", "abc", "1e3", "", str(2 ** 63)):
            problems += expect_error(args, f"--min-block-us {bad!r}",
                                     lp + ["--off-cpu", "--min-block-us", bad, "-p", pid, "-d", "1",
                                           "-o", out], ["--min-block-us"], USAGE)
        problems += expect_error(args, "--min-block-us without --off-cpu",
                                 lp + ["--min-block-us", "10", "-p", pid, "-d", "1", "-o", out],
                                 ["--min-block-us", "--off-cpu"], USAGE)
        problems += expect_error(args, "-f with --off-cpu",
                                 lp + ["--off-cpu", "-f", "99", "-p", pid, "-d", "1", "-o", out],
                                 ["-f", "--off-cpu"], USAGE)
        problems += expect_error(args, "dump --off-cpu",
                                 lp + ["dump", "--off-cpu", "-p", pid], ["--off-cpu", "dump"],
                                 USAGE)
    finally:
        child.close()
    if os.path.exists(out):
        problems.append(f"{out} was written by a run that failed")
    if problems:
        fail("\n".join(problems))


CASES = {"lua54": case_lua54, "min_block": case_min_block, "command": case_command,
         "luajit": case_luajit,
         "nginx": case_nginx, "preempt": case_preempt, "errors": case_errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", required=True, help="path of the lua-perf binary")
    ap.add_argument("--fixture", help="preempt_pair (preempt)")
    ap.add_argument("--luajit", help="Debian's luajit executable (luajit)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False  # pylib.profiling option; perf has no --off-cpu here
    status = profiling.cannot_profile(args)
    if status is not None:
        return status
    return profiling.run_case(CASES[args.case], args, f"lua-perf-off-cpu-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
