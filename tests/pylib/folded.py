# SPDX-License-Identifier: MIT
"""Folded stacks as lua-perf writes them (`frame;frame;... COUNT`): strict parsing, and
showing stacks in messages."""
import os
import re

from .report import fail

# The leaf frame of every `lua-perf --off-cpu` stack: why the thread was off CPU. Groups: the
# reason without brackets, and its system call (a name, or "system call N") if any.
OFF_CPU_REASON = re.compile(
    r"\[(?P<reason>preempted|blocked(?: uninterruptible)?(?:: (?P<syscall>[a-z0-9_]+|system call \d+))?)\]")


def off_cpu_reason(frames):
    """The off-CPU reason frame ending frames, or None."""
    return frames[-1] if frames and OFF_CPU_REASON.fullmatch(frames[-1]) else None


def parse_fold(path):
    """Strictly parse a folded-stacks file: returns a list of (frames tuple, count).

    Every line is `frame;frame;... COUNT`, root first, COUNT a positive integer, no empty frame,
    no stack listed twice, kernel frames (`..._[k]`) only as a run at the leaf end (but for an
    off-CPU stack's reason frame, the very leaf)."""
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
        for fr in frames[:-1] if off_cpu_reason(frames) else frames:
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
    """Frames without the kernel frames at the leaf end (and an off-CPU reason frame)."""
    i = len(frames) - (1 if off_cpu_reason(frames) else 0)
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


OFFSET_RE = re.compile(r"^(?P<file>.+)\+0x(?P<off>[0-9a-fA-F]+)$")


def split_offset(frame):
    """'libc.so.6+0x3c050' -> ('libc.so.6', 0x3c050); None for a named frame."""
    m = OFFSET_RE.match(frame)
    if not m:
        return None
    return m.group("file"), int(m.group("off"), 16)
