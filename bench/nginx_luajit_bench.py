#!/usr/bin/env python3
"""nginx + ngx_lua (LuaJIT) under wrk: what profiling costs, and how complete the stacks are.

usage: bench/nginx_luajit_bench.py BUILD_DIR [--rounds N] [--seconds S]   (as root)

nginx (1 worker, the handler of tests/fixtures/nginx_lua/handler.lua, JIT on) is loaded by `wrk -t1 -c8`
for S seconds per round; rounds interleave four modes so that machine noise hits each alike:
  none       no profiler
  lua-perf   lua-perf -p <master> at 1000 Hz
  perf       perf record -F 1000 -e cpu-clock, no call graph (the bare cost of the timer interrupt)
  perf-dwarf perf record -F 1000 -e cpu-clock --call-graph dwarf
Reported: requests/s (median) and the slowdown of each mode against none; lua-perf's BPF time
per sample (kernel.bpf_stats_enabled); stack completeness of the worker's samples: lua-perf's
share of complete stacks and of samples with Lua frames (--stats), and perf dwarf's share of
samples whose call chain reaches main (perf script).
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # pylib
sys.path.insert(0, HERE)
import pylib.nginx as ngx  # noqa: E402
from bench import bpf_stats, bpf_stats_enabled  # noqa: E402

MODES = ("none", "lua-perf", "perf", "perf-dwarf")


def start_profiler(build, mode, master, worker, tmp):
    if mode == "lua-perf":
        return subprocess.Popen([os.path.join(build, "lua-perf"), "-p", str(master), "-q",
                                 "--stats", "-o", os.path.join(tmp, "bench.fold")],
                                stderr=subprocess.PIPE, text=True)
    if mode in ("perf", "perf-dwarf"):
        argv = ["perf", "record", "-q", "-F", "1000", "-e", "cpu-clock", "-p", str(worker),
                "-o", os.path.join(tmp, f"{mode}.data")]
        if mode == "perf-dwarf":
            argv[3:3] = ["--call-graph", "dwarf"]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return None


def stop_profiler(proc):
    if proc is None:
        return ""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


def wrk_rps(port, seconds):
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    return float(m.group(1))


def lua_perf_completeness(stderr):
    complete = re.search(r"complete stacks: ([0-9.]+)%", stderr)
    return float(complete.group(1)) if complete else None


def lua_share(fold):
    total = lua = 0
    with open(fold) as f:
        for line in f:
            stack, _, count = line.rpartition(" ")
            total += int(count)
            if ";L:" in stack:
                lua += int(count)
    return 100.0 * lua / total if total else None


def perf_dwarf_completeness(data):
    """Share of samples whose call chain reaches main (perf script, innermost first)."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], capture_output=True,
                         text=True).stdout
    total = complete = 0
    for block in out.split("\n\n"):
        lines = [l for l in block.strip().split("\n") if l.strip()]
        if not lines:
            continue
        total += 1
        if any(re.search(r"\s(main|__libc_start_main\S*)$", l.strip()) for l in lines):
            complete += 1
    return 100.0 * complete / total if total else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    rps = {m: [] for m in MODES}
    ns, lp_complete, lp_lua, dwarf_complete = [], [], [], []
    master = None
    try:
        with bpf_stats_enabled(), tempfile.TemporaryDirectory() as tmp:
            os.chmod(tmp, 0o755)
            port = ngx.free_port()
            master, workers = ngx.start_nginx(tmp, ngx.nginx_lua_conf(tmp, port, jit=True, workers=1),
                                              port, workers=1)
            wrk_rps(port, 2)  # warm up: the JIT compiles the handler
            for _ in range(args.rounds):
                for mode in MODES:
                    prof = start_profiler(build, mode, master.pid, workers[0], tmp)
                    time.sleep(2.0)  # the profiler's start-up (BPF load, tables) is over
                    before = bpf_stats() if mode == "lua-perf" else None
                    rps[mode].append(wrk_rps(port, args.seconds))
                    after = bpf_stats() if mode == "lua-perf" else None
                    err = stop_profiler(prof)
                    if before and after and after[1] > before[1]:
                        ns.append((after[0] - before[0]) / (after[1] - before[1]))
                    if mode == "lua-perf":
                        lp_complete.append(lua_perf_completeness(err))
                        lp_lua.append(lua_share(os.path.join(tmp, "bench.fold")))
                    if mode == "perf-dwarf":
                        dwarf_complete.append(perf_dwarf_completeness(os.path.join(tmp, "perf-dwarf.data")))
            ngx.stop_nginx(master)
            master = None
    finally:
        if master:
            ngx.stop_nginx(master)
    base = statistics.median(rps["none"])
    spread = 100.0 * (max(rps["none"]) - min(rps["none"])) / base
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, {args.rounds} rounds of {args.seconds} s")
    print("| mode | requests/s (median) | slowdown | stacks complete | samples with Lua frames |")
    print("|---|---|---|---|---|")
    print(f"| none | {base:.0f} (spread ±{spread / 2:.1f}%) | | | |")
    for mode in MODES[1:]:
        med = statistics.median(rps[mode])
        complete = lua = ""
        if mode == "lua-perf":
            complete = f"{statistics.median([c for c in lp_complete if c is not None]):.1f}%"
            lua = f"{statistics.median([c for c in lp_lua if c is not None]):.1f}%"
        if mode == "perf-dwarf":
            complete = f"{statistics.median([c for c in dwarf_complete if c is not None]):.1f}% (reach main)"
        print(f"| {mode} | {med:.0f} | {100.0 * (1 - med / base):+.1f}% | {complete} | {lua} |")
    if ns:
        print(f"\nlua-perf BPF time per sample: {statistics.median(ns):.0f} ns (median of rounds)")


if __name__ == "__main__":
    main()
