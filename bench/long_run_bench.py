#!/usr/bin/env python3
"""A long run on a process tree with churn; the figures go into docs/benchmarks.md.

usage: bench/long_run_bench.py BUILD_DIR [--seconds S] [--reference REF_BUILD_DIR]   (as root)

A shell loop runs luacheck (Debian's lua-check, Lua 5.1) over /usr/share/lua again and again: a
new process tree every second or so, running a large Lua code base. lua-perf -p <shell> -f 1000
--stats -d S (default 600) profiles it; with --reference, the lua-perf of another build profiles
the same tree at the same time (each with its own BPF programs and maps), so both see the same
processes. For each: samples taken by BPF, lost (sample map full), without stack (stack map
full), in the folded output, distinct folded stacks, lua-perf's CPU (to start, while sampling)
and its resident memory every minute and at its peak.
"""
import argparse
import os
import re
import signal
import subprocess
import tempfile
import time

LUA_TREE = "/usr/share/lua"
RSS_EVERY_S = 60


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    except OSError:
        return None
    return int(m[1]) / 1024 if m else None


def cpu_seconds(pid):
    """utime + stime of pid so far (clock ticks of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def folded_total(path):
    total = lines = 0
    with open(path) as f:
        for line in f:
            total += int(line.rsplit(" ", 1)[1])
            lines += 1
    return total, lines


def parse_summary(err):
    def num(pattern, group=1, cast=int):
        m = re.search(pattern, err, re.M)
        return cast(m[group]) if m else None
    return {
        "samples": num(r"^lua-perf: (\d+) samples in"),
        "lost": num(r"(\d+) lost \(sample map full\)"),
        "without stack": num(r"(\d+) without stack \(stack map full\)"),
        "taken by BPF": num(r"^  samples taken by BPF +(\d+)$"),
        "processes": num(r"^lua-perf: (\d+) processes followed"),
        "distinct": num(r"^lua-perf: (\d+) distinct folded stacks"),
        "drains": num(r"kernel maps drained (\d+) times"),
        "peak RSS MiB": num(r"peak RSS ([0-9.]+) MiB", cast=float),
    }


def start_profiler(build, label, shell_pid, seconds, tmp):
    out = os.path.join(tmp, f"{label}.fold")
    argv = [os.path.join(build, "lua-perf"), "-p", str(shell_pid), "-f", "1000", "-d",
            str(seconds), "--stats", "-q", "-o", out]
    print("$ " + " ".join(argv), flush=True)
    err = open(os.path.join(tmp, f"{label}.err"), "w+")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    return {"label": label, "proc": proc, "out": out, "err": err, "rss": [], "cpu_start": None}


def watch(profilers, seconds):
    """Every RSS_EVERY_S, each profiler's RSS and CPU seconds; and its CPU 5 s in, once
    sampling has begun."""
    started = time.monotonic()
    next_tick = RSS_EVERY_S
    while any(p["proc"].poll() is None for p in profilers):
        time.sleep(1)
        elapsed = time.monotonic() - started
        for p in profilers:
            if p["cpu_start"] is None and elapsed >= 5:
                p["cpu_start"] = (elapsed, cpu_seconds(p["proc"].pid))
            if elapsed >= next_tick and p["proc"].poll() is None:
                p["rss"].append((round(elapsed), rss_mib(p["proc"].pid),
                                 cpu_seconds(p["proc"].pid)))
        if elapsed >= next_tick:
            next_tick += RSS_EVERY_S
        if elapsed > seconds + 300:
            raise SystemExit("a profiler did not stop 300 s after -d")


def sampling_cpu_share(p):
    """CPU seconds per second between 5 s in and the last minute tick (/proc/PID/stat)."""
    ticks = [(t, cpu) for t, _, cpu in p["rss"] if cpu is not None]
    if not p["cpu_start"] or p["cpu_start"][1] is None or not ticks:
        return None
    (t0, c0), (t1, c1) = p["cpu_start"], ticks[-1]
    return (c1 - c0) / (t1 - t0) if t1 > t0 else None


def report(p):
    p["err"].seek(0)
    err = p["err"].read()
    s = parse_summary(err)
    total, lines = folded_total(p["out"]) if os.path.exists(p["out"]) else (None, None)
    print(f"\n== {p['label']}: exit {p['proc'].returncode}")
    for k, v in s.items():
        print(f"  {k:16} {v}")
    print(f"  {'folded total':16} {total} in {lines} lines")
    if s["taken by BPF"]:
        dropped = (s["lost"] or 0) + (s["without stack"] or 0)
        print(f"  {'dropped':16} {dropped} ({100 * dropped / s['taken by BPF']:.1f}% of taken)")
    print("  RSS MiB by minute: " + ", ".join(f"{t}s {r:.0f}" for t, r, _ in p["rss"] if r))
    share = sampling_cpu_share(p)
    if share is not None:
        print(f"  CPU while sampling (/proc, 5 s in to the last minute): {100 * share:.1f}% "
              "of one CPU")
    cost = re.search(r"used ([0-9.]+) s of CPU to start, ([0-9.]+) s while sampling", err)
    if cost:
        print(f"  CPU (its summary): {cost[1]} s to start, {cost[2]} s while sampling")
    loss_lines = [line for line in err.split("\n") if "warning" in line]
    print(f"  warnings: {loss_lines[:5]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--reference", help="another build whose lua-perf profiles the same tree")
    args = ap.parse_args()
    loop = f"while :; do luacheck --no-cache {LUA_TREE} >/dev/null 2>&1; done"
    shell = subprocess.Popen(["sh", "-c", loop], start_new_session=True)
    try:
        with tempfile.TemporaryDirectory(prefix="lua-perf-long-bench-") as tmp:
            profilers = [start_profiler(args.build, "this", shell.pid, args.seconds, tmp)]
            if args.reference:
                profilers.append(start_profiler(args.reference, "reference", shell.pid,
                                                args.seconds, tmp))
            watch(profilers, args.seconds)
            for p in profilers:
                report(p)
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


if __name__ == "__main__":
    main()
