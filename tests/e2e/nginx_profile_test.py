#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Profiling stock Debian binaries (stripped, built without frame pointers) with lua-perf.

    nginx_profile_test.py --lua-perf BIN nginx
    nginx_profile_test.py --lua-perf BIN lua_reload
    nginx_profile_test.py --lua-perf BIN lua54

nginx: /usr/sbin/nginx (master + 2 workers, config generated in a temp dir, listening on a free
  127.0.0.1 port) serves static files to `wrk -t2 -c16 -d5s` (loopback only, started once
  lua-perf samples: its start-up may take seconds under ASan); both workers are profiled for
  4 s. nginx exports most of its functions (.dynsym, for dynamic modules) but not the static
  ones: ngx_start_worker_processes, ngx_worker_process_cycle and the handlers
  (ngx_http_static_handler) show as nginx+0x..., as do _start and libc's static functions.
  Asserted over the samples with user frames:
    - >= 99% complete: root frame inside nginx's _start (the ELF entry point's function), then
      __libc_start_main, __libc_start_call_main (static), main;
    - >= 99% of those go through the worker's chain
      main;ngx_master_process_cycle;<nginx: ngx_start_worker_processes>;ngx_spawn_process;
      <nginx: ngx_worker_process_cycle>;ngx_process_events_and_timers
      with one and the same function (by its FDE) standing for ngx_worker_process_cycle;
    - >= 50% of them are serving the file: ngx_http_core_content_phase;<nginx+0x...: the static
      handler, always the same function>;ngx_http_output_filter (most of the worker's time then
      goes to writev/pread in the kernel); >= 1% have nginx's own code at the leaf.
  nginx is stopped (process group killed) whatever happens.

lua_reload: nginx with ngx_lua (Debian's libnginx-mod-http-lua on LuaJIT, with resty.core), 2
  workers, JIT compiler off, every request runs tests/fixtures/nginx_lua/handler.lua (string building,
  table.sort with a Lua comparator, a recursive function; the response is checked against the
  test's own computation). `lua-perf -p <master> -d 6` runs; once it opened its perf events wrk
  loads nginx, and 2 s later the master gets SIGHUP and forks 2 new workers (found by
  /proc ppid). Asserted: the new workers joined (stderr), old workers >= 100 samples each and
  new ones >= max(100, 30% of the old workers' mean) each in the per-process summary, the new
  ones >= 25% of all samples; >= 95% of
  the stacks complete and >= 80% through ngx_http_core_content_phase;...;
  ngx_http_lua_content_by_chunk;ngx_http_lua_run_thread. nginx_lua_conf() and
  profile_nginx_tree() are reusable (jit=True, Lua frame assertions).

lua54: /usr/bin/lua5.4 running a CPU loop script, profiled 3 s. main is not exported (shows as
  lua5.4+0x..., found via _start's `lea main(%rip), %rdi`), nor is luaV_execute. Asserted:
    - >= 99% complete: root in _start, then __libc_start_main, __libc_start_call_main, main;
    - >= 99% contain main ... lua_pcallk ... lua_pcallk: lua.c's main runs pmain with
      lua_pcall, and docall runs the script chunk with lua_pcall;
    - the innermost native frame (Lua frames `L:...` after it aside) is inside lua5.4 (the
      interpreter loop) for most samples.

Exit status: 0 pass, 1 fail, 77 skipped (not root). Its nginx helpers are tests/pylib/nginx.py.
"""
import argparse
import collections
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import profiling  # noqa: E402
from pylib.chains import exact, MIN_SHARE  # noqa: E402
from pylib.folded import parse_fold, split_offset, top_stacks  # noqa: E402
from pylib.nginx import (  # noqa: E402
    check_complete, check_lua_native_chains, check_luajit_chains, ElfFrames, find_seq, finish_wrk,
    free_port, http_get, lua_handler_response, NGINX, nginx_conf, nginx_lua_conf,
    NGINX_STATIC_HTTP, run_wrk, share, start_nginx, startup_prefix, stop_nginx, wait_workers,
    worker_chain, WRK)
from pylib.profiling import Child, Profiler  # noqa: E402
from pylib.report import fail, log  # noqa: E402

LUA = "/usr/bin/lua5.4"


# --------------------------------------------------------------------------------------------
# nginx


def case_nginx(args, tmp):
    for tool in (NGINX, WRK):
        if not os.access(tool, os.X_OK):
            fail(f"{tool} not found: the project's install script installs nginx-light and wrk")
    os.chmod(tmp, 0o755)  # workers run as nobody and serve files from here
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    os.chmod(www, 0o755)
    files = {"index.html": b"<html><body>lua-perf test</body></html>\n",
             "small.txt": b"hello\n" * 100,
             "file": bytes((i * 7919) & 0xFF for i in range(100 * 1024))}
    for name, content in files.items():
        with open(os.path.join(www, name), "wb") as f:
            f.write(content)
        os.chmod(os.path.join(www, name), 0o644)
    port = free_port()
    master, workers = start_nginx(
        tmp, nginx_conf(tmp, NGINX_STATIC_HTTP.format(tmp=tmp, port=port)), port)
    wrk = prof = None
    try:
        status, body = http_get(port, "/file")
        if " 200 " not in status + " " or body != files["file"]:
            fail(f"GET /file: {status!r}, {len(body)} bytes (want 200, {len(files['file'])})")
        prof, wrk = start_sampling_then_load(args, workers, port, 4,
                                             os.path.join(tmp, "out.fold"), "/file")
        rc, _, err = prof.finish()
        wrk_out = finish_wrk(wrk)
        profiling.check_exit(rc, err, args)
        if "Non-2xx" in wrk_out or "Socket errors" in wrk_out:
            fail(f"wrk saw errors:\n{wrk_out}")
        for w in workers:
            if not os.path.exists(f"/proc/{w}"):
                fail(f"nginx worker {w} died during profiling")
    finally:
        if prof:
            prof.kill()
        if wrk:
            wrk.close()
        stop_nginx(master)

    stacks = parse_fold(os.path.join(tmp, "out.fold"))
    ef = ElfFrames(NGINX)
    prefix = startup_prefix(ef)
    users, complete, n_users = check_complete(stacks, prefix, "nginx workers")
    if n_users < 300:
        fail(f"nginx workers: only {n_users} samples with user frames (want >= 300)\n"
             + top_stacks(stacks))

    # The worker's chain right after main.
    chain = worker_chain(ef)
    n_chain = 0
    cycle_fns = collections.Counter()
    bad = []
    for f, c in complete:
        end = find_seq(f, chain, len(prefix))
        if end is None:
            bad.append((f, c))
            continue
        n_chain += c
        cycle_fns[ef.fde_of(f[len(prefix) + 3])] += c
    n_complete = sum(c for _, c in complete)
    log(f"  main;{';'.join(m.desc for m in chain)}: {n_chain}/{n_complete} = "
        f"{share(n_chain, n_complete):.2%}")
    if n_chain < MIN_SHARE * n_complete:
        fail(f"nginx: only {share(n_chain, n_complete):.2%} of complete stacks go through "
             f"main;{';'.join(m.desc for m in chain)}\n"
             + top_stacks(bad, title="the others"))
    fn, n = cycle_fns.most_common(1)[0]
    log(f"  ngx_worker_process_cycle = {ef.base}+0x{fn:x} in {n}/{n_chain} samples")
    if n < MIN_SHARE * n_chain:
        fail(f"nginx: the frame standing for ngx_worker_process_cycle is not one function: "
             f"{dict((hex(k or 0), v) for k, v in cycle_fns.items())}")

    # Serving static files: ngx_http_core_content_phase calls the static handler (a static
    # function: nginx+0x...), which sends the file down ngx_http_output_filter.
    static = [exact("ngx_http_core_content_phase"), ef.unnamed("ngx_http_static_handler"),
              exact("ngx_http_output_filter")]
    n_static = sum(c for f, c in users
                   if any(find_seq(f, static, i) for i in range(len(prefix), len(f))))
    handler_fns = collections.Counter()
    for f, c in users:
        for i in range(len(f) - 2):
            if find_seq(f, static, i):
                handler_fns[ef.fde_of(f[i + 1])] += c
                break
    leaf_in_nginx = sum(c for f, c in users if f[-1].startswith("ngx_")
                        or (split_offset(f[-1]) or ("",))[0] == ef.base)
    log(f"  samples under {';'.join(m.desc for m in static)}: {n_static}/{n_users} = "
        f"{share(n_static, n_users):.2%} (static handler: "
        f"{', '.join(f'{ef.base}+0x{k or 0:x}: {v}' for k, v in handler_fns.most_common(3))})")
    log(f"  samples with their leaf in nginx: {leaf_in_nginx}/{n_users} = "
        f"{share(leaf_in_nginx, n_users):.2%}")
    if share(n_static, n_users) < 0.5:
        fail(f"nginx: only {share(n_static, n_users):.2%} of samples are in the static file "
             f"handler ({';'.join(m.desc for m in static)}) while wrk downloads a file\n"
             + top_stacks(users, title="user stacks"))
    if len(handler_fns) != 1:
        fail(f"nginx: the static handler frame is not one function: {dict(handler_fns)}")
    if leaf_in_nginx < 0.01 * n_users:
        fail("nginx: (almost) no samples with nginx's own code at the leaf\n"
             + top_stacks(users, title="user stacks"))


# --------------------------------------------------------------------------------------------
# nginx + ngx_lua (OpenResty's Lua module, Debian's libnginx-mod-http-lua on LuaJIT)

LUA_RELOAD_DURATION = 6   # lua-perf -d
LUA_RELOAD_AFTER = 2.0    # SIGHUP this long after the load started

def start_sampling_then_load(args, pids, port, duration, out, path="/"):
    """lua-perf on pids, then (once it samples: its start-up may take seconds on a busy machine
    or under ASan) wrk on port for the rest of its run. Returns (profiler, wrk)."""
    prof = Profiler(args, pids, duration, out)
    wrk = None
    try:
        if not prof.wait_attached():
            fail("lua-perf opened no perf event within 15 s")
        wrk = run_wrk(port, duration + 1, path)
    except BaseException:
        prof.kill()
        raise
    return prof, wrk


def profile_nginx_tree(args, tmp, master, port, duration, during=None):
    """lua-perf -p <master> samples for `duration` s while wrk loads nginx (during(prof) is
    called once the load is on). Returns (lua-perf's stderr, parsed fold, wrk's output)."""
    out = os.path.join(tmp, "out.fold")
    wrk = prof = None
    try:
        prof, wrk = start_sampling_then_load(args, [master.pid], port, duration, out)
        if during:
            during(prof)
        rc, _, err = prof.finish()
        wrk.proc.send_signal(signal.SIGINT)
        wrk_out = finish_wrk(wrk)
        profiling.check_exit(rc, err, args)
        if master.proc.poll() is not None:
            fail(f"the nginx master exited during profiling: {master.proc.returncode}")
    finally:
        if prof:
            prof.kill()
        if wrk:
            wrk.close()
    return err, parse_fold(out), wrk_out


def sighup_after(master, old_workers, delay, new_workers):
    """during() for profile_nginx_tree: SIGHUP the master `delay` s after the load started,
    then wait for its new workers (appended to new_workers)."""
    def during(prof):
        time.sleep(delay)
        os.kill(master.pid, signal.SIGHUP)
        new_workers.extend(wait_workers(master.pid, len(old_workers), exclude=old_workers))
        log(f"SIGHUP {time.monotonic() - prof.start_time:.1f} s after lua-perf started: new "
            f"workers {new_workers}; old ones still there: "
            f"{[w for w in old_workers if os.path.exists(f'/proc/{w}')]}")
    return during


def check_lua_reload_samples(err, stacks, master, old, new):
    """Old and new workers in the per-process summary; native stacks through ngx_lua
    (check_lua_native_chains)."""
    joined = profiling.joined_lines(err)
    for w in new:
        if joined.get(w) != ("nginx", master):
            fail(f"new worker {w}: joined as {joined.get(w)}, want ('nginx', {master})")
    procs, _ = profiling.process_summary(err)
    total = sum(c for _, c in stacks)
    old_mean = sum(procs.get(w, (0,))[0] for w in old) / len(old)
    # Relative minimums (other suites may share the CPUs): the new workers, sampled for longer
    # than the old ones, must not have much less than them.
    for label, pids, minimum in (("old worker", old, 100),
                                 ("new worker", new, max(100, 0.3 * old_mean))):
        for w in pids:
            n, comm = procs.get(w, (0, "?"))
            log(f"  {label} {w}: {n} samples ({comm})")
            if n < minimum or comm != "nginx":
                fail(f"{label} {w}: {n} samples as {comm!r} (want >= {minimum:.0f} as 'nginx')")
    n_new = sum(procs[w][0] for w in new)
    log(f"  new workers: {n_new}/{total} = {share(n_new, total):.2%} of the samples")
    if n_new < 0.25 * total:
        fail(f"new workers have only {share(n_new, total):.2%} of the samples: sampling did not "
             "go on after the reload")

    check_lua_native_chains(stacks)


def case_lua_reload(args, tmp, jit=True):
    """nginx + ngx_lua, 2 workers under wrk; lua-perf -p <master>; SIGHUP mid-run."""
    for tool in (NGINX, WRK):
        if not os.access(tool, os.X_OK):
            fail(f"{tool} not found: the project's install script installs nginx-light and wrk")
    port = free_port()
    master, old = start_nginx(tmp, nginx_lua_conf(tmp, port, jit=jit), port)
    new = []
    try:
        status, body = http_get(port, "/")
        if " 200 " not in status + " " or body != lua_handler_response():
            fail(f"GET /: {status!r} {body!r}, want 200 {lua_handler_response()!r}")
        err, stacks, wrk_out = profile_nginx_tree(
            args, tmp, master, port, LUA_RELOAD_DURATION,
            sighup_after(master, old, LUA_RELOAD_AFTER, new))
        if "Non-2xx" in wrk_out:
            fail(f"wrk saw errors:\n{wrk_out}")  # (a reload may reset connections: tolerated)
        for w in new:
            if not os.path.exists(f"/proc/{w}"):
                fail(f"new nginx worker {w} died during profiling")
    finally:
        stop_nginx(master)
    check_lua_reload_samples(err, stacks, master.pid, old, new)
    check_luajit_chains(stacks, os.path.join(tmp, "lua"), jit)


def case_lua_reload_jitoff(args, tmp):
    case_lua_reload(args, tmp, jit=False)


# --------------------------------------------------------------------------------------------
# lua5.4

LUA_SCRIPT = """\
local function work(n)
  local s = 0
  for i = 1, n do s = (s + i * 7) % 1000003 end
  return s
end
local total = 0
io.write("ready\\n")
io.stdout:flush()
while true do total = total + work(100000) end
"""


def case_lua54(args, tmp):
    if not os.access(LUA, os.X_OK):
        fail(f"{LUA} not found (Debian package lua5.4)")
    script = os.path.join(tmp, "loop.lua")
    with open(script, "w") as f:
        f.write(LUA_SCRIPT)
    _, stacks = profiling.profile_child(args, tmp, Child([LUA, script]), "lua5.4", duration=3)
    ef = ElfFrames(LUA)
    prefix = startup_prefix(ef)
    users, complete, n_users = check_complete(stacks, prefix, "lua5.4")
    if n_users < 1000:
        fail(f"lua5.4: only {n_users} samples with user frames (want >= 1000 in 3 s)\n"
             + top_stacks(stacks))
    n_pcall = sum(c for f, c in complete if f[len(prefix):].count("lua_pcallk") >= 2)
    n_complete = sum(c for _, c in complete)
    log(f"  main ... lua_pcallk ... lua_pcallk: {n_pcall}/{n_complete} = "
        f"{share(n_pcall, n_complete):.2%}")
    if n_pcall < MIN_SHARE * n_complete:
        fail(f"lua5.4: only {share(n_pcall, n_complete):.2%} of complete stacks contain "
             "main...lua_pcallk...lua_pcallk\n" + top_stacks(complete, title="complete stacks"))
    def native_leaf(frames):
        natives = [fr for fr in frames if not fr.startswith("L:")]
        return natives[-1] if natives else ""

    n_leaf = sum(c for f, c in users if (split_offset(native_leaf(f)) or ("",))[0] == ef.base
                 or native_leaf(f).startswith("lua"))
    log(f"  leaf in {ef.base}: {n_leaf}/{n_users} = {share(n_leaf, n_users):.2%}")
    if n_leaf < 0.8 * n_users:
        fail(f"lua5.4: only {share(n_leaf, n_users):.2%} of samples have their leaf in the "
             "interpreter\n" + top_stacks(users, title="user stacks"))


CASES = {"nginx": case_nginx, "lua54": case_lua54, "lua_reload": case_lua_reload,
         "lua_reload_jitoff": case_lua_reload_jitoff}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", help="path of the lua-perf binary")
    ap.add_argument("--use-perf", action="store_true",
                    help="profile with perf instead of lua-perf (checks the expectations)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    status = profiling.cannot_profile(args)
    if status is not None:
        return status
    return profiling.run_case(CASES[args.case], args, f"lua-perf-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
