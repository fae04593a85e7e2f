#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The table cache (LUA_PERF_TABLE_CACHE, unwind/table_cache.c) on nginx + ngx_lua: what a run
built, the next one reads, with the same stacks.

    table_cache_test.py --lua-perf BIN nginx|unusable

nginx: nginx + ngx_lua (LuaJIT, 2 idle workers), `lua-perf dump -v -p <master>` four times with
  LUA_PERF_TABLE_CACHE set to a new directory. Asserted:
    - run 1 reads nothing from the cache ("N files (M without table, 0 from the table cache)")
      and leaves one entry per file with a table (N - M), each private (mode 0600);
    - run 2 reads all N - M from the cache; its dump holds the same frames thread by thread as
      run 1's (idle nginx threads do not move), and it finds the same LuaJIT VM (the stderr line
      "PID ...: LuaJIT ..." of each process), so the tables read back unwind as the built ones;
    - run 3, after one byte in the middle of the largest entry was changed, warns "1 damaged
      entries deleted", reads the others, builds that one again (N - M entries again), and
      dumps the same frames;
    - run 4 with a file in the cache directory under an entry's name that is a symbolic link to
      another file: not followed (O_NOFOLLOW): that table is built again, and the link's target
      is left as it was.
unusable: LUA_PERF_TABLE_CACHE naming a directory anyone may write to: one warning ("not a
  directory of this user that only it can write to: tables are built at every run"), the dump
  works, nothing is read from or written into it.
"""
import argparse
import glob
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pylib import nginx, profiling  # noqa: E402
from pylib.report import fail, log  # noqa: E402
from pylib.thread_dump import run_dump  # noqa: E402

TABLES = re.compile(r"^lua-perf: unwind tables: (\d+) files \((\d+) without table, (\d+) from "
                    r"the table cache\)", re.M)
RUNTIME = re.compile(r"^lua-perf: PID \d+: (LuaJIT .*|Lua .*)$", re.M)


def dump(args, master, cache):
    """lua-perf dump -v -p master with the cache at `cache`: (frames by (pid, tid), stderr,
    (files, without table, from the cache))."""
    log(f"LUA_PERF_TABLE_CACHE={cache}")
    parsed, err = run_dump(args, [master], ["-v"], env=dict(os.environ, LUA_PERF_TABLE_CACHE=cache))
    m = TABLES.search(err)
    if not m:
        fail("no 'unwind tables: N files (M without table, K from the table cache)' line")
    frames = {(t.pid, t.tid): t.frames for p in parsed.values() for t in p["threads"].values()}
    if not frames:
        fail("the dump holds no thread")
    return frames, err, tuple(int(x) for x in m.groups())


def entries(cache):
    return sorted(glob.glob(os.path.join(cache, "*.table")))


def check_same_frames(got, want, label):
    if set(got) != set(want):
        fail(f"{label}: threads {sorted(got)}, first run {sorted(want)}")
    for key, frames in want.items():
        if got[key] != frames:
            fail(f"{label}: thread {key} differs from the first run:\n    {';'.join(got[key])}\n"
                 f"    first: {';'.join(frames)}")


def runtimes(err):
    return sorted(RUNTIME.findall(err))


def case_nginx(args, tmp):
    port = nginx.free_port()
    conf = nginx.nginx_lua_conf(tmp, port, jit=True, workers=2)
    cache = os.path.join(tmp, "cache")
    master, workers = nginx.start_nginx(tmp, conf, port, workers=2)
    try:
        time.sleep(0.5)  # idle: every thread asleep where it waits for work
        first, err, (files, without, hits) = dump(args, master.pid, cache)
        kept = entries(cache)
        log(f"run 1: {files} files, {without} without table, {hits} from the cache; "
            f"{len(kept)} entries kept")
        if hits != 0 or len(kept) != files - without or files - without < 5:
            fail(f"run 1: {hits} read from an empty cache, {len(kept)} entries kept for "
                 f"{files - without} tables")
        modes = {oct(os.stat(e).st_mode & 0o777) for e in kept}
        if modes != {"0o600"}:
            fail(f"entries not private: modes {modes}")
        if not any(r.startswith("LuaJIT") for r in runtimes(err)):
            fail("run 1 found no LuaJIT VM in nginx's workers")

        second, err2, (files2, _, hits2) = dump(args, master.pid, cache)
        log(f"run 2: {hits2} of {files2} files from the cache")
        if hits2 != files - without or files2 != files:
            fail(f"run 2: {hits2} tables read from the cache, want {files - without}")
        check_same_frames(second, first, "run 2 (tables from the cache)")
        if runtimes(err2) != runtimes(err):
            fail(f"run 2 found the VMs {runtimes(err2)}, run 1 {runtimes(err)}")

        largest = max(kept, key=os.path.getsize)
        with open(largest, "r+b") as f:
            f.seek(os.path.getsize(largest) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x10]))
        third, err3, (_, _, hits3) = dump(args, master.pid, cache)
        if "1 damaged entries deleted" not in err3:
            fail("run 3: no warning about the damaged entry")
        if hits3 != files - without - 1 or len(entries(cache)) != files - without:
            fail(f"run 3: {hits3} from the cache (want {files - without - 1}), "
                 f"{len(entries(cache))} entries after (want {files - without})")
        check_same_frames(third, first, "run 3 (one entry damaged)")

        victim = entries(cache)[0]
        decoy = os.path.join(tmp, "decoy")
        os.rename(victim, decoy)
        before = open(decoy, "rb").read()
        os.symlink(decoy, victim)
        fourth, _, (_, _, hits4) = dump(args, master.pid, cache)
        if hits4 != files - without - 1:
            fail(f"run 4: {hits4} from the cache, want {files - without - 1} (the link not "
                 "followed)")
        if open(decoy, "rb").read() != before:
            fail("run 4 changed the file a link in the cache pointed to")
        check_same_frames(fourth, first, "run 4 (a link in the cache)")
    finally:
        nginx.stop_nginx(master)


def case_unusable(args, tmp):
    port = nginx.free_port()
    conf = nginx.nginx_lua_conf(tmp, port, jit=True, workers=1)
    cache = os.path.join(tmp, "open")
    os.mkdir(cache)
    os.chmod(cache, 0o777)
    master, _ = nginx.start_nginx(tmp, conf, port, workers=1)
    try:
        _, err, (_, _, hits) = dump(args, master.pid, cache)
    finally:
        nginx.stop_nginx(master)
    want = (f"lua-perf: warning: table cache {cache}: not a directory of this user that only it "
            "can write to: tables are built at every run")
    if err.count(want) != 1:
        fail(f"want once on stderr: {want!r}")
    if hits != 0 or os.listdir(cache):
        fail(f"an unusable cache was used: {hits} read, {os.listdir(cache)} in it")


CASES = {"nginx": case_nginx, "unusable": case_unusable}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", required=True, help="path of the lua-perf binary")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False
    status = profiling.cannot_profile(args)
    if status is not None:
        return status
    return profiling.run_case(CASES[args.case], args, f"lua-perf-table-cache-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
