#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tests of the pprof output (output/pprof_profile.c; -o *.pb.gz, --format pprof), each profile
decoded by an independent reader: Debian's python3-protobuf with profile.proto declared in
tests/pylib/pprof.py, which also checks the references (string_table[0] is "", every string
index, function, location and mapping id referred to exists, ids are unique and non-zero, each
sample has one value per sample type).

    pprof_test.py decode --harness test_pprof
    pprof_test.py profile --lua-perf BIN --app examples/app.lua
    pprof_test.py nginx --lua-perf BIN
    pprof_test.py cli --lua-perf BIN
    pprof_test.py threads --lua-perf BIN --fixture fixture_threads

decode (no root): test_pprof writes a profile of fixed folded lines (--lines) with frame
  origins noted. Checked field by field: sample types samples/count and cpu/nanoseconds, period
  type and period, time and duration; one Location per distinct frame and one Function per
  distinct function; `FILE+0xADDR` frames as that address in a Mapping named FILE, symbolized
  native frames in the Mapping of the file noted for them (none when noted in two files or in
  no file), kernel frames (`_[k]` cut off) in the [kernel.kallsyms] Mapping; Lua frames with
  name, filename = chunk, start_line = the line defined noted, and the executing line in the
  Location's Line (two lines of one function: two Locations, one Function); JIT frames as
  `<name>_[j]`, fast functions with filename `builtin`; a line's samples split by thread with
  pid, thread and comm labels (no thread label for a whole process, no comm label when the
  name is unknown, no labels when the line has no processes); invalid UTF-8 as U+FFFD; values
  = samples and samples x period.
profile (root, BPF): lua5.4 runs examples/app.lua; one run (-f 997 -d 3 --lines) writes
  `-o out.fold -o out.pb.gz`. The totals are equal; flat and cumulative samples of every
  function (name, filename) computed from the fold equal those of the pprof samples (so the
  top functions by either match); the busiest Lua function carries the chunk app.lua and
  executing lines of the file; every named Lua function of app.lua has start_line = the line
  of its `function <name>(` in the source, and no executing line before it; every sample is
  labelled with the target's pid, thread = pid and comm `lua5.4`; __libc_start_main is in the
  Mapping of the libc the target maps (path, readelf's build ID);
  period = 1e9 / 997 ns, duration within a second of -d, time_nanos within the run; the
  Mapping of lua5.4's unsymbolized frames names its path and build ID (readelf's) and holds
  their addresses. Go's reader, `go tool pprof -top` (golang-go), accepts the file and gives
  the fold's total and flat and cumulative samples by function name.
cli (root, BPF): `--format pprof` without -o writes profile.pb.gz, `-o x.PPROF` is pprof by
  its name, `--format folded -o x.pb.gz` writes folded text; a bad --format value names pprof
  among the choices.
nginx (root, BPF): nginx-light, master + 2 workers (reuseport) serving a static file under
  wrk, profiled with -p <master> (the workers followed) writing -o out.fold -o out.pb.gz: the
  samples by pid label equal lua-perf's per-process summary exactly, every pid label is the
  master or a worker, both workers have samples, comm labels are `nginx`, thread labels equal
  the pid (nginx runs one thread per process), and the totals, flat and cumulative samples by
  function equal the fold's.
threads (root, BPF): fixture_threads (4 worker threads in burn_thread, 2 s at 997 Hz): every
  sample has the pid and a thread label of one of the process's threads; burn_thread's samples
  carry the 4 worker tids (not the main thread's), each with at least 10% of the samples; the
  totals, flat and cumulative samples equal the fold's; burn_thread is in the Mapping of the
  fixture's path with its build ID.

Exit status: 0 pass, 1 fail, 77 skipped (not root, for profile/nginx/cli/threads). Python 3 and Debian's
python3-protobuf, golang-go, lua5.4, nginx-light, wrk.
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import pprof, profiling  # noqa: E402
from pylib.folded import parse_fold  # noqa: E402
from pylib.nginx import (  # noqa: E402
    finish_wrk, free_port, NGINX, nginx_conf, NGINX_STATIC_HTTP, run_wrk, start_nginx,
    stop_nginx, WRK)
from pylib.profiling import Child, Profiler  # noqa: E402
from pylib.report import fail, log  # noqa: E402

LUA = "/usr/bin/lua5.4"
FREQ = 997


def expect(cond, what):
    if not cond:
        fail(what)


def check_header(p, ix, period):
    types = [(ix.s(t.type), ix.s(t.unit)) for t in p.sample_type]
    expect(types == [("samples", "count"), ("cpu", "nanoseconds")], f"sample types {types}")
    pt = (ix.s(p.period_type.type), ix.s(p.period_type.unit))
    expect(pt == ("cpu", "nanoseconds"), f"period type {pt}")
    expect(p.period == period, f"period {p.period}, want {period}")
    for s in p.sample:
        expect(s.value[1] == s.value[0] * period, f"sample values {list(s.value)}")


# --------------------------------------------------------------------------------------------
# decode


def case_decode(args, tmp):
    path = os.path.join(tmp, "fixed.pb.gz")
    subprocess.run([args.harness, "write", path], check=True)
    p, ix = pprof.load(path)
    check_header(p, ix, 1001001)
    expect(p.time_nanos == 1700000000123456789 and p.duration_nanos == 3000000000,
           f"time {p.time_nanos}, duration {p.duration_nanos}")
    funcs = {(ix.s(f.name), ix.s(f.filename), f.start_line) for f in p.function}
    expect(len(funcs) == len(p.function), "a function twice")
    want = {("_start", "", 0), ("main", "", 0), ("lua5.4+0xe6bf", "", 0), ("main", "app.lua", 0),
            ("handle", "app.lua", 10), ("malloc", "", 0), ("pcall", "builtin", 0),
            ("f_[j]", '[string "x:y"]', 2), ("write", "", 0), ("do_syscall_64", "", 0),
            ("ksys_write", "", 0), ("[no stack]", "", 0), ("libc.so.6+0x20", "", 0),
            ("\ufffd\ufffd<bad>", "", 0)}
    expect(funcs == want, f"functions {sorted(funcs)}, want {sorted(want)}")
    # one Location per distinct frame: 15 distinct frame texts in the five lines
    expect(len(p.location) == 15, f"{len(p.location)} locations, want 15")
    maps = {m.id: ix.s(m.filename) for m in p.mapping}
    expect(sorted(maps.values()) == ["/a/libc.so.6", "/usr/bin/lua5.4", "[kernel.kallsyms]",
                                     "libc.so.6"], f"mappings {maps}")
    fields = sorted((ix.s(m.filename), ix.s(m.build_id), m.memory_start, m.memory_limit,
                     m.file_offset) for m in p.mapping)
    want = [("/a/libc.so.6", "", 0, 0, 0), ("/usr/bin/lua5.4", "deadbeef", 0x1000, 0x9000, 0x800),
            ("[kernel.kallsyms]", "", 0, 0, 0), ("libc.so.6", "", 0, 0, 0)]
    expect(fields == want, f"mappings {fields}, want {want}")
    by_name = {}
    for loc in p.location:
        f = ix.functions[loc.line[0].function_id]
        by_name.setdefault(ix.s(f.name), []).append((maps.get(loc.mapping_id), loc.address,
                                                     [l.line for l in loc.line]))
    expect(by_name["lua5.4+0xe6bf"] == [("/usr/bin/lua5.4", 0xe6bf, [0])],
           f"{by_name['lua5.4+0xe6bf']}")
    expect(by_name["libc.so.6+0x20"] == [("libc.so.6", 0x20, [0])],
           f"{by_name['libc.so.6+0x20']}")
    expect(by_name["ksys_write"] == [("[kernel.kallsyms]", 0, [0])], f"{by_name['ksys_write']}")
    # symbolized native frames: the Mapping of the file noted for them (lua5.4's is the one its
    # unsymbolized frames have); none when noted in two files or in no file
    expect(by_name["malloc"] == [("/a/libc.so.6", 0, [0])], f"malloc: {by_name['malloc']}")
    expect(sorted(by_name["main"], key=str) == [("/usr/bin/lua5.4", 0, [0]), (None, 0, [0])],
           f"main: {by_name['main']}")
    expect(by_name["_start"] == [(None, 0, [0])] and by_name["write"] == [(None, 0, [0])],
           f"_start: {by_name['_start']}, write: {by_name['write']}")
    # the two lines running in handle: two Locations of one Function (line defined 10)
    expect(sorted(by_name["handle"]) == [(None, 0, [12]), (None, 0, [14])],
           f"handle: {by_name['handle']}")
    expect(by_name["f_[j]"] == [(None, 0, [3])], f"f_[j]: {by_name['f_[j]']}")
    samples = sorted(([ix.s(ix.functions[ix.locations[l].line[0].function_id].name)
                       for l in s.location_id][0], s.value[0], tuple(sorted(ix.labels(s).items())))
                     for s in p.sample)
    want = [("[no stack]", 1, (("pid", 300),)),
            ("\ufffd\ufffd<bad>", 4, ()),
            ("f_[j]", 5, (("comm", "nginx: worker"), ("pid", 200), ("thread", 200))),
            ("ksys_write", 2, ()),
            ("malloc", 3, (("comm", "nginx"), ("pid", 100))),
            ("malloc", 1, (("comm", "nginx: worker"), ("pid", 200), ("thread", 201))),
            ("malloc", 3, (("comm", "nginx: worker"), ("pid", 200), ("thread", 202)))]
    expect(samples == sorted(want), f"samples (leaf, count, labels) {samples}")
    stacks = [[ix.s(ix.functions[ix.locations[l].line[0].function_id].name)
               for l in s.location_id] for s in p.sample]
    leaf_first = [st for st in stacks if st[0] == "ksys_write"][0]
    expect(leaf_first == ["ksys_write", "do_syscall_64", "write", "handle", "main", "_start"],
           f"stack not leaf first: {leaf_first}")


# --------------------------------------------------------------------------------------------
# profile


def check_against_fold(p, ix, stacks):
    total = sum(n for _, n in stacks)
    got = sum(s.value[0] for s in p.sample)
    expect(got == total, f"pprof has {got} samples, the fold {total}")
    flat, cum = ix.flat_cum()
    want_flat, want_cum = pprof.folded_flat_cum(stacks)
    expect(flat == want_flat, f"flat by function differs: pprof top {flat.most_common(5)}, "
           f"fold top {want_flat.most_common(5)}")
    expect(cum == want_cum, f"cumulative by function differs: pprof top {cum.most_common(5)}, "
           f"fold top {want_cum.most_common(5)}")
    log(f"{total} samples; top flat {flat.most_common(3)}; top cum {cum.most_common(3)}")
    return flat


def case_profile(args, tmp):
    fold, pb = os.path.join(tmp, "out.fold"), os.path.join(tmp, "out.pb.gz")
    child = Child([LUA, args.app])
    prof = None
    try:
        time.sleep(0.3)
        before = time.time_ns()
        prof = Profiler(args, [child.pid], 3, fold, freq=FREQ, extra=["-o", pb, "--lines"])
        rc, _, err = prof.finish()
        after = time.time_ns()
        pid_maps = mapped_paths(child.pid)
        profiling.check_exit(rc, err, args)
    finally:
        if prof:
            prof.kill()
        child.close()
    p, ix = pprof.load(pb)
    check_header(p, ix, 10**9 // FREQ)
    expect(abs(p.duration_nanos - 3 * 10**9) < 10**9, f"duration {p.duration_nanos} ns")
    expect(before <= p.time_nanos <= after, f"time_nanos {p.time_nanos} not in [{before}, "
           f"{after}]")
    stacks = parse_fold(fold)
    flat = check_against_fold(p, ix, stacks)
    lua = [(n, k) for k, n in flat.items() if k[1].endswith("app.lua")]
    expect(lua, f"no Lua function of app.lua among {flat.most_common(10)}")
    name = max(lua)[1][0]
    lines = {l.line for loc in p.location for l in loc.line
             if ix.function_key(ix.functions[l.function_id]) == (name, args.app)}
    with open(args.app) as f:
        source = f.read().split("\n")
    expect(lines and all(0 < n <= len(source) for n in lines),
           f"{name}@{args.app}: lines {lines} (want current lines of the file, > 0)")
    log(f"busiest Lua function {name} in {args.app}, lines {sorted(lines)}")
    check_start_lines(p, ix, args.app, source)
    labels = {tuple(sorted(ix.labels(s).items())) for s in p.sample}
    expect(labels == {(("comm", "lua5.4"), ("pid", child.pid), ("thread", child.pid))},
           f"labels {labels}")
    check_lua_mapping(p, ix)
    check_native_mappings(p, ix, pid_maps)
    check_go_pprof(pb, tmp, stacks)


def check_start_lines(p, ix, app, source):
    """With --lines each Lua function of app still carries the line it is defined at
    (start_line), found in the source as `function <name>(`, and its Lines lie after it."""
    checked = []
    for f in p.function:
        name = ix.s(f.name)
        if ix.s(f.filename) != app or name in ("main", "?"):
            continue
        defined = [i + 1 for i, text in enumerate(source)
                   if re.search(r"\bfunction\s+" + re.escape(name) + r"\s*\(", text)]
        expect(len(defined) == 1 and f.start_line == defined[0],
               f"{name}: start_line {f.start_line}, defined at {defined}")
        lines = [l.line for loc in p.location for l in loc.line if l.function_id == f.id]
        expect(all(n >= f.start_line for n in lines), f"{name}: lines {lines} before its "
               f"start line {f.start_line}")
        checked.append((name, f.start_line))
    expect(len(checked) >= 3, f"Lua functions of {app} with a start line: {checked}")
    log(f"start lines {sorted(checked)}")


def check_native_mappings(p, ix, pid_maps):
    """A symbolized native frame is in the Mapping of its file: __libc_start_main in libc's
    (path as the target maps it, build ID)."""
    libc = [path for path in pid_maps if os.path.basename(path).startswith("libc.so")]
    expect(len(libc) == 1, f"libc mapped as {libc}")
    maps = {m.id: m for m in p.mapping}
    locs = [loc for loc in p.location
            if ix.s(ix.functions[loc.line[0].function_id].name) == "__libc_start_main"]
    expect(len(locs) == 1 and locs[0].mapping_id in maps,
           f"__libc_start_main: {len(locs)} locations, mapping {locs and locs[0].mapping_id}")
    m = maps[locs[0].mapping_id]
    want_id = build_id(libc[0])
    expect(ix.s(m.filename) == libc[0] and ix.s(m.build_id) == want_id != "",
           f"__libc_start_main in {ix.s(m.filename)!r} {ix.s(m.build_id)!r}, want {libc[0]!r} "
           f"{want_id!r}")
    log(f"__libc_start_main in {libc[0]} {want_id}")


def mapped_paths(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}


def check_go_pprof(pb, tmp, stacks):
    """Go's own reader (go tool pprof, which validates the profile) agrees with the fold: the
    total, and flat and cumulative samples of every function name (cumulative where one row
    has that name)."""
    try:
        total, rows = pprof.go_top(pb, tmp)
    except (OSError, ValueError) as e:
        fail(f"go tool pprof (golang-go, scripts/install-deps.sh): {e}")
    want = sum(n for _, n in stacks)
    expect(total == want, f"go tool pprof: {total} samples, the fold {want}")
    flat, cum = pprof.folded_flat_cum(stacks)
    by_name = {}
    for (name, _), n in flat.items():
        by_name[name] = by_name.get(name, 0) + n
    go_flat = {name: r[0] for name, r in rows.items() if r[0]}
    expect(go_flat == {k: v for k, v in by_name.items() if v},
           f"go tool pprof flat by name differs from the fold's: "
           f"{sorted(set(go_flat.items()) ^ set(by_name.items()))[:10]}")
    for (name, _), n in cum.items():
        if rows.get(name, [0, 0, 0])[2] == 1 and sum(1 for k in cum if k[0] == name) == 1:
            expect(rows[name][1] == n, f"go tool pprof: {name} cum {rows[name][1]}, fold {n}")
    top = sorted(go_flat.items(), key=lambda kv: -kv[1])[:3]
    log(f"go tool pprof -top: {total} samples, top flat {top}")


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], stdout=subprocess.PIPE, check=True).stdout
    m = re.search(rb"Build ID: ([0-9a-f]+)", out)
    return m.group(1).decode() if m else ""


def check_lua_mapping(p, ix):
    """The Mapping of lua5.4's unsymbolized frames: its path, build ID and load range."""
    path = os.path.realpath(LUA)
    maps = [m for m in p.mapping if os.path.basename(ix.s(m.filename)) == "lua5.4"]
    expect(len(maps) == 1, f"{len(maps)} mappings of lua5.4")
    m = maps[0]
    expect(ix.s(m.filename) == path, f"lua5.4 mapping {ix.s(m.filename)!r}, want {path!r}")
    expect(ix.s(m.build_id) == build_id(path) != "", f"lua5.4 build ID {ix.s(m.build_id)!r}")
    addrs = [loc.address for loc in p.location if loc.mapping_id == m.id]
    expect(addrs and all(m.memory_start <= a < m.memory_limit for a in addrs),
           f"lua5.4 addresses outside [{m.memory_start:#x}, {m.memory_limit:#x})")
    log(f"lua5.4 mapping {path} {ix.s(m.build_id)}: {len(addrs)} locations in its range")


# --------------------------------------------------------------------------------------------
# nginx


def case_nginx(args, tmp):
    for tool in (NGINX, WRK):
        expect(os.access(tool, os.X_OK), f"{tool} not found (scripts/install-deps.sh)")
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    os.chmod(www, 0o755)
    with open(os.path.join(www, "file"), "wb") as f:
        f.write(bytes((i * 7919) & 0xFF for i in range(100 * 1024)))
    os.chmod(os.path.join(www, "file"), 0o644)
    port = free_port()
    # reuseport: the kernel spreads wrk's 16 connections over both workers, so both sample
    http = NGINX_STATIC_HTTP.replace("listen 127.0.0.1:{port};",
                                     "listen 127.0.0.1:{port} reuseport;")
    expect("reuseport" in http, "NGINX_STATIC_HTTP has no listen line to add reuseport to")
    master, workers = start_nginx(tmp, nginx_conf(tmp, http.format(tmp=tmp, port=port)), port)
    fold, pb = os.path.join(tmp, "out.fold"), os.path.join(tmp, "out.pb.gz")
    prof = wrk = None
    try:
        prof = Profiler(args, [master.pid], 4, fold, freq=FREQ, extra=["-o", pb])
        expect(prof.wait_attached(), "lua-perf opened no perf event within 15 s")
        wrk = run_wrk(port, 5, "/file")
        rc, _, err = prof.finish()
        finish_wrk(wrk)
        profiling.check_exit(rc, err, args)
    finally:
        if prof:
            prof.kill()
        if wrk:
            wrk.close()
        stop_nginx(master)
    procs, rest = profiling.process_summary(err)
    expect(rest == 0, f"{rest} samples in '+N more processes'")
    p, ix = pprof.load(pb)
    check_against_fold(p, ix, parse_fold(fold))
    by_pid, comms = {}, set()
    for s in p.sample:
        labels = ix.labels(s)
        by_pid[labels["pid"]] = by_pid.get(labels["pid"], 0) + s.value[0]
        comms.add(labels.get("comm"))
        # nginx runs one thread per process (no thread pools in nginx-light's configuration)
        expect(labels.get("thread") == labels["pid"], f"labels {labels}")
    want = {pid: n for pid, (n, _) in procs.items()}
    log(f"samples by pid label {by_pid}; per-process summary {want}")
    expect(by_pid == want, f"samples by pid label {by_pid}, summary {want}")
    expect(set(by_pid) <= {master.pid, *workers}, f"pids {set(by_pid)} not master {master.pid} "
           f"or workers {workers}")
    expect(all(by_pid.get(w, 0) > 0 for w in workers), f"a worker without samples: {by_pid}")
    expect(comms == {"nginx"}, f"comm labels {comms}")


# --------------------------------------------------------------------------------------------
# threads


def case_threads(args, tmp):
    fold, pb = os.path.join(tmp, "out.fold"), os.path.join(tmp, "out.pb.gz")
    child = Child([args.fixture, "30"])
    prof = None
    try:
        child.wait_for("ready")
        prof = Profiler(args, [child.pid], 2, fold, freq=FREQ, extra=["-o", pb])
        rc, _, err = prof.finish()
        profiling.check_exit(rc, err, args)
        tasks = {int(t) for t in os.listdir(f"/proc/{child.pid}/task")}
    finally:
        if prof:
            prof.kill()
        child.close()
    p, ix = pprof.load(pb)
    check_against_fold(p, ix, parse_fold(fold))
    by_thread, burning = {}, {}
    for s in p.sample:
        labels = ix.labels(s)
        expect(labels.get("pid") == child.pid and "thread" in labels, f"labels {labels}")
        tid = labels["thread"]
        by_thread[tid] = by_thread.get(tid, 0) + s.value[0]
        leaf = ix.s(ix.functions[ix.locations[s.location_id[0]].line[0].function_id].name)
        if leaf == "burn_thread":
            burning[tid] = burning.get(tid, 0) + s.value[0]
    total = sum(by_thread.values())
    log(f"samples by thread label {by_thread}; in burn_thread {burning}; tasks {sorted(tasks)}")
    expect(set(by_thread) <= tasks, f"thread labels {set(by_thread)} not threads of "
           f"{child.pid}: {sorted(tasks)}")
    expect(len(burning) == 4 and child.pid not in burning,
           f"burn_thread by thread {burning}: want the 4 workers")
    expect(all(n >= total // 10 for n in burning.values()),
           f"a worker with under 10% of {total} samples: {burning}")
    path = os.path.realpath(args.fixture)
    maps = {m.id: m for m in p.mapping}
    burn = [loc for loc in p.location
            if ix.s(ix.functions[loc.line[0].function_id].name) == "burn_thread"]
    expect(len(burn) == 1 and burn[0].mapping_id in maps, f"burn_thread locations {burn}")
    m = maps[burn[0].mapping_id]
    expect(ix.s(m.filename) == path and ix.s(m.build_id) == build_id(path) != "",
           f"burn_thread's mapping {ix.s(m.filename)!r} {ix.s(m.build_id)!r}, want {path!r} "
           f"{build_id(path)!r}")


# --------------------------------------------------------------------------------------------
# cli


def run_lua_perf(args, tmp, argv):
    """lua-perf ARGV -d 1 -p <lua5.4 running a loop>, in tmp: (exit status, stderr)."""
    child = Child([LUA, "-e", "while true do end"])
    try:
        cmd = [args.lua_perf] + argv + ["-d", "1", "-p", str(child.pid)]
        log("$ " + " ".join(cmd))
        res = subprocess.run(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=60)
    finally:
        child.close()
    return res.returncode, res.stderr.decode(errors="replace")


def case_cli(args, tmp):
    rc, err = run_lua_perf(args, tmp, ["--format", "bogus"])
    expect(rc == 2 and "pprof" in err, f"--format bogus: exit {rc}, {err!r}")
    for argv, name in ((["--format", "pprof"], "profile.pb.gz"), (["-o", "x.PPROF"], "x.PPROF")):
        rc, err = run_lua_perf(args, tmp, argv)
        expect(rc == 0, f"{argv}: exit {rc}; stderr {err[-1000:]!r}")
        path = os.path.join(tmp, name)
        expect(os.path.exists(path), f"{argv}: no {name}; stderr {err[-1000:]!r}")
        p, _ = pprof.load(path)
        expect(sum(s.value[0] for s in p.sample) > 0, f"{name}: no samples")
    rc, err = run_lua_perf(args, tmp, ["--format", "folded", "-o", "y.pb.gz"])
    expect(rc == 0, f"--format folded -o y.pb.gz: exit {rc}; stderr {err[-1000:]!r}")
    with open(os.path.join(tmp, "y.pb.gz"), "rb") as f:
        head = f.read(2)
    expect(head not in (b"", b"\x1f\x8b"), f"--format folded -o y.pb.gz wrote {head!r}")


CASES = {"decode": case_decode, "profile": case_profile, "nginx": case_nginx, "cli": case_cli,
         "threads": case_threads}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", help="path of the lua-perf binary")
    ap.add_argument("--harness", help="path of test_pprof (decode)")
    ap.add_argument("--app", help="examples/app.lua (profile)")
    ap.add_argument("--fixture", help="fixture_threads (threads)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False
    if args.case != "decode":
        status = profiling.cannot_profile(args)
        if status is not None:
            return status
    return profiling.run_case(CASES[args.case], args, f"lua-perf-pprof-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
