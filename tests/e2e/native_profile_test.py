#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end native profiling tests: run a fixture (tests/fixtures/native/), profile it with lua-perf,
check the folded stacks it wrote.

    native_profile_test.py --lua-perf BIN CASE [--fixture F] [--plugin P] [--unstripped U]
    native_profile_test.py self-check --fixture-dir DIR --plugin P

CASE: deep, deep_stripped, qsort, signal, vdso, dlopen, threads, realign, errors, target_exit;
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
lua-perf holds perf_event fds, MIN_HOT 500) and target_exit (the target is ended by SIGTERM
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
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
FREQ = 997
DURATION = 4
MIN_HOT = 1000          # hot samples for a 4 s run at 997 Hz (~4000 possible per busy thread)
MIN_SHARE = 0.99        # share of hot samples that must have the exact chain / be complete
PROFILER_GRACE = 30     # seconds lua-perf may take beyond -d before it is considered hung


class TestFailure(Exception):
    pass


def log(msg=""):
    print(msg, flush=True)


def fail(msg):
    raise TestFailure(msg)


# --------------------------------------------------------------------------------------------
# Folded stacks


def parse_fold(path):
    """Strictly parse a folded-stacks file: returns a list of (frames tuple, count).

    Every line is `frame;frame;... COUNT`, root first, COUNT a positive integer, no empty frame,
    no stack listed twice, kernel frames (`..._[k]`) only as a run at the leaf end."""
    if not os.path.exists(path):
        fail(f"profiler wrote no output file {path}")
    stacks = []
    seen = {}
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8: {e}")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, line in enumerate(lines, 1):
        where = f"{path}:{n}: {line[:200]!r}"
        if line.strip() == "":
            fail(f"{where}: empty line")
        if line != line.rstrip() or line != line.lstrip():
            fail(f"{where}: leading/trailing whitespace")
        stack, sep, count = line.rpartition(" ")
        if not sep or not re.fullmatch(r"[1-9][0-9]*", count):
            fail(f"{where}: does not end in ' COUNT' with COUNT a positive integer")
        frames = tuple(stack.split(";"))
        for fr in frames:
            if fr == "" or fr.strip() != fr:
                fail(f"{where}: empty frame or frame with surrounding whitespace")
        in_kernel = False
        for fr in frames:
            if fr.endswith("_[k]"):
                in_kernel = True
            elif in_kernel:
                fail(f"{where}: user frame {fr!r} after a kernel frame (kernel frames belong at "
                     "the leaf end)")
        if frames in seen:
            fail(f"{where}: same stack as line {seen[frames]} (one line per unique stack)")
        seen[frames] = n
        stacks.append((frames, int(count)))
    return stacks


def user_part(frames):
    """Frames without the kernel frames at the leaf end."""
    i = len(frames)
    while i > 0 and frames[i - 1].endswith("_[k]"):
        i -= 1
    return frames[:i]


def compress(frames, limit=60):
    """recurse;recurse;recurse -> recurse*3, for readable messages."""
    out = []
    i = 0
    while i < len(frames):
        j = i
        while j < len(frames) and frames[j] == frames[i]:
            j += 1
        out.append(frames[i] + (f"*{j - i}" if j - i > 1 else ""))
        i = j
    if len(out) > limit:
        out = out[:limit // 2] + ["..."] + out[-limit // 2:]
    return ";".join(out)


def top_stacks(stacks, n=10, title="top stacks"):
    total = sum(c for _, c in stacks) or 1
    lines = [f"  {title} ({sum(c for _, c in stacks)} samples, {len(stacks)} distinct):"]
    for frames, c in sorted(stacks, key=lambda s: -s[1])[:n]:
        lines.append(f"  {c:7d} {100.0 * c / total:5.1f}%  {compress(frames)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Frame matchers and chain specifications

OFFSET_RE = re.compile(r"^(?P<file>.+)\+0x(?P<off>[0-9a-fA-F]+)$")


def split_offset(frame):
    """'libc.so.6+0x3c050' -> ('libc.so.6', 0x3c050); None for a named frame."""
    m = OFFSET_RE.match(frame)
    if not m:
        return None
    return m.group("file"), int(m.group("off"), 16)


def normalize_libc_name(name):
    """glibc's many names for one function: __GI___qsort_r, __qsort_r, qsort_r -> qsort_r;
    msort_with_tmp.part.0 -> msort_with_tmp; __libc_start_main_impl -> libc_start_main."""
    name = re.sub(r"@.*$", "", name)
    name = re.sub(r"^(__GI_)+", "", name)
    name = name.lstrip("_")
    name = re.sub(r"(\.(part|constprop|isra|cold|lto_priv)\.\d+)+$", "", name)
    name = re.sub(r"(_impl|_alias_\d+|_internal|_\d)$", "", name)
    return name


class M:
    """A frame matcher: test(frame) -> bool, with a description for messages."""

    def __init__(self, desc, test):
        self.desc = desc
        self.test = test

    def __repr__(self):
        return self.desc


def exact(name):
    return M(name, lambda fr: fr == name)


LIBC = "libc.so.6"


def libc_fn(names, offsets=None, allow_offset=True):
    """A libc function: named (any glibc alias of one of `names`) or, libc being stripped,
    `libc.so.6+0xOFF` — with OFF in `offsets` when those are known (each +/-: return
    addresses may be printed as is or minus one)."""
    names = set(names)
    offs = None
    if offsets is not None:
        offs = set()
        for o in offsets:
            offs.update((o, o - 1))

    def test(fr):
        so = split_offset(fr)
        if so is None:
            return normalize_libc_name(fr) in names
        if not allow_offset or so[0] != LIBC:
            return False
        return offs is None or so[1] in offs

    desc = "|".join(sorted(names))
    if allow_offset:
        desc += f"|{LIBC}+" + ("0x" + "/".join(f"{o:x}" for o in sorted(offsets))
                               if offsets else "0x*")
    return M(f"<{desc}>", test)


def elf_range(basename, lo, hi, names=(), desc=None):
    """A frame inside [lo, hi) of the ELF file `basename`, or one of `names`."""
    names = set(names)

    def test(fr):
        so = split_offset(fr)
        if so is None:
            return fr in names
        return so[0] == basename and lo <= so[1] <= hi  # hi included: a return address may
        #                                                 follow a final (noreturn) call

    return M(desc or f"<{basename}+0x{lo:x}..0x{hi:x}>", test)


def any_in_file(basename):
    return M(f"<{basename}+0x*>", lambda fr: (split_offset(fr) or ("",))[0] == basename)


def vdso_frame():
    """A vDSO frame: __vdso_* names, or any name mentioning vdso ([vdso]+0x..,
    linux-vdso.so.1+0x..). The vDSO's weak alias `clock_gettime` is not accepted: it would be
    indistinguishable from libc's clock_gettime just below it."""
    return M("<__vdso_*|*vdso*>",
             lambda fr: fr.startswith("__vdso_") or "vdso" in fr.lower())


# A chain spec is a list of (matcher, min_repeat, max_repeat).
def one(m):
    return (m, 1, 1)


def times(m, n):
    return (m, n, n)


def some(m, lo=1, hi=8):
    return (m, lo, hi)


def spec_desc(spec):
    out = []
    for m, lo, hi in spec:
        out.append(m.desc if (lo, hi) == (1, 1) else
                   f"{m.desc}*{lo}" if lo == hi else f"{m.desc}*{lo}..{hi}")
    return ";".join(out)


def full_match(frames, spec):
    """Does the whole frame sequence match the spec (with bounded repeats)? Backtracking."""
    memo = {}

    def go(i, j):
        key = (i, j)
        if key in memo:
            return memo[key]
        if j == len(spec):
            r = i == len(frames)
        else:
            m, lo, hi = spec[j]
            r = False
            k = 0
            while True:
                if k >= lo and go(i + k, j + 1):
                    r = True
                    break
                if k == hi or i + k >= len(frames) or not m.test(frames[i + k]):
                    break
                k += 1
        memo[key] = r
        return r

    return go(0, 0)


def suffix_match(frames, spec):
    """Do the frames end with exactly the spec (the spec's first item anchors where)?"""
    first = spec[0][0]
    for i in range(len(frames)):
        if first.test(frames[i]) and full_match(frames[i:], spec):
            return True
    return False


def first_mismatch(frames, spec):
    """Human-readable hint: where a stack stops following prefix+chain (greedy, approximate)."""
    i = 0
    for m, lo, hi in spec:
        k = 0
        while k < hi and i < len(frames) and m.test(frames[i]):
            i += 1
            k += 1
        if k < lo:
            got = frames[i] if i < len(frames) else "<end of stack>"
            return f"frame #{i} is {got!r}, expected {m.desc} (repeat {lo}..{hi}, got {k})"
    if i < len(frames):
        return f"extra frames from #{i}: {compress(frames[i:], 10)}"
    return "matches"


# --------------------------------------------------------------------------------------------
# ELF reading (for stripped binaries: symbols of the unstripped twin, entry point, FDE starts)


class Elf:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = data = f.read()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        (self.e_type, _, _, self.entry, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
         shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        self.phdrs = []
        for i in range(phnum):
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = struct.unpack_from(
                "<IIQQQQQQ", data, phoff + i * phentsize)
            self.phdrs.append((p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
        self.sections = {}
        shdrs = []
        if shoff and shnum:
            shdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                     for i in range(shnum)]
            names_off = shdrs[shstrndx][4]
            for sh in shdrs:
                self.sections[self._cstr(names_off + sh[0])] = sh
        self.symbols = []  # (addr, size, name), functions only
        for secname in (".symtab", ".dynsym"):
            sh = self.sections.get(secname)
            if not sh:
                continue
            _, _, _, _, off, size, link, _, _, entsize = sh
            stroff = shdrs[link][4]
            for k in range(size // entsize):
                st_name, st_info, _, st_shndx, st_value, st_size = struct.unpack_from(
                    "<IBBHQQ", data, off + k * entsize)
                if st_shndx == 0 or (st_info & 0xF) not in (2, 10) or st_value == 0:
                    continue
                self.symbols.append((st_value, st_size, self._cstr(stroff + st_name)))
        self.symbols.sort()
        self.fde_starts = self._fde_starts()

    def _cstr(self, off):
        end = self.data.index(b"\0", off)
        return self.data[off:end].decode("utf-8", "replace")

    def has_section(self, name):
        return name in self.sections

    def vaddr_to_off(self, vaddr):
        for p_type, _, p_offset, p_vaddr, p_filesz, _ in self.phdrs:
            if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:
                return vaddr - p_vaddr + p_offset
        return None

    def text_offset_is_vaddr(self):
        """True when every executable PT_LOAD has p_offset == p_vaddr, so an offset printed
        by the profiler means the same thing whether it is a file offset or an ELF address."""
        return all(p[2] == p[3] for p in self.phdrs if p[0] == 1 and p[1] & 1)

    def lookup(self, addr):
        """Name of the function symbol containing addr (sized symbols only)."""
        best = None
        for a, size, name in self.symbols:
            if a > addr:
                break
            if addr < a + size:
                best = name
        return best

    def _decode(self, pos, enc, section_vaddr, section_off):
        fmt = enc & 0x0F
        size, code = {0x03: (4, "<I"), 0x0B: (4, "<i"), 0x04: (8, "<Q"), 0x0C: (8, "<q"),
                      0x02: (2, "<H"), 0x0A: (2, "<h")}[fmt]
        (v,) = struct.unpack_from(code, self.data, pos)
        app = enc & 0x70
        if app == 0x10:    # pcrel
            v += section_vaddr + (pos - section_off)
        elif app == 0x30:  # datarel: relative to .eh_frame_hdr
            v += section_vaddr
        elif app != 0:
            raise ValueError(f"unsupported pointer encoding 0x{enc:x}")
        return v & 0xFFFFFFFFFFFFFFFF, pos + size

    def _fde_starts(self):
        """Sorted start addresses of all FDEs, from .eh_frame_hdr's binary search table."""
        hdr = [p for p in self.phdrs if p[0] == 0x6474E550]  # PT_GNU_EH_FRAME
        if not hdr:
            return []
        _, _, off, vaddr, _, _ = hdr[0]
        version, ptr_enc, count_enc, table_enc = self.data[off:off + 4]
        if version != 1:
            return []
        pos = off + 4
        _, pos = self._decode(pos, ptr_enc, vaddr, off)
        count, pos = self._decode(pos, count_enc, vaddr, off)
        starts = []
        for _ in range(count):
            loc, pos = self._decode(pos, table_enc, vaddr, off)
            _, pos = self._decode(pos, table_enc, vaddr, off)
            starts.append(loc)
        return sorted(starts)

    def function_bounds(self, addr):
        """[start, next FDE start) of the FDE-covered function containing addr (approximate
        end: the next function's start)."""
        lo = None
        for s in self.fde_starts:
            if s <= addr:
                lo = s
            else:
                return lo, s
        return lo, None

    def main_from_start(self):
        """Address of main in a PIE/non-PIE executable whose _start is glibc's: the first
        `lea disp32(%rip), %rdi` (or `mov $imm32, %rdi`) in _start loads it."""
        off = self.vaddr_to_off(self.entry)
        code = self.data[off:off + 64]
        for i in range(len(code) - 7):
            if code[i:i + 3] == b"\x48\x8d\x3d":
                (disp,) = struct.unpack_from("<i", code, i + 3)
                return self.entry + i + 7 + disp
            if code[i:i + 3] == b"\x48\xc7\xc7":
                (imm,) = struct.unpack_from("<i", code, i + 3)
                return imm
        return None


# --------------------------------------------------------------------------------------------
# Processes


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
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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
        for line in err.rstrip("\n").split("\n"):
            log("  | " + line)
        rc = self.proc.returncode
        if self.use_perf and os.path.exists(self.data):
            # perf record -p ends with SIGTERM when its target exits first: not an error here.
            rc = 0 if rc == -signal.SIGTERM else rc
            perf_to_fold(self.data, self.out)
        return rc, out, err

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


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


# --------------------------------------------------------------------------------------------
# Checks


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


def joined_lines(err):
    """{pid: (comm, parent pid)} from lua-perf's "PID N (comm) joined, child of P" lines."""
    return {int(pid): (comm, int(ppid)) for pid, comm, ppid in
            re.findall(r"^lua-perf: PID (\d+) \((.*)\) joined, child of (\d+)$", err, re.M)}


def check_chains(stacks, hot, prefix, chain, min_hot, label, translate=None):
    """Assertions (a) and (b) over the hot samples: see the module docstring."""
    if translate:
        stacks = [(translate(f), c) for f, c in stacks]
    total = sum(c for _, c in stacks)
    hot_stacks = [(user_part(f), c) for f, c in stacks
                  if user_part(f) and hot.test(user_part(f)[-1])]
    n_hot = sum(c for _, c in hot_stacks)
    log(f"{label}: {total} samples, {n_hot} with leaf {hot.desc}")
    if n_hot < min_hot:
        fail(f"{label}: only {n_hot} samples whose leaf is {hot.desc} (want >= {min_hot})\n"
             + top_stacks(stacks))
    chain_ok = sum(c for f, c in hot_stacks if suffix_match(f, chain))
    root_ok = sum(c for f, c in hot_stacks if prefix[0][0].test(f[0]))
    exact_ok = sum(c for f, c in hot_stacks if full_match(f, prefix + chain))
    log(f"  chain {spec_desc(chain)}: {chain_ok}/{n_hot} = {chain_ok / n_hot:.2%}")
    log(f"  root {prefix[0][0].desc}: {root_ok}/{n_hot} = {root_ok / n_hot:.2%}")
    log(f"  whole stack {spec_desc(prefix)};<chain>: {exact_ok}/{n_hot} = {exact_ok / n_hot:.2%}")
    problems = []
    if chain_ok < MIN_SHARE * n_hot:
        problems.append(f"(a) only {chain_ok / n_hot:.2%} of hot samples have exactly the "
                        f"chain {spec_desc(chain)}")
    if root_ok < MIN_SHARE * n_hot:
        problems.append(f"(b) only {root_ok / n_hot:.2%} of hot samples are complete (root "
                        f"frame {prefix[0][0].desc})")
    if exact_ok < MIN_SHARE * n_hot:
        problems.append(f"(b) only {exact_ok / n_hot:.2%} of hot samples are exactly "
                        f"{spec_desc(prefix)};<chain>")
    if problems:
        bad = [(f, c) for f, c in hot_stacks if not full_match(f, prefix + chain)]
        hints = [f"  {c:7d}  {first_mismatch(f, prefix + chain)}\n           {compress(f)}"
                 for f, c in sorted(bad, key=lambda s: -s[1])[:8]]
        fail(f"{label}: " + "; ".join(problems) + "\n" + top_stacks(hot_stacks, title="hot stacks")
             + "\n  most common deviations:\n" + "\n".join(hints))
    return hot_stacks


MAIN_PREFIX = [
    one(exact("_start")),
    one(libc_fn({"libc_start_main"}, allow_offset=False)),
    one(libc_fn({"libc_start_call_main"})),
]


def need_info(child, key):
    if key not in child.info:
        fail(f"fixture printed no '{key} ...' line before 'ready': {child.lines!r}")
    return child.info[key]


def parse_file_offset(text, what):
    so = split_offset(text)
    if so is None:
        fail(f"cannot parse {what} {text!r} (want FILE+0xOFFSET)")
    return so


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
    base = os.path.basename(args.fixture)
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


def case_dlopen(args, tmp):
    child = Child([args.fixture, args.plugin], stdin=True)
    prof = None
    try:
        child.wait_for("ready")
        with open("/proc/%d/maps" % child.pid) as f:
            if os.path.basename(args.plugin) in f.read():
                fail("plugin already mapped before the test asked for the dlopen")
        prof = Profiler(args, [child.pid], DURATION + 1, os.path.join(tmp, "out.fold"))
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
    stacks = parse_fold(os.path.join(tmp, "out.fold"))
    chain = [one(exact("main")), one(exact("plugin_entry")), one(exact("plugin_hot"))]
    check_chains(stacks, exact("plugin_hot"), MAIN_PREFIX, chain, MIN_HOT // 2, "fixture_dlopen")


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
    "deep_stripped": lambda a, t: case_deep(a, t, stripped=True),
    "qsort": case_qsort,
    "signal": case_signal,
    "vdso": case_vdso,
    "threads": case_threads,
    "kernel_frames": case_kernel_frames,
    "realign": case_realign,
    "dlopen": case_dlopen,
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


if __name__ == "__main__":
    sys.exit(main())
