#!/usr/bin/env python3
"""Cost of lua-perf; the figures go into docs/benchmarks.md.

usage: bench/bench.py BUILD_DIR [--rounds N] [--reference REF_BUILD_DIR]   (as root)

Measures, at 1000 Hz, for fixed-work programs:
  * native: bench_stack_depth at ~40 and ~120 native frames;
  * Lua: /usr/bin/lua5.4 running lua_depth_workload.lua at ~40 frames (Lua + native) and deeper;
each under no profiler, lua-perf, and `perf record -F 1000` with no call graph (the bare cost of
the timer interrupt), in interleaved rounds, median of each:
  * the slowdown of the program (wall time) under lua-perf and under perf;
  * BPF time per sample (kernel.bpf_stats_enabled: run_time_ns / run_cnt of on_sample);
and the unwind table build time and memory for stock nginx and all its libraries.
With --reference, the lua-perf of another build (e.g. the previous version) runs in the same
interleaved rounds, and its BPF time per sample is reported next to this build's, with the ratio.
"""
import argparse
import contextlib
import ctypes
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import tempfile
import time


BPF_STATS_ENABLED = "/proc/sys/kernel/bpf_stats_enabled"


@contextlib.contextmanager
def bpf_stats_enabled():
    """kernel.bpf_stats_enabled on (BPF programs' run_time_ns and run_cnt counted) for the block;
    its previous value restored after."""
    with open(BPF_STATS_ENABLED) as f:
        before = f.read().strip()
    with open(BPF_STATS_ENABLED, "w") as f:
        f.write("1\n")
    try:
        yield
    finally:
        with open(BPF_STATS_ENABLED, "w") as f:
            f.write(before + "\n")


def bpf_stats(prog_name="on_sample"):
    """(run_time_ns, run_cnt) of the newest loaded BPF program of that name, or None."""
    prog = newest_program(prog_name)
    return (prog["run_time_ns"], prog["run_cnt"]) if prog and "run_cnt" in prog else None


def newest_program(prog_name):
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True)
    progs = [p for p in json.loads(out.stdout) if p.get("name") == prog_name]
    return max(progs, key=lambda p: p["id"]) if progs else None


SYS_BPF = 321  # x86_64 (arch/x86/entry/syscalls/syscall_64.tbl)
BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 13, 15  # enum bpf_cmd, include/uapi/linux/bpf.h
# struct bpf_prog_info: run_time_ns and run_cnt are the u64s at offset 192 (offsetof, Linux 5.1+)
PROG_INFO_SIZE, RUN_STATS_OFFSET = 232, 192
_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd, attr):
    rc = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(cmd), ctypes.byref(attr),
                       ctypes.c_uint(ctypes.sizeof(attr)))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return rc


class HeldProgram:
    """A file descriptor of a loaded BPF program: its statistics stay readable after the
    profiler that loaded it exits, so they are read once at the end instead of polled."""

    def __init__(self, prog_id):
        self.fd = _bpf(BPF_PROG_GET_FD_BY_ID, (ctypes.c_uint32 * 4)(prog_id, 0, 0, 0))

    def stats(self):
        """(run_time_ns, run_cnt)"""
        info = ctypes.create_string_buffer(PROG_INFO_SIZE)
        attr = (ctypes.c_uint64 * 2)(self.fd | PROG_INFO_SIZE << 32, ctypes.addressof(info))
        _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
        return struct.unpack_from("<QQ", info.raw, RUN_STATS_OFFSET)

    def close(self):
        os.close(self.fd)


def hold_new_program(prog_name, newer_than, deadline):
    """The first program of that name with an id above newer_than (loaded by the profiler just
    started), held; polls bpftool until deadline (time.monotonic())."""
    while time.monotonic() < deadline:
        prog = newest_program(prog_name)
        if prog and prog["id"] > newer_than:
            return HeldProgram(prog["id"])
        time.sleep(0.05)
    raise SystemExit(f"no new BPF program {prog_name} within the workload's start delay: "
                     "raise START_DELAY")


# Workloads idle this long before working, so that the profilers' start-up (BPF verification,
# table build: up to a second of CPU on the other core) is over when the timed work begins.
START_DELAY = 1.5


# lua-perf profiling another process, asleep, while the workload runs: what the workload pays for
# lua-perf's per-CPU perf events, the BPF program's exit on a sample of another process and
# lua-perf's own process, without an unwind of its stacks.
IDLE_TARGET = "lua-perf, idle target"


def start_profiler(builds, mode, pid, tmp):
    if mode in builds:
        return subprocess.Popen([os.path.join(builds[mode], "lua-perf"), "-p", str(pid), "-q",
                                 "-o", os.path.join(tmp, "bench.fold")], stderr=subprocess.DEVNULL)
    if mode == "perf":
        return subprocess.Popen(["perf", "record", "-q", "-F", "1000", "-e", "cpu-clock", "-p",
                                 str(pid), "-o", os.path.join(tmp, "perf.data")],
                                stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return None


def run_workload(builds, argv, mode, tmp):
    """Returns (wall seconds of the work, user CPU seconds, BPF ns per sample or None). builds maps
    the lua-perf modes ("lua-perf", "reference") to their build directories. The work is timed
    from the line "working" the workload prints when it starts to its exit, with nothing polled
    meanwhile: the BPF program's statistics are read once, from a file descriptor held on it."""
    lua_perf = mode in builds or mode == IDLE_TARGET
    newest = newest_program("on_sample") if lua_perf else None
    work = subprocess.Popen(argv + [str(START_DELAY)], stdout=subprocess.PIPE, text=True)
    started = time.monotonic()
    sleeper = subprocess.Popen(["sleep", "600"]) if mode == IDLE_TARGET else None
    if sleeper:
        profiler = start_profiler(builds, "lua-perf", sleeper.pid, tmp)
    else:
        profiler = start_profiler(builds, mode, work.pid, tmp)
    held = None
    if lua_perf:
        held = hold_new_program("on_sample", newest["id"] if newest else 0, started + START_DELAY)
    if work.stdout.readline().strip() != "working":
        raise SystemExit(f"{argv[0]} did not print \"working\"")
    began = time.monotonic()
    _, status, usage = os.wait4(work.pid, 0)
    seconds = time.monotonic() - began
    work.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} exited with {os.waitstatus_to_exitcode(status)}")
    if sleeper:
        sleeper.kill()
        sleeper.wait()
    if profiler:
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.send_signal(signal.SIGINT)
            profiler.wait()
    per_sample = None
    if held:
        run_time_ns, run_cnt = held.stats()
        held.close()
        per_sample = run_time_ns / run_cnt if run_cnt else None
    return seconds, usage.ru_utime, per_sample


def median_and_spread(values):
    """(median, half the min-max range in % of the median), or (None, None)."""
    if not values:
        return None, None
    mid = statistics.median(values)
    return mid, 50.0 * (max(values) - min(values)) / mid


def bench_program(builds, argv, bench_rounds, tmp, idle_target=False):
    """Medians over interleaved rounds; with idle_target, also lua-perf profiling an idle process
    while the workload runs (IDLE_TARGET)."""
    modes = (("none", "lua-perf", "perf") + (("reference",) if "reference" in builds else ())
             + ((IDLE_TARGET,) if idle_target else ()))
    wall = {m: [] for m in modes}
    user = {m: [] for m in modes}
    ns = {m: [] for m in modes if m in builds or m == IDLE_TARGET}
    for _ in range(bench_rounds):
        for mode in modes:  # interleaved, so that machine noise hits every mode alike
            seconds, user_seconds, per_sample = run_workload(builds, argv, mode, tmp)
            wall[mode].append(seconds)
            user[mode].append(user_seconds)
            if per_sample:
                ns[mode].append(per_sample)
    base = statistics.median(wall["none"])
    base_user = statistics.median(user["none"])
    row = {"base_s": base, "wall_spread_pct": 100.0 * (max(wall["none"]) - min(wall["none"])) / base}
    for mode in ns:
        row[mode + "_ns"], row[mode + "_ns_spread_pct"] = median_and_spread(ns[mode])
    for mode in modes[1:]:
        row[mode + "_slowdown_pct"] = 100.0 * (statistics.median(wall[mode]) / base - 1.0)
        row[mode + "_user_pct"] = 100.0 * (statistics.median(user[mode]) / base_user - 1.0)
    # lua-perf's wall time minus perf's, round by round (paired: each round's noise hits both)
    row["minus_perf_points"] = [100.0 * (a - b) / base for a, b in zip(wall["lua-perf"], wall["perf"])]
    if idle_target:
        row["idle_minus_perf_points"] = [100.0 * (a - b) / base
                                         for a, b in zip(wall[IDLE_TARGET], wall["perf"])]
    return row


NGINX_CONF = """worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/t; proxy_temp_path {d}/t; fastcgi_temp_path {d}/t;
  uwsgi_temp_path {d}/t; scgi_temp_path {d}/t;
  server {{ listen 127.0.0.1:{port}; root {d}; }}
}}
"""


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def bench_nginx_tables(build, tmp):
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "t"), exist_ok=True)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(d=d, port=18931))
    subprocess.run(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d], check=True)
    try:
        time.sleep(0.5)
        master = int(open(os.path.join(d, "nginx.pid")).read())
        workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
        args = [os.path.join(build, "lua-perf"), "-d", "2", "-o", os.path.join(tmp, "nginx.fold")]
        for pid in [str(master)] + workers:
            args += ["-p", pid]
        # Drop the page cache first: the build time of a first run on a server is the honest one.
        subprocess.run(["sync"])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        prof = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        rss = None
        while prof.poll() is None:
            rss = peak_rss_kib(prof.pid) or rss
            time.sleep(0.1)
        err = prof.stderr.read()
    finally:
        subprocess.run(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d, "-s", "stop"])
    m = re.search(r"unwind tables: (\d+) files .*?, (\d+) rows \(([\d.]+) MiB\), (\d+) rules, built in ([\d.]+) s", err)
    if not m:
        raise SystemExit("lua-perf printed no table summary:\n" + err)
    return {"files": int(m[1]), "rows": int(m[2]), "rows_mib": float(m[3]), "rules": int(m[4]),
            "build_s": float(m[5]), "lua_perf_peak_rss_mib": (rss or 0) / 1024.0}


def startup_once(lua_perf, pid, tmp):
    """Seconds from lua-perf's start to its "profiling" line, and its own load and table times."""
    started = time.monotonic()
    prof = subprocess.Popen([lua_perf, "-p", str(pid), "-d", "0.2", "-v", "-o", os.path.join(tmp, "startup.fold")],
                            stderr=subprocess.PIPE, text=True)
    ready = None
    lines = []
    for line in prof.stderr:
        lines.append(line)
        if ready is None and "lua-perf: profiling " in line:
            ready = time.monotonic() - started
    prof.wait()
    err = "".join(lines)
    load = re.search(r"BPF program loaded in ([\d.]+) s", err)
    tables = re.search(r"unwind tables: .*built in ([\d.]+) s", err)
    if ready is None or not load or not tables:
        raise SystemExit("lua-perf did not start as expected:\n" + err)
    return ready, float(load[1]), float(tables[1])


def bench_startup(builds, rounds, tmp):
    """lua-perf's start-up on the bundled example (examples/app.lua under lua5.4): until the
    perf events are on, of which the BPF load (the verifier) and the unwind tables; per build,
    medians of interleaved rounds."""
    app = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "app.lua")
    work = subprocess.Popen(["lua5.4", app], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        runs = {mode: [] for mode in builds}
        for _ in range(rounds):
            for mode, build in builds.items():
                runs[mode].append(startup_once(os.path.join(build, "lua-perf"), work.pid, tmp))
    finally:
        work.kill()
        work.wait()
    return {mode: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for mode, rs in runs.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=int, default=1_500_000_000, help="LCG steps per C workload run")
    ap.add_argument("--lua-work", type=int, default=300_000_000, help="loop steps per Lua workload run")
    ap.add_argument("--reference", help="another build whose lua-perf runs in the same rounds")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    builds = {"lua-perf": build}
    if args.reference:
        builds["reference"] = os.path.abspath(args.reference)
    with bpf_stats_enabled():
        with tempfile.TemporaryDirectory() as tmp:
            print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs")
            ref_head = " reference BPF ns/sample (spread) | this / reference |" if args.reference else ""
            print("| program | stack | no profiler: wall (spread) | wall slowdown: lua-perf / perf -F 1000 | "
                  "user CPU: lua-perf / perf | lua-perf BPF ns/sample (spread) | BPF share of a CPU at 1000 Hz |"
                  + ref_head)
            print("|---|---|---|---|---|---|---|" + ("---|---|" if args.reference else ""))
            lua_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua_depth_workload.lua")
            programs = [
                # + main, libc start frames, work: ~40 and ~120 native frames
                ("C, -O2 no frame pointers", "~40 native", [os.path.join(build, "bench_stack_depth"), "36", str(args.work)]),
                ("C, -O2 no frame pointers", "~120 native", [os.path.join(build, "bench_stack_depth"), "116", str(args.work)]),
                # lua5.4: 16 native frames, the main chunk, descend levels and work (checked with lua-perf)
                ("lua5.4", "40 (16 native + 24 Lua)", ["lua5.4", lua_script, "23", str(args.lua_work)]),
                ("lua5.4", "115 (16 native + 99 Lua)", ["lua5.4", lua_script, "98", str(args.lua_work)]),
            ]
            for name, stack, argv in programs:
                r = bench_program(builds, argv, args.rounds, tmp)
                per = r["lua-perf_ns"]
                ns = f"{per:.0f} (±{r['lua-perf_ns_spread_pct']:.0f}%)" if per else "n/a"
                share = f"{per * 1000 / 1e7:.2f}%" if per else "n/a"
                ref = ""
                if args.reference:
                    ref_ns = r["reference_ns"]
                    ref = (f" {ref_ns:.0f} (±{r['reference_ns_spread_pct']:.0f}%) | {per / ref_ns:.2f} |"
                           if ref_ns and per else " n/a | n/a |")
                print(f"| {name} | {stack} | {r['base_s']:.2f} s (±{r['wall_spread_pct'] / 2:.0f}%) | "
                      f"{r['lua-perf_slowdown_pct']:+.1f}% / {r['perf_slowdown_pct']:+.1f}% | "
                      f"{r['lua-perf_user_pct']:+.1f}% / {r['perf_user_pct']:+.1f}% | {ns} | {share} |{ref}",
                      flush=True)
            print()
            print("| lua-perf on examples/app.lua | start-up (to sampling) | BPF load (verifier) | unwind tables |")
            print("|---|---|---|---|")
            for mode, (ready, load, tables) in bench_startup(builds, args.rounds, tmp).items():
                print(f"| {'this build' if mode == 'lua-perf' else 'reference'} | {ready:.2f} s | {load:.2f} s | {tables:.3f} s |",
                      flush=True)
            t = bench_nginx_tables(build, tmp)
            print()
            print("| nginx + libraries | files | rows | row memory | rules | build (cold cache) | lua-perf peak RSS |")
            print("|---|---|---|---|---|---|---|")
            print(f"| master + 2 workers | {t['files']} | {t['rows']} | {t['rows_mib']:.2f} MiB | {t['rules']} | "
                  f"{t['build_s']:.3f} s | {t['lua_perf_peak_rss_mib']:.1f} MiB |")


if __name__ == "__main__":
    main()
