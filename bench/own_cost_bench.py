#!/usr/bin/env python3
"""lua-perf's own cost (issue 16), this build against a reference build, in one run.

usage: bench/own_cost_bench.py BUILD_DIR --reference REF_BUILD_DIR [--rounds N]   (as root)

Each measure runs both builds in interleaved rounds (machine noise hits both alike) and reports
medians with the spread (half the min-max range, in % of the median). Every run uses one table
cache (LUA_PERF_TABLE_CACHE, a directory of the run), filled by an untimed start-up and dump of
each build first: the figures are those of any run after a machine's first (dump_bench.py shows
cold and warm side by side; a build without the cache ignores the variable):
  start-up      lua-perf -p <lua5.4 running examples/app.lua>: from exec to its "profiling"
                line (the perf events are on: the first sample follows within a period), not
                verbose
  steady        the same target profiled for STEADY_SECONDS: lua-perf's own CPU (user + system,
                /proc/PID/stat) and its wake-ups (voluntary context switches, /proc/PID/status)
                per second between STEADY_SKIP and STEADY_SECONDS - 2 s, so one-time work
                (the first drain's kernel symbols) is left out; then, in one more run per
                build, the system calls it makes in that window by kind (strace -c -f,
                attached for the window only)
  dump          `lua-perf dump -p <nginx master>`, nginx + ngx_lua (LuaJIT, one worker asleep in
                an FFI call): wall time
  stop          nginx + ngx_lua (2 workers) under wrk, lua-perf -p <master> at 1000 Hz writing
                -o .fold -o .svg -o .pb.gz: from SIGINT after STOP_RUN_SECONDS to exit (files
                written)
  slowdown      bench.py's four fixed-work programs under no profiler, both lua-perf builds,
                `perf record -F 1000 -e cpu-clock` (no call graph) and this build profiling an
                idle process meanwhile (its perf events and own process without the unwinds):
                wall slowdown and the BPF program's time per run (all CPUs' samples)
  nginx LuaJIT  bench/nginx_luajit_bench.py (this build): requests/s under each profiler and the
                BPF time per sample on LuaJIT code
"""
import argparse
import os
import re
import signal
import socket
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
from bench import IDLE_TARGET, bench_program, bpf_stats_enabled  # noqa: E402
from dump_bench import NAP_HANDLER, one_dump  # noqa: E402

APP = os.path.join(HERE, "..", "examples", "app.lua")
STEADY_SECONDS = 30
STEADY_SKIP = 5
STOP_RUN_SECONDS = 30
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def spread(values):
    mid = statistics.median(values)
    return mid, (50.0 * (max(values) - min(values)) / mid) if mid else 0.0


def fmt(values, unit, digits=2):
    mid, sp = spread(values)
    return f"{mid:.{digits}f} {unit} (±{sp:.0f}%)"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def wakeups(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def lua_perf_on(build, target, seconds, tmp, extra=()):
    return subprocess.Popen([os.path.join(build, "lua-perf"), "-p", str(target), "-d", str(seconds),
                             "-q", "-o", os.path.join(tmp, "own.fold"), *extra],
                            stderr=subprocess.PIPE, text=True)


def startup_once(build, target, tmp):
    """Seconds from exec to the "profiling" line, without -v (whose libbpf lines slow it)."""
    started = time.monotonic()
    prof = subprocess.Popen([os.path.join(build, "lua-perf"), "-p", str(target), "-d", "0.2",
                             "-o", os.path.join(tmp, "startup.fold")],
                            stderr=subprocess.PIPE, text=True)
    ready = None
    for line in prof.stderr:
        if ready is None and "lua-perf: profiling " in line:
            ready = time.monotonic() - started
    prof.wait()
    if ready is None:
        sys.exit(f"lua-perf {build} never said it was profiling")
    return ready


def steady_once(build, target, tmp):
    """(own CPU in % of one CPU, wake-ups per second) in the steady window."""
    prof = lua_perf_on(build, target, STEADY_SECONDS, tmp)
    time.sleep(STEADY_SKIP)
    cpu0, wake0, t0 = cpu_seconds(prof.pid), wakeups(prof.pid), time.monotonic()
    time.sleep(STEADY_SECONDS - STEADY_SKIP - 2)
    cpu1, wake1, t1 = cpu_seconds(prof.pid), wakeups(prof.pid), time.monotonic()
    prof.wait(timeout=60)
    return 100.0 * (cpu1 - cpu0) / (t1 - t0), (wake1 - wake0) / (t1 - t0)


def syscalls_once(build, target, tmp):
    """System calls per second by name in the steady window (strace -c attached to it)."""
    prof = lua_perf_on(build, target, STEADY_SECONDS, tmp)
    time.sleep(STEADY_SKIP)
    window = STEADY_SECONDS - STEADY_SKIP - 2
    out = os.path.join(tmp, "strace.txt")
    strace = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(prof.pid)],
                              stderr=subprocess.DEVNULL)
    time.sleep(window)
    strace.send_signal(signal.SIGINT)
    strace.wait(timeout=30)
    prof.wait(timeout=60)
    calls = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if m and m[2] != "total":
                calls[m[2]] = int(m[1]) / window
    return calls


def bench_lua_target(builds, rounds, tmp):
    work = subprocess.Popen(["lua5.4", APP], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        start = {m: [] for m in builds}
        cpu = {m: [] for m in builds}
        wake = {m: [] for m in builds}
        for build in builds.values():
            startup_once(build, work.pid, tmp)  # fills the table cache
        for _ in range(rounds):
            for mode, build in builds.items():
                start[mode].append(startup_once(build, work.pid, tmp))
                c, w = steady_once(build, work.pid, tmp)
                cpu[mode].append(c)
                wake[mode].append(w)
        calls = {mode: syscalls_once(build, work.pid, tmp) for mode, build in builds.items()}
    finally:
        work.kill()
        work.wait()
    return start, cpu, wake, calls


def bench_dump(builds, rounds, tmp):
    port = ngx.free_port()
    master, _ = ngx.start_nginx(tmp, ngx.nginx_lua_conf(tmp, port, jit=True, handler=NAP_HANDLER),
                                port)
    walls = {m: [] for m in builds}
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /nap HTTP/1.1\r\nHost: bench\r\n\r\n")
        time.sleep(3)  # the nap loop compiled
        cache = os.environ["LUA_PERF_TABLE_CACHE"]
        for build in builds.values():
            one_dump(build, master.pid, cache)  # fills the table cache
        for _ in range(rounds):
            for mode, build in builds.items():
                walls[mode].append(one_dump(build, master.pid, cache)["wall"])
        sock.close()
    finally:
        ngx.stop_nginx(master)
    return walls


def stop_once(build, master, port, tmp):
    outs = ["-o", os.path.join(tmp, "stop.fold"), "-o", os.path.join(tmp, "stop.svg"),
            "-o", os.path.join(tmp, "stop.pb.gz")]
    prof = subprocess.Popen([os.path.join(build, "lua-perf"), "-p", str(master), "-f", "1000", "-q",
                             *outs], stderr=subprocess.PIPE, text=True)
    wrk = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{STOP_RUN_SECONDS + 2}s",
                            f"http://127.0.0.1:{port}/"], stdout=subprocess.DEVNULL)
    time.sleep(STOP_RUN_SECONDS)
    stopped = time.monotonic()
    prof.send_signal(signal.SIGINT)
    _, err = prof.communicate(timeout=60)
    took = time.monotonic() - stopped
    wrk.wait()
    if prof.returncode != 0:
        sys.exit(f"lua-perf exited with {prof.returncode}: {err[-2000:]}")
    return took


def bench_stop(builds, rounds, tmp):
    port = ngx.free_port()
    master, _ = ngx.start_nginx(tmp, ngx.nginx_lua_conf(tmp, port, jit=True), port)
    took = {m: [] for m in builds}
    try:
        for _ in range(rounds):
            for mode, build in builds.items():
                took[mode].append(stop_once(build, master.pid, port, tmp))
    finally:
        ngx.stop_nginx(master)
    return took


def print_row(name, per_mode, unit, digits=2):
    print(f"| {name} | {fmt(per_mode['this'], unit, digits)} | "
          f"{fmt(per_mode['reference'], unit, digits)} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--reference", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slowdown-rounds", type=int, default=7)
    ap.add_argument("--work", type=int, default=1_500_000_000)
    ap.add_argument("--lua-work", type=int, default=300_000_000)
    args = ap.parse_args()
    builds = {"this": os.path.abspath(args.build), "reference": os.path.abspath(args.reference)}
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, {args.rounds} rounds")
    with bpf_stats_enabled(), tempfile.TemporaryDirectory(prefix="lua-perf-own-cost-") as tmp:
        os.chmod(tmp, 0o755)  # nginx workers run as nobody
        os.environ["LUA_PERF_TABLE_CACHE"] = os.path.join(tmp, "table-cache")
        start, cpu, wake, calls = bench_lua_target(builds, args.rounds, tmp)
        print("| lua5.4 examples/app.lua, 1000 Hz | this build | reference |")
        print("|---|---|---|")
        print_row("start to sampling", start, "s")
        print_row(f"own CPU, steady ({STEADY_SKIP}-{STEADY_SECONDS - 2} s)", cpu, "%")
        print_row("wake-ups per second", wake, "/s", 1)
        for mode in builds:
            top = sorted(calls[mode].items(), key=lambda kv: -kv[1])[:6]
            print(f"| system calls per second, {mode} | "
                  + ", ".join(f"{name} {n:.1f}" for name, n in top) + " | |")
        print_row("dump of nginx + ngx_lua", bench_dump(builds, args.rounds, tmp), "s")
        print_row(f"stop to files written, {STOP_RUN_SECONDS} s of nginx + ngx_lua under wrk",
                  bench_stop(builds, args.rounds, tmp), "s", 3)
        print()
        bench_slowdown(builds, args, tmp)
    print()
    subprocess.run([sys.executable, os.path.join(HERE, "nginx_luajit_bench.py"), builds["this"],
                    "--rounds", str(args.rounds)], check=True)


def bench_slowdown(builds, args, tmp):
    """bench.py's programs: this build as "lua-perf", the reference as "reference"."""
    runs = {"lua-perf": builds["this"], "reference": builds["reference"]}
    script = os.path.join(HERE, "lua_depth_workload.lua")
    depth = os.path.join(builds["this"], "bench_stack_depth")
    programs = [("C, ~40 native", [depth, "36", str(args.work)]),
                ("C, ~120 native", [depth, "116", str(args.work)]),
                ("lua5.4, 40 (16 native + 24 Lua)", ["lua5.4", script, "23", str(args.lua_work)]),
                ("lua5.4, 115 (16 native + 99 Lua)", ["lua5.4", script, "98", str(args.lua_work)])]
    print(f"{args.slowdown_rounds} interleaved rounds (none, this, perf, reference, this with an "
          "idle target)")
    print("| program | no profiler (spread) | slowdown: this / reference / perf -F 1000 | "
          "this - perf, points: median (min..max of rounds) | idle target - perf, points | "
          "BPF ns/sample: this / reference / idle target |")
    print("|---|---|---|---|---|---|")
    for name, argv in programs:
        r = bench_program(runs, argv, args.slowdown_rounds, tmp, idle_target=True)
        this, ref, perf = (r["lua-perf_slowdown_pct"], r["reference_slowdown_pct"],
                           r["perf_slowdown_pct"])
        print(f"| {name} | {r['base_s']:.2f} s (±{r['wall_spread_pct'] / 2:.1f}%) | "
              f"{this:+.1f}% / {ref:+.1f}% / {perf:+.1f}% | {points(r['minus_perf_points'])} | "
              f"{points(r['idle_minus_perf_points'])} | "
              f"{r['lua-perf_ns']:.0f} (±{r['lua-perf_ns_spread_pct']:.0f}%) / "
              f"{r['reference_ns']:.0f} (±{r['reference_ns_spread_pct']:.0f}%) / "
              f"{r[IDLE_TARGET + '_ns']:.0f} |", flush=True)


def points(diffs):
    return f"{statistics.median(diffs):+.1f} ({min(diffs):+.1f}..{max(diffs):+.1f})"

if __name__ == "__main__":
    main()
