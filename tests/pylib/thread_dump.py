# SPDX-License-Identifier: MIT
"""`lua-perf dump` output: parsing it, and checking a thread's stack against an expected chain."""
import re
import subprocess
import time

from . import profiling
from .chains import (
    first_mismatch, full_match, LIBC, libc_fn, M, normalize_libc_name, one, spec_desc)
from .folded import split_offset
from .report import fail, log

DUMP_TIMEOUT = 120   # seconds: BPF verification of two programs on a busy 2-core machine


PROCESS_RE = re.compile(r"process (\d+) \((.*)\)(?:, child of (\d+))?: "
                        r"(?:(\d+) threads?|exited before its threads were dumped)")


THREAD_RE = re.compile(r"  (\d+) (\d+) (.*): (running|runnable \(waiting for a CPU\)|sleeping|"
                       r"waiting uninterruptibly|stopped|traced|no stack)(?: in (\S+))?")


FRAME_RE = re.compile(r"    #(\d+) +(\S.*)")
END_RE = re.compile(r"    \((stack ends here|no frames|no stack taken): (.*)\)")


class Thread:
    def __init__(self, pid, tid, comm, state, syscall):
        self.pid, self.tid, self.comm, self.state, self.syscall = pid, tid, comm, state, syscall
        self.frames = []      # leaf first
        self.end = None       # why the stack is incomplete, or None

    def user_frames(self):
        return [f for f in self.frames if not f.endswith("_[k]")]

    def kernel_frames(self):
        return [f for f in self.frames if f.endswith("_[k]")]

    def describe(self):
        return (f"{self.pid} {self.tid} {self.comm}: {self.state}"
                f"{' in ' + self.syscall if self.syscall else ''}\n      "
                + "\n      ".join(self.frames) + (f"\n      ({self.end})" if self.end else ""))


def parse_dump(text):
    """{pid: {"comm", "ppid", "threads": {tid: Thread}}}; fails on any unexpected line."""
    procs, proc, thread, declared = {}, None, None, {}
    for n, line in enumerate(text.split("\n"), 1):
        where = f"dump line {n}: {line!r}"
        if line == "":
            thread = None
            continue
        m = PROCESS_RE.fullmatch(line)
        if m:
            pid = int(m[1])
            if pid in procs:
                fail(f"{where}: process {pid} twice")
            proc = procs[pid] = {"comm": m[2], "ppid": int(m[3]) if m[3] else None,
                                 "threads": {}}
            declared[pid] = int(m[4]) if m[4] else 0
            continue
        m = THREAD_RE.fullmatch(line)
        if m:
            pid, tid = int(m[1]), int(m[2])
            if proc is None or pid not in procs or procs[pid] is not proc:
                fail(f"{where}: thread outside its process block")
            if tid in proc["threads"]:
                fail(f"{where}: thread {tid} twice")
            thread = proc["threads"][tid] = Thread(pid, tid, m[3], m[4], m[5])
            continue
        m = FRAME_RE.fullmatch(line)
        if m:
            if thread is None or thread.end is not None or int(m[1]) != len(thread.frames):
                fail(f"{where}: frame out of place or misnumbered")
            thread.frames.append(m[2])
            continue
        m = END_RE.fullmatch(line)
        if m and thread is not None and thread.end is None:
            thread.end = f"{m[1]}: {m[2]}"
            continue
        fail(f"{where}: not a line of the dump format")
    for pid, proc in procs.items():
        if len(proc["threads"]) != declared[pid]:
            fail(f"process {pid}: {declared[pid]} threads announced, {len(proc['threads'])} shown")
    return procs


def check_stack(thread, chain, leaf=(), label=""):
    """The user frames, root first, are exactly `chain` (matchers, root first) followed by frames
    matching `leaf` (matchers, any number) — the libc side of a blocking call; complete."""
    label = label or f"thread {thread.tid} ({thread.comm})"
    if thread.end:
        fail(f"{label}: incomplete stack ({thread.end})\n    {thread.describe()}")
    frames = list(reversed(thread.user_frames()))
    if len(frames) < len(chain) or not full_match(frames[:len(chain)], chain):
        fail(f"{label}: user frames (root first) {frames} do not start with "
             f"{spec_desc(chain)}: {first_mismatch(frames, chain)}")
    rest = frames[len(chain):]
    bad = [f for f in rest if not any(m.test(f) for m in leaf)]
    if bad:
        fail(f"{label}: frames {bad} above {chain[-1][0].desc} (want only {list(leaf)})")


def libc_any():
    """A frame of libc (glibc's blocking call wrappers: named with libc6-dbg, or offsets)."""
    return M("<libc>", lambda fr: not fr.endswith("_[k]") and (
        (split_offset(fr) or ("",))[0] == LIBC or re.fullmatch(r"[_A-Za-z][\w.@]*", fr)
        and normalize_is_libc(fr)))


LIBC_BLOCKING = {"clock_nanosleep", "nanosleep", "read", "libc_read", "futex_abstimed_wait_common",
                 "futex_abstimed_wait_cancelable64", "pthread_clockjoin_ex", "pthread_join",
                 "epoll_wait", "sigsuspend", "rt_sigsuspend", "futex_wait", "lll_lock_wait"}


def normalize_is_libc(frame):
    return normalize_libc_name(frame) in LIBC_BLOCKING


THREAD_ROOT = [one(libc_fn({"clone3"})), one(libc_fn({"start_thread"}))]


def fixture_threads(child):
    """{name: tid} from the fixture's "thread NAME TID" lines."""
    tids = {}
    for line in child.lines:
        m = re.fullmatch(r"thread (\S+) (\d+)", line)
        if m:
            tids[m[1]] = int(m[2])
    if set(tids) != {"main", "spin-a", "spin-b", "nap", "reader"}:
        fail(f"fixture printed threads {tids}")
    return tids


# --------------------------------------------------------------------------------------------
# Running it


def run_dump(args, pids, extra=(), on_line=None, started=None, env=None):
    """lua-perf dump -p ... : (parsed dump, stderr). Fails on a non-zero exit or a hang.
    on_line: (pattern, action): action() runs once a line of its stderr matches pattern;
    started(pid) is told lua-perf's PID; env: lua-perf's environment (default: ours)."""
    argv = [args.lua_perf, "dump"] + [a for p in pids for a in ("-p", str(p))] + list(extra)
    log("$ " + " ".join(argv))
    start_time = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=env)
    if started:
        started(proc.pid)
    head = wait_for_line(proc, on_line) if on_line else b""
    try:
        out, err = proc.communicate(timeout=DUMP_TIMEOUT)
    except subprocess.TimeoutExpired:
        profiling.kill_group(proc)
        fail(f"lua-perf dump did not end within {DUMP_TIMEOUT} s")
    res = subprocess.CompletedProcess(argv, proc.returncode, out, head + err)
    out, err = res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")
    log(f"exit code {res.returncode} after {time.monotonic() - start_time:.1f} s; stdout:")
    for line in out.rstrip("\n").split("\n"):
        log("  > " + line)
    log("stderr:")
    for line in err.rstrip("\n").split("\n"):
        log("  | " + line)
    if res.returncode != 0:
        fail(f"lua-perf dump exited with {res.returncode}")
    m = re.search(r"^lua-perf: dumped (\d+) threads of (\d+) process", err, re.M)
    if not m:
        fail("no 'dumped N threads' summary on stderr")
    return parse_dump(out), err


def wait_for_line(proc, on_line):
    """Read proc's stderr up to a line matching on_line's pattern, then run its action; what
    was read."""
    pattern, action = on_line
    head = b""
    deadline = time.monotonic() + DUMP_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        head += line
        if not line or re.search(pattern, line.decode(errors="replace")):
            break
    if not re.search(pattern, head.decode(errors="replace"), re.M):
        profiling.kill_group(proc)
        fail(f"lua-perf dump never printed a line matching {pattern!r}: {head[-2000:]!r}")
    action()
    return head
