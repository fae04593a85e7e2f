#!/usr/bin/env python3
"""How long `lua-perf dump` takes, and where the time goes.

usage: bench/dump_bench.py BUILD_DIR [--rounds N]   (as root)

nginx + ngx_lua (LuaJIT, JIT on), 2 workers, one of them asleep in an FFI call from a compiled
loop (tests/fixtures/nginx_lua/nap.lua, as the dump_nginx_lua_jit test), dumped N times with
`lua-perf dump -v -p <master>`; no thread of it runs, so the sampling program is not loaded.
Then lua5.4 running examples/app.lua (busy: its thread runs, so both programs are loaded), N
times. Each round dumps twice, alternately: cold (LUA_PERF_TABLE_CACHE=off: every unwind table
compiled, as a first run) and warm (the table cache of a dump made before the rounds, as any
later run). Reported per phase (median, min, max over the rounds): the whole run's wall time,
loading the sampling program and the dump iterator (mostly the verifier; "not loaded" when
the -v output has no such line), building the unwind tables, and the dump itself (first
iterator round to the last stack), from lua-perf's own -v lines.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # pylib
import pylib.nginx as ngx  # noqa: E402
from pylib.paths import fixture  # noqa: E402

NAP_HANDLER = fixture("nginx_lua", "nap.lua")
PHASES = (("BPF program load", r"BPF program loaded in ([\d.]+) s"),
          ("dump iterator load", r"BPF dump iterator loaded in ([\d.]+) s"),
          ("unwind tables", r"unwind tables: .* built in ([\d.]+) s"),
          ("dump", r"dump took ([\d.]+) s"))


def one_dump(build, master, cache):
    started = time.monotonic()
    res = subprocess.run([os.path.join(build, "lua-perf"), "dump", "-v", "-p", str(master)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                         env=dict(os.environ, LUA_PERF_TABLE_CACHE=cache))
    wall = time.monotonic() - started
    err = res.stderr.decode(errors="replace")
    if res.returncode != 0:
        sys.exit(f"lua-perf dump exited with {res.returncode}: {err[-2000:]}")
    times = {"wall": wall}
    for name, pattern in PHASES:
        m = re.search(pattern, err)
        if m:
            times[name] = float(m[1])
        elif name != "BPF program load":  # not loaded when no thread runs
            sys.exit(f"no '{name}' time in lua-perf's -v output")
    return times


def report(title, runs):
    print(title)
    for name in ["wall"] + [p for p, _ in PHASES]:
        values = [r[name] for r in runs if name in r]
        if not values:
            print(f"  {name:20s} not loaded")
            continue
        print(f"  {name:20s} median {statistics.median(values):.3f}  min {min(values):.3f}  "
              f"max {max(values):.3f}" + (f"  ({len(values)} of {len(runs)} runs)"
                                          if len(values) < len(runs) else ""))


def cold_and_warm(build, pid, rounds, cache):
    """rounds dumps of pid without a table cache and as many with `cache` (filled first),
    alternated: {"cold": [times...], "warm": [times...]}."""
    one_dump(build, pid, cache)
    runs = {"cold": [], "warm": []}
    for _ in range(rounds):
        runs["cold"].append(one_dump(build, pid, "off"))
        runs["warm"].append(one_dump(build, pid, cache))
    return runs


def busy_dumps(build, rounds, cache):
    """lua5.4 running examples/app.lua: its one thread is on a CPU."""
    app = subprocess.Popen(["lua5.4", os.path.join(HERE, "..", "examples", "app.lua"), "600"],
                           stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        return cold_and_warm(build, app.pid, rounds, cache)
    finally:
        app.kill()
        app.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lua-perf-dump-bench-") as tmp:
        os.chmod(tmp, 0o755)  # workers run as nobody
        port = ngx.free_port()
        conf = ngx.nginx_lua_conf(tmp, port, jit=True, handler=NAP_HANDLER)
        master, _ = ngx.start_nginx(tmp, conf, port)
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /nap HTTP/1.1\r\nHost: bench\r\n\r\n")
            time.sleep(3)  # the nap loop compiled (after its first 56 naps, 1.6 s)
            runs = cold_and_warm(args.build, master.pid, args.rounds, os.path.join(tmp, "cache"))
            sock.close()
        finally:
            ngx.stop_nginx(master)
        busy = busy_dumps(args.build, args.rounds, os.path.join(tmp, "cache"))
    for mode in ("cold", "warm"):
        report(f"{args.rounds} dumps of nginx + ngx_lua (master, 2 workers), {mode}, seconds:",
               runs[mode])
    for mode in ("cold", "warm"):
        report(f"{args.rounds} dumps of lua5.4 examples/app.lua (busy), {mode}, seconds:",
               busy[mode])


if __name__ == "__main__":
    main()
