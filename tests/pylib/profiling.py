# SPDX-License-Identifier: MIT
"""Running things: a fixture or workload as a Child in its own session, lua-perf (or perf) as a
Profiler against some PIDs, and the run of one case in a temporary directory with the exit
status every driver uses (0 pass, 1 fail, 77 skipped)."""
import collections
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

from .folded import parse_fold
from .report import fail, log, SKIP, TestFailure


FREQ = 997
DURATION = 4
PROFILER_GRACE = 30     # seconds lua-perf may take beyond -d before it is considered hung


def die_with_parent():
    """preexec_fn: SIGKILL this child if the test process dies (e.g. killed on a ctest
    timeout), so nothing it started outlives it. Best effort (prctl via ctypes)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def on_termination_signal(signum, frame):
    # Turn SIGTERM/SIGHUP into an exception so that every finally: block cleans up.
    raise TestFailure(f"interrupted by signal {signum}")


def install_signal_handlers():
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_termination_signal)


def kill_group(proc):
    """SIGKILL the process group that proc leads (started with start_new_session), if proc
    still runs."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Child:
    """A process in its own session; killed (whole process group) by close()."""

    def __init__(self, argv, stdin=False, env=None):
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env,
            preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self.buf = b""
        self.lines = []
        self.info = {}

    def read_line(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.decode("utf-8", "replace")
        self.lines.append(line)
        return line

    def wait_for(self, token, timeout=10):
        """Read stdout lines until `token`; earlier `key value` lines go to self.info."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                err = ""
                if self.proc.poll() is not None:
                    err = f" (exited with {self.proc.returncode}; stderr: " \
                          f"{self.proc.stderr.read().decode(errors='replace').strip()!r})"
                fail(f"{os.path.basename(self.argv[0])}: no {token!r} line within {timeout} s"
                     f"{err}; stdout so far: {self.lines!r}")
            if line == token:
                return
            key, _, value = line.partition(" ")
            self.info[key] = value

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close(self):
        kill_group(self.proc)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


class Profiler:
    """lua-perf (or, with --use-perf, perf record/script) running against some PIDs."""

    def __init__(self, args, pids, duration, out, freq=FREQ, extra=(), prefix=()):
        self.args = args
        self.out = out
        self.duration = duration
        self.use_perf = args.use_perf
        if self.use_perf:
            self.data = out + ".perf.data"
            argv = ["perf", "record", "-q", "-F", str(freq), "--call-graph", "dwarf,32768",
                    "-o", self.data, "-p", ",".join(str(p) for p in pids), "--",
                    "sleep", str(duration)]
        else:
            argv = list(prefix) + [args.lua_perf]
            for p in pids:
                argv += ["-p", str(p)]
            argv += ["-f", str(freq), "-d", str(duration), "-o", out] + list(extra)
        self.argv = argv
        log("$ " + " ".join(argv))
        self.start_time = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, preexec_fn=die_with_parent)

    def perf_event_fds(self):
        """Number of perf_event file descriptors the profiler holds (0 if unknown)."""
        n = 0
        try:
            for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
                try:
                    if "perf_event" in os.readlink(f"/proc/{self.proc.pid}/fd/{fd}"):
                        n += 1
                except OSError:
                    pass
        except OSError:
            pass
        return n

    def wait_attached(self, timeout=15):
        """Wait until the profiler opened its perf events (a sign sampling started)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.perf_event_fds() > 0:
                return True
            time.sleep(0.05)
        return False

    def finish(self, timeout=None):
        """Wait for the end; returns (returncode, stdout, stderr). Fails on a hang."""
        if timeout is None:
            timeout = self.duration + PROFILER_GRACE
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = self.proc.communicate()
            fail(f"profiler still running {timeout} s after start (-d {self.duration}); killed. "
                 f"stderr: {err.decode(errors='replace')[-2000:]}")
        out = out.decode(errors="replace")
        err = err.decode(errors="replace")
        elapsed = time.monotonic() - self.start_time
        log(f"profiler exit code {self.proc.returncode} after {elapsed:.1f} s; stderr:")
        log_stderr(err)
        check_nothing_lost(err)
        rc = self.proc.returncode
        if self.use_perf and os.path.exists(self.data):
            # perf record -p ends with SIGTERM when its target exits first: not an error here.
            rc = 0 if rc == -signal.SIGTERM else rc
            perf_to_fold(self.data, self.out)
        return rc, out, err

    def kill(self):
        kill_group(self.proc)
        self.proc.wait()


# A followed process tree prints a line per process joining or leaving: after this many, the
# rest are counted, so that a failure's message stays in the tail CI shows.
PROCESS_LINES_SHOWN = 40
PROCESS_LINE = re.compile(r"^lua-perf: PID \d+( \(.*\) (joined, child of \d+|exited)"
                          r"|: .* in /|: no Lua runtime found: native frames only)$")


def log_stderr(err):
    """Log the profiler's stderr, indented, with process join/exit lines past the first
    PROCESS_LINES_SHOWN counted instead of shown."""
    process_lines = 0
    for line in err.rstrip("\n").split("\n"):
        if PROCESS_LINE.match(line):
            process_lines += 1
            if process_lines > PROCESS_LINES_SHOWN:
                continue
        log("  | " + line)
    if process_lines > PROCESS_LINES_SHOWN:
        log(f"  | ({process_lines - PROCESS_LINES_SHOWN} more process lines not shown)")


def perf_to_fold(data, out):
    """Convert `perf script` callchains into the folded format lua-perf promises (development
    aid for --use-perf). perf prints non-leaf frames as return address - 1."""
    res = subprocess.run(["perf", "script", "--no-inline", "--max-stack=1024",
                          "-F", "comm,tid,ip,sym,dso", "-i", data],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    counts = collections.Counter()
    cur = None
    for line in res.stdout.decode(errors="replace").split("\n") + [""]:
        if not line.strip():
            if cur:
                counts[";".join(reversed(cur))] += 1
            cur = None
            continue
        if line[0] not in " \t":
            cur = []
            continue
        m = re.match(r"\s*([0-9a-f]+) (.*) \((.*)\)$", line)
        if not m or cur is None:
            continue
        ip, sym, dso = m.groups()
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        sym = re.sub(r"@.*$", "", sym)
        if "kernel.kallsyms" in dso or dso.startswith("[kernel"):
            cur.append(sym + "_[k]")
        elif sym == "[unknown]":
            cur.append(f"{os.path.basename(dso)}+0x{int(ip, 16):x}")
        else:
            cur.append(sym)
    with open(out, "w") as f:
        for stack, c in counts.items():
            f.write(f"{stack} {c}\n")


# What lua-perf says when the kernel counted what the profile does not hold, or skipped its program
LOSS_WARNING = re.compile(r"^lua-perf: warning: the kernel (?:counted|skipped) .*$", re.M)


def check_nothing_lost(err):
    """Every run: what the BPF program counted reached the profile."""
    lost = LOSS_WARNING.findall(err)
    if lost:
        fail("lost between the kernel and the profile:\n  " + "\n  ".join(lost))


def check_exit(rc, err, args):
    if rc != 0:
        fail(f"profiler exit code {rc} (expected 0); stderr: {err[-2000:]!r}")
    if not args.use_perf and not re.search(r"sample", err, re.I):
        fail(f"profiler stderr has no summary mentioning samples: {err[-2000:]!r}")


def process_summary(err):
    """lua-perf's per-process summary on stderr: ({pid: (samples, comm)}, samples in the
    "+N more" line or 0). Fails when it is missing or malformed."""
    lines = err.split("\n")
    heads = [i for i, line in enumerate(lines) if line.startswith("lua-perf: samples per process")]
    if len(heads) != 1:
        fail(f"{len(heads)} per-process summaries on stderr (want 1): {err[-2000:]!r}")
    procs, rest = {}, 0
    for line in lines[heads[0] + 1:]:
        m = re.fullmatch(r"  +(\d+) +(\d+) +[0-9.]+%  (.*)", line)
        if m:
            if int(m[1]) in procs:
                fail(f"PID {m[1]} twice in the per-process summary")
            procs[int(m[1])] = (int(m[2]), m[3])
            continue
        m = re.fullmatch(r"  \+(\d+) more processes: (\d+) samples", line)
        if m:
            rest = int(m[2])
        break
    if not procs:
        fail(f"empty per-process summary: {err[-2000:]!r}")
    return procs, rest


def end_reasons(err):
    """{reason: samples} from lua-perf's --stats "how user stacks ended:" lines."""
    head = err.find("lua-perf: how user stacks ended:\n")
    if head < 0:
        fail(f"no 'how user stacks ended' in lua-perf's stderr (--stats): {err[-2000:]!r}")
    reasons = {}
    for line in err[head:].split("\n")[1:]:
        m = re.fullmatch(r"  (\S.*?) +(\d+) +[0-9.]+%", line)
        if not m:
            break
        reasons[m[1]] = int(m[2])
    return reasons


def joined_lines(err):
    """{pid: (comm, parent pid)} from lua-perf's "PID N (comm) joined, child of P" lines."""
    return {int(pid): (comm, int(ppid)) for pid, comm, ppid in
            re.findall(r"^lua-perf: PID (\d+) \((.*)\) joined, child of (\d+)$", err, re.M)}


def need_info(child, key):
    if key not in child.info:
        fail(f"fixture printed no '{key} ...' line before 'ready': {child.lines!r}")
    return child.info[key]


def profile_child(args, tmp, child, label, duration=DURATION, extra=(), during=None):
    """Wait for the child's 'ready', profile it with lua-perf (calling during(prof) while it
    samples), check lua-perf's exit and that the child is still running; always stop both.
    Returns (lua-perf's stderr, the parsed fold)."""
    out = os.path.join(tmp, "out.fold")
    prof = None
    try:
        child.wait_for("ready")
        prof = Profiler(args, [child.pid], duration, out, extra=extra)
        if during:
            during(prof)
        rc, _, err = prof.finish()
        check_exit(rc, err, args)
        if child.proc.poll() is not None:
            fail(f"{label} exited during profiling with {child.proc.returncode}")
    finally:
        if prof:
            prof.kill()
        child.close()
    return err, parse_fold(out)


def expect_error(args, label, argv, pattern, pid=None, timeout=20):
    log(f"--- {label}: $ {' '.join(argv)}")
    try:
        res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        fail(f"{label}: lua-perf did not exit within {timeout} s")
    err = res.stderr.decode(errors="replace")
    log(f"exit code {res.returncode}; stderr: {err!r}")
    problems = []
    if res.returncode == 0:
        problems.append("exit code 0 (expected != 0)")
    if res.returncode < 0:
        problems.append(f"killed by signal {-res.returncode} (expected a clean error exit)")
    lines = err.rstrip("\n").split("\n") if err.strip() else []
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr (expected exactly one)")
    if not re.search(pattern, err, re.I):
        problems.append(f"stderr does not match /{pattern}/i")
    if pid is not None and not re.search(rf"\b{pid}\b", err):
        problems.append(f"stderr does not name PID {pid}")
    if problems:
        return [f"{label}: " + "; ".join(problems) + f"\n    stderr: {err!r}"]
    return []


def cannot_profile(args):
    """None when profiling cases can run: as root, with an executable --lua-perf (unless
    --use-perf). Otherwise the driver's exit status, said why: SKIP (not root) or 1."""
    if os.geteuid() != 0:
        log("SKIP: profiling tests need root (BPF, perf events)")
        return SKIP
    if not args.use_perf and not (args.lua_perf and os.access(args.lua_perf, os.X_OK)):
        log(f"FAIL: lua-perf binary not found or not executable: {args.lua_perf!r}")
        return 1
    return None


def run_case(case, args, tmp_prefix):
    """Run case(args, tmp) in a fresh temporary directory: the exit status of every test driver
    (0 pass, 1 fail); the directory is removed unless --keep."""
    install_signal_handlers()
    tmp = tempfile.mkdtemp(prefix=tmp_prefix)
    os.chmod(tmp, 0o755)  # workloads may run as another user
    try:
        case(args, tmp)
    except TestFailure as e:
        log(f"FAIL: {e}")
        return 1
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"PASS: {args.case}")
    return 0
