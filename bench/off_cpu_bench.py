#!/usr/bin/env python3
"""What `lua-perf --off-cpu` costs the processes it follows; the tables go into docs/benchmarks.md.

usage: bench/off_cpu_bench.py BUILD_DIR [--rounds N] [--seconds S] [--cpu C] [--skip-nginx]   (as root)

Two workloads, each run in interleaved rounds (every round runs every mode once, so that machine
noise hits each mode alike), modes:
  none      no profiler
  off-cpu   lua-perf --off-cpu -p PID (follows every context switch of the target's threads)
  off-cpu --no-kernel   the same without kernel stacks (bpf_get_stack is most of the cost)
  on-cpu    lua-perf -p PID at its default 1000 Hz, for reference

pipe ping-pong (BUILD_DIR/bench_pipe_pingpong, bench/pipe_pingpong.c): two threads pass one byte
  back and forth through two pipes for S seconds: every round trip is two blocking reads, so the
  threads switch off and on CPU 2 times per round trip, ~300k times a second; the worst case
  for off-CPU profiling, whose BPF program unwinds the user stack at every switch-out. Both
  threads are pinned to CPU C (default: the last one; -1: not pinned): each switch then goes
  straight from one thread to the other. Unpinned, on a 2-CPU VM, every round trip waits for
  cross-CPU wake-ups and the rate swings 7-fold with the machine's other load (measured: 19k to
  153k round trips/s), pinned it stays within a few %. The workload starts once lua-perf says it
  is profiling. Reported: round trips per second (median,
  min..max of the rounds), the threads' context switches per second (getrusage), and the cost
  per switch: (1/rate_with - 1/rate_without) / (switches per round trip without), with each
  profiled run paired with the unprofiled run of its round (median, min..max over rounds); the
  BPF program's own time (kernel.bpf_stats_enabled: run_time_ns / run_cnt of on_switch, which
  runs at every switch of the machine; and its whole time per switch of the target threads).
nginx + ngx_lua (tests/fixtures/nginx_lua/handler.lua, 1 worker, JIT on) under `wrk -t1 -c8` for S
  seconds per mode and round, lua-perf on the master: requests per second and the slowdown
  against none (medians), and for off-cpu the blocks lua-perf followed per second.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # pylib
sys.path.insert(0, HERE)
import pylib.nginx as ngx  # noqa: E402
from bench import bpf_stats, bpf_stats_enabled  # noqa: E402

MODES = ("none", "off-cpu", "off-cpu --no-kernel", "on-cpu")
START_TIMEOUT = 60


class LuaPerf:
    """lua-perf -p PID (--off-cpu for that mode), started and waited for until it profiles."""

    def __init__(self, build, mode, pid, tmp):
        argv = [os.path.join(build, "lua-perf"), "-p", str(pid), "-o",
                os.path.join(tmp, f"{mode.replace(' ', '_')}.fold")]
        argv[1:1] = mode.split()[1:] + (["--off-cpu"] if mode.startswith("off-cpu") else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("lua-perf: profiling"):
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not ready.wait(START_TIMEOUT) or self.proc.poll() is not None:
            self.proc.kill()
            sys.exit(f"lua-perf did not start profiling: {self.lines[-5:]}")

    def stop(self, signal_it=True):
        """SIGINT (unless it stops by itself: its target exited); its stderr."""
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        if self.proc.returncode != 0:
            sys.exit(f"lua-perf exited with {self.proc.returncode}: {self.lines[-5:]}")
        return "\n".join(self.lines)


def blocks_followed(err):
    m = re.search(r"s off CPU in ([0-9.]+) s, (\d+) blocks followed", err)
    return int(m[2]) / float(m[1]) if m and float(m[1]) > 0 else None


def pingpong_once(build, mode, seconds, cpu, tmp):
    """{rate, switch_rate, bpf: (ns, runs) or None} for one run in one mode."""
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu >= 0 else None
    work = subprocess.Popen([os.path.join(build, "bench_pipe_pingpong"), "--wait", str(seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=pin)
    prof = LuaPerf(build, mode, work.pid, tmp) if mode != "none" else None
    time.sleep(0.5)  # lua-perf's first drain and symbol loading are over
    off_cpu = mode.startswith("off-cpu")
    before = bpf_stats("on_switch") if off_cpu else None
    out, _ = work.communicate("go\n", timeout=seconds + 60)
    after = bpf_stats("on_switch") if off_cpu else None
    err = prof.stop(signal_it=False) if prof else ""
    if work.returncode != 0:
        sys.exit(f"bench_pipe_pingpong exited with {work.returncode}")
    trips = re.search(r"^round_trips (\d+) seconds [0-9.]+ rate ([0-9.]+)$", out, re.M)
    m = re.search(r"^switches (\d+) rate ([0-9.]+)$", out, re.M)
    bpf = None
    if before and after and after[1] > before[1]:
        bpf = (after[0] - before[0], after[1] - before[1])
    return {"rate": float(trips[2]), "trips": int(trips[1]), "switches": int(m[1]),
            "switch_rate": float(m[2]), "bpf": bpf,
            "blocks": blocks_followed(err)}


def spread(values, fmt="{:.0f}"):
    return (f"{fmt.format(statistics.median(values))} "
            f"({fmt.format(min(values))}..{fmt.format(max(values))})")


def bench_pingpong(build, rounds, seconds, cpu, tmp):
    runs = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in MODES:
            runs[mode].append(pingpong_once(build, mode, seconds, cpu, tmp))
        print(f"  round {r + 1}: " + ", ".join(f"{m} {runs[m][-1]['rate']:.0f}/s" for m in MODES),
              file=sys.stderr, flush=True)
    where = f"both threads on CPU {cpu}" if cpu >= 0 else "threads not pinned"
    print(f"\npipe ping-pong ({where}), {rounds} interleaved rounds of {seconds} s")
    print("| mode | round trips/s: median (min..max) | switches/s of the 2 threads | "
          "cost per switch, ns: median (min..max) | BPF on_switch: ns per run (all switches), "
          "ns per target switch |")
    print("|---|---|---|---|---|")
    base = runs["none"]
    for mode in MODES:
        rates = [x["rate"] for x in runs[mode]]
        sw = [x["switch_rate"] for x in runs[mode]]
        cost = bpf_col = ""
        if mode != "none":
            per_switch = [(1.0 / x["rate"] - 1.0 / b["rate"]) / (b["switches"] / b["trips"]) * 1e9
                          for x, b in zip(runs[mode], base)]
            cost = spread(per_switch)
        if mode.startswith("off-cpu"):
            bpf = [x["bpf"] for x in runs[mode] if x["bpf"]]
            if bpf:
                per_run = [ns / n for ns, n in bpf]
                per_target = [ns / x["switches"] for x, (ns, _) in
                              zip([x for x in runs[mode] if x["bpf"]], bpf)]
                bpf_col = f"{spread(per_run)}, {spread(per_target)}"
        print(f"| {mode} | {spread(rates)} | {spread(sw)} | {cost} | {bpf_col} |", flush=True)
    return runs


def wrk_rps(port, seconds):
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out)[1])


def bench_nginx(build, rounds, seconds, tmp):
    rps = {m: [] for m in MODES}
    blocks = []
    port = ngx.free_port()
    master, _ = ngx.start_nginx(tmp, ngx.nginx_lua_conf(tmp, port, jit=True, workers=1), port,
                                workers=1)
    try:
        wrk_rps(port, 2)  # warm up: the JIT compiles the handler
        for r in range(rounds):
            for mode in MODES:
                prof = LuaPerf(build, mode, master.pid, tmp) if mode != "none" else None
                time.sleep(0.5)
                rps[mode].append(wrk_rps(port, seconds))
                if prof:
                    err = prof.stop()
                    if mode == "off-cpu" and blocks_followed(err):
                        blocks.append(blocks_followed(err))
            print(f"  round {r + 1}: " + ", ".join(f"{m} {rps[m][-1]:.0f}/s" for m in MODES),
                  file=sys.stderr, flush=True)
    finally:
        ngx.stop_nginx(master)
    base = statistics.median(rps["none"])
    print(f"\nnginx + ngx_lua (handler.lua, JIT on, 1 worker) under wrk -t1 -c8, {rounds} "
          f"interleaved rounds of {seconds} s")
    print("| mode | requests/s: median (min..max) | slowdown (medians) | blocks followed/s |")
    print("|---|---|---|---|")
    for mode in MODES:
        med = statistics.median(rps[mode])
        slow = "" if mode == "none" else f"{100.0 * (1 - med / base):+.1f}%"
        b = spread(blocks) if mode == "off-cpu" and blocks else ""
        print(f"| {mode} | {spread(rps[mode])} | {slow} | {b} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=os.cpu_count() - 1,
                    help="CPU both ping-pong threads are pinned to (-1: not pinned)")
    ap.add_argument("--skip-nginx", action="store_true")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    for exe in ("lua-perf", "bench_pipe_pingpong"):
        if not os.access(os.path.join(build, exe), os.X_OK):
            sys.exit(f"{build}/{exe} not found: build the project first")
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs")
    with bpf_stats_enabled(), tempfile.TemporaryDirectory(prefix="lua-perf-off-cpu-bench-") as tmp:
        os.chmod(tmp, 0o755)  # nginx workers run as nobody
        bench_pingpong(build, args.rounds, args.seconds, args.cpu, tmp)
        if not args.skip_nginx:
            bench_nginx(build, args.rounds, args.seconds, tmp)


if __name__ == "__main__":
    main()
