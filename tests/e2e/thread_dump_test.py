#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`lua-perf dump -p PID`: the current stack of every thread, once, the processes left running.

    thread_dump_test.py --lua-perf BIN threads --fixture fixture_dump
    thread_dump_test.py --lua-perf BIN lua|lua_tail_hook|late_runner
    thread_dump_test.py --lua-perf BIN nginx|nginx_lua|nginx_lua_jit

The dump is parsed strictly (docs/output-format.md): one `process PID (comm)...: N threads`
block per process, one `  PID TID comm: state[ in syscall]` block per thread, frames
`    #N  name` leaf first, `    (stack ends here: ...)` for an incomplete stack.

threads: tests/fixtures/native/fixture_dump (main thread in pthread_join, two threads spinning in
  spin_inner, one in nanosleep, one in read on a pipe; each prints its TID). Asserted, per thread,
  against independent oracles: the TIDs and names the fixture printed, the system call each
  sleeper is in from /proc/PID/task/TID/syscall (named by the kernel's asm/unistd_64.h), its
  state from /proc (sleeping / running). Each stack is complete and exactly the fixture's chain
  (the source's call chain, checked by native_fixtures_selfcheck), below any libc frames of the
  blocking call, up to glibc's thread start (clone3, start_thread) or _start; sleepers have
  kernel frames ending at the syscall entry. Spinners are "running" or "runnable", at least one
  of them "running" (taken by the sampling program: the on-CPU path). Afterwards the fixture
  still runs: sleepers in the same system calls, spinners still gaining CPU time.
lua: two stock lua5.4 processes, dumped by one run: one recursing 5 deep into a CPU loop, one 4
  deep into io.read() on a pipe. Their Lua frames, leaf first, are exactly the functions and
  current lines of the scripts' marked lines (found in the script text), under the interpreter.
lua_tail_hook: lua5.3 burning the CPU in a call hook, half the time in the hook of a tail call
  (tests/fixtures/lua/tail_call_hook.lua), dumped until a dump lands there: the caller being
  replaced is left out (see case_lua_tail_hook).
late_runner: lua5.4 asleep in io.read() when lua-perf decides that no target thread runs (so the
  sampling program is left unloaded), then released into the CPU loop of `lua` while lua-perf is
  stopped there: the program is loaded at the first round and takes the running stack (exactly
  the `lua` case's busy chain). Retried if the stop comes after that round.
Whether the sampling program was loaded (-v) is checked too: at once for the fixture's spinners,
never for idle nginx.
nginx: /usr/sbin/nginx, master + 2 idle workers, `dump -p <master>`: one block per process, the
  workers `child of` the master, each sleeping in the system call /proc names, with the worker
  chain main;ngx_master_process_cycle;...;ngx_process_events_and_timers; the master in
  ngx_master_process_cycle; all complete; nginx still serves afterwards.
nginx_lua, nginx_lua_jit: nginx + ngx_lua (LuaJIT), one worker asleep in poll(2) called through
  the FFI from tests/fixtures/nginx_lua/nap.lua, the other idle: the napping worker's Lua frames, leaf
  first, are exactly nap, _M.run and the content_by_lua chunk at their current lines (the
  script's marked lines, the conf's line) between libc's poll and lj_vm; with the JIT on, the
  compiled loop `_M.run..._[j]` right above poll. Both workers have the worker chain, complete.

Exit status: 0 pass, 1 fail, 77 skipped (not root). Parses the dump with tests/pylib/thread_dump.py.
"""
import argparse
import collections
import os
import re
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import nginx, profiling  # noqa: E402
from pylib.chains import exact, libc_fn, M, normalize_libc_name, one  # noqa: E402
from pylib.paths import fixture  # noqa: E402
from pylib.profiling import Child  # noqa: E402
from pylib.report import fail, log  # noqa: E402
from pylib.thread_dump import (  # noqa: E402
    check_stack, fixture_threads, libc_any, run_dump, THREAD_ROOT)

UNISTD_64 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
LUA = "/usr/bin/lua5.4"
LATE_ATTEMPTS = 5


# --------------------------------------------------------------------------------------------
# Oracles from /proc and the kernel headers


def syscall_names():
    """{number: name} from the kernel's UAPI header."""
    names = {}
    with open(UNISTD_64) as f:
        for line in f:
            m = re.match(r"#define __NR_(\w+) (\d+)$", line.strip())
            if m:
                names[int(m[2])] = m[1]
    if len(names) < 300:
        fail(f"{UNISTD_64}: only {len(names)} system calls")
    return names


def proc_syscall(pid, tid):
    """The system call number the thread is in (/proc/PID/task/TID/syscall), or None."""
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            first = f.read().split()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.lstrip("-").isdigit() and int(first) >= 0 else None


def proc_stat(pid, tid):
    """(state letter, utime + stime ticks) of a thread."""
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[11]) + int(fields[12])


def proc_threads(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def wait_in_syscalls(pid, tids, names, timeout=10):
    """Wait until every thread in tids sleeps (S) in a system call: {tid: syscall name}."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for tid in tids:
            nr = proc_syscall(pid, tid)
            if nr is not None and proc_stat(pid, tid)[0] == "S":
                found[tid] = names.get(nr, f"system call {nr}")
        if len(found) == len(tids):
            return found
        if time.monotonic() > deadline:
            fail(f"threads {sorted(set(tids) - set(found))} of {pid} not asleep in a system call "
                 f"within {timeout} s")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# The dump


# lua-perf -v: the sampling program loaded (the threads that run need it), or left out
SAMPLER_LOADED = re.compile(r"^lua-perf: debug: BPF program on_sample: \d+ instructions", re.M)
SAMPLER_DEFERRED = r"^lua-perf: debug: no target thread runs"


def check_sampler(err, loaded, deferred, label):
    """Whether the sampling program was loaded, and whether its load was first deferred."""
    got = (bool(SAMPLER_LOADED.search(err)), bool(re.search(SAMPLER_DEFERRED, err, re.M)))
    if got != (loaded, deferred):
        fail(f"{label}: sampling program loaded {got[0]} (want {loaded}), deferred {got[1]} "
             f"(want {deferred})")


def check_sleeper_kernel(thread, label):
    """A thread asleep in a system call: kernel frames, the outermost the syscall entry."""
    kernel = thread.kernel_frames()
    if not kernel or not kernel[-1].startswith("entry_SYSCALL_64"):
        fail(f"{label}: kernel frames {kernel} do not end at the system call entry "
             "(entry_SYSCALL_64*)")
    if thread.frames[:len(kernel)] != kernel:
        fail(f"{label}: kernel frames are not all at the leaf end")


ANY_FRAME = [M("<any>", lambda fr: True)]
MAIN_ROOT = [one(exact("_start")), one(libc_fn({"libc_start_main"}, allow_offset=False)),
             one(libc_fn({"libc_start_call_main"}))]


# --------------------------------------------------------------------------------------------
# Cases


def case_threads(args, tmp):
    names = syscall_names()
    child = Child([args.fixture, "600"])
    try:
        child.wait_for("ready")
        pid = child.pid
        tids = fixture_threads(child)
        sleepers = {"main": tids["main"], "nap": tids["nap"], "reader": tids["reader"]}
        in_syscall = wait_in_syscalls(pid, sleepers.values(), names)
        log(f"fixture {pid}: threads {tids}; in system calls {in_syscall}")
        with open(f"/proc/{pid}/comm") as f:
            main_comm = f.read().strip()
        dump, err = run_dump(args, [pid], ["-v"])
        check_sampler(err, loaded=True, deferred=False, label="fixture_dump (spinners)")
        check_fixture_dump(dump, pid, tids, in_syscall, main_comm)
        check_still_running(child, pid, tids, in_syscall)
    finally:
        child.close()


def check_fixture_dump(dump, pid, tids, in_syscall, main_comm):
    if set(dump) != {pid}:
        fail(f"dump has processes {sorted(dump)}, want only {pid}")
    threads = dump[pid]["threads"]
    if set(threads) != set(tids.values()):
        fail(f"dump has threads {sorted(threads)}, the fixture {sorted(tids.values())}")
    chains = {
        "spin": [exact("thread_main"), exact("spin_outer"), exact("spin_inner")],
        "nap": [exact("thread_main"), exact("nap_outer"), exact("nap_inner")],
        "reader": [exact("thread_main"), exact("read_outer"), exact("read_inner")],
    }
    running = 0
    for name, tid in tids.items():
        t = threads[tid]
        label = f"thread {tid} ({name})"
        log(f"{label}: {t.state}{' in ' + t.syscall if t.syscall else ''}, "
            f"{len(t.frames)} frames")
        want_comm = main_comm if name == "main" else name
        if t.comm != want_comm:
            fail(f"{label}: comm {t.comm!r}, want {want_comm!r}")
        if name.startswith("spin"):
            if t.state not in ("running", "runnable (waiting for a CPU)") or t.syscall:
                fail(f"{label}: state {t.state!r} in {t.syscall!r}, want running or runnable")
            running += t.state == "running"
            check_stack(t, THREAD_ROOT + [one(m) for m in chains["spin"]], label=label)
            if t.user_frames()[0] != "spin_inner":
                fail(f"{label}: leaf user frame {t.user_frames()[0]!r}, want spin_inner")
            continue
        if t.state != "sleeping" or t.syscall != in_syscall[tid]:
            fail(f"{label}: '{t.state} in {t.syscall}', want 'sleeping in {in_syscall[tid]}' "
                 "(from /proc)")
        check_sleeper_kernel(t, label)
        if name == "main":
            check_stack(t, MAIN_ROOT + [one(exact("main")), one(exact("wait_workers"))],
                        leaf=[libc_any()], label=label)
        else:
            check_stack(t, THREAD_ROOT + [one(m) for m in chains[name]], leaf=[libc_any()],
                        label=label)
        if not t.user_frames() or not libc_any().test(t.user_frames()[0]):
            fail(f"{label}: the leaf user frame {t.user_frames()[:1]} is not libc's wrapper of "
                 f"{in_syscall[tid]}")
    if running == 0:
        fail("neither spinner was taken while running: the on-CPU path (the sampling program "
             "in dump mode) was not exercised")


def check_still_running(child, pid, tids, in_syscall):
    """The dump stopped nothing: same system calls, spinners still gaining CPU time."""
    if child.proc.poll() is not None:
        fail(f"fixture exited ({child.proc.returncode}) after the dump")
    before = {t: proc_stat(pid, t)[1] for t in (tids["spin-a"], tids["spin-b"])}
    time.sleep(0.5)
    for tid, ticks in before.items():
        now = proc_stat(pid, tid)[1]
        if now <= ticks:
            fail(f"spinner {tid} gained no CPU time after the dump ({ticks} -> {now} ticks)")
    names = syscall_names()
    for tid, name in in_syscall.items():
        nr = proc_syscall(pid, tid)
        if names.get(nr) != name:
            fail(f"thread {tid} is in {names.get(nr)!r} after the dump, was in {name!r}")
    log("fixture still running: spinners gaining CPU time, sleepers in the same system calls")


LUA_BUSY = """\
local function spin()
  local s = 0
  while true do s = s + math.abs(-1) end -- MARK spin
end

local function rec(n)
  if n == 0 then
    spin() -- MARK bottom
  end
  local r = rec(n - 1) -- MARK recurse
  return r + 1
end

print("ready")
io.stdout:flush()
rec(5) -- MARK main
"""

LUA_WAIT = """\
local function wait()
  return io.read("l") -- MARK wait
end

local function rec(n)
  if n == 0 then
    return wait() .. "" -- MARK bottom
  end
  local r = rec(n - 1) -- MARK recurse
  return r .. ""
end

print("ready")
io.stdout:flush()
rec(4) -- MARK main
"""


# LUA_BUSY, but asleep in io.read() until the test writes a line
LUA_LATE = LUA_BUSY.replace('io.stdout:flush()\n', 'io.stdout:flush()\nio.read("l")\n', 1)


def marks(text):
    """{mark: line number} of the `-- MARK name` comments."""
    return {m[1]: n for n, line in enumerate(text.split("\n"), 1)
            for m in [re.search(r"-- MARK (\w+)$", line)] if m}


def expected_lua(path, text, leaf, depth):
    """Lua frames, leaf first: leaf function at its mark, rec at the bottom call, depth recursive
    calls, the main chunk."""
    at = marks(text)
    return ([f"L:{leaf}@{path}:{at[leaf]}", f"L:rec@{path}:{at['bottom']}"]
            + [f"L:rec@{path}:{at['recurse']}"] * depth + [f"L:main@{path}:{at['main']}"])


def case_lua(args, tmp):
    if not os.access(LUA, os.X_OK):
        fail(f"{LUA} not found: the project's install script installs lua5.4")
    scripts = {}
    for name, text in (("busy", LUA_BUSY), ("wait", LUA_WAIT)):
        scripts[name] = os.path.join(tmp, f"{name}.lua")
        with open(scripts[name], "w") as f:
            f.write(text)
    names = syscall_names()
    busy = Child([LUA, scripts["busy"]])
    wait = Child([LUA, scripts["wait"]], stdin=True)  # a pipe the test never writes to
    try:
        busy.wait_for("ready")
        wait.wait_for("ready")
        in_syscall = wait_in_syscalls(wait.pid, [wait.pid], names)[wait.pid]
        dump, _ = run_dump(args, [busy.pid, wait.pid])
        if set(dump) != {busy.pid, wait.pid}:
            fail(f"dump has processes {sorted(dump)}, want {busy.pid} and {wait.pid}")
        checks = ((busy, "busy", "spin", 5), (wait, "wait", "wait", 4))
        for child, name, leaf, depth in checks:
            threads = dump[child.pid]["threads"]
            if list(threads) != [child.pid]:
                fail(f"lua5.4 {name}: threads {list(threads)}, want its main thread only")
            t = threads[child.pid]
            want = expected_lua(scripts[name], LUA_BUSY if name == "busy" else LUA_WAIT, leaf,
                                depth)
            got = [f for f in t.frames if f.startswith("L:")]
            log(f"lua5.4 {name}: {t.state}{' in ' + t.syscall if t.syscall else ''}; Lua frames "
                f"{got}")
            if got != want:
                fail(f"lua5.4 {name}: Lua frames {got}, want {want}\n    {t.describe()}")
            check_stack(t, MAIN_ROOT, leaf=ANY_FRAME, label=name)
            # the Lua frames sit right above the interpreter that runs them
            below = t.frames[t.frames.index(want[-1]) + 1]
            if below != "luaV_execute":
                fail(f"lua5.4 {name}: the main chunk's frame is above {below!r}, want luaV_execute")
        t = dump[wait.pid]["threads"][wait.pid]
        if t.state != "sleeping" or t.syscall != in_syscall:
            fail(f"lua5.4 wait: '{t.state} in {t.syscall}', want 'sleeping in {in_syscall}'")
        t = dump[busy.pid]["threads"][busy.pid]
        if t.state not in ("running", "runnable (waiting for a CPU)"):
            fail(f"lua5.4 busy: state {t.state!r}")
        for child, name in ((busy, "busy"), (wait, "wait")):
            if child.proc.poll() is not None:
                fail(f"lua5.4 {name} exited after the dump ({child.proc.returncode})")
        if names.get(proc_syscall(wait.pid, wait.pid)) != in_syscall:
            fail("lua5.4 wait left its system call after the dump")
    finally:
        busy.close()
        wait.close()


TAIL_CALLERS = ("tail_first", "tail_middle", "tail_target")
TAIL_HOOK_DUMPS = 12


def tail_hook_frames(t):
    """The names of a thread's Lua frames, leaf first."""
    return [f[2:].split("@", 1)[0] for f in t.frames if f.startswith("L:")]


def case_lua_tail_hook(args, tmp):
    """lua5.3 on tests/fixtures/lua/tail_call_hook.lua, dumped until a dump lands in the hook of a
    tail call (two thirds of the hook's time; at most TAIL_HOOK_DUMPS dumps): every dump taken in
    the hook has the Lua frames hook_burn, one of the tail functions, hook_workload, main - the
    callee alone, its caller left out, as in the profiles (lua_53_tailhook)."""
    lua53 = "/usr/bin/lua5.3"
    if not os.access(lua53, os.X_OK):
        fail(f"{lua53} not found: the project's install script installs lua5.3")
    child = Child([lua53, fixture("lua", "tail_call_hook.lua")])
    seen = collections.Counter()
    try:
        child.wait_for("ready")
        for _ in range(TAIL_HOOK_DUMPS):
            dump, _ = run_dump(args, [child.pid])
            t = dump[child.pid]["threads"][child.pid]
            got = tail_hook_frames(t)
            if not got or got[0] != "hook_burn":
                seen["outside the hook"] += 1
                continue
            if len(got) != 4 or got[1] not in TAIL_CALLERS or got[2:] != ["hook_workload", "main"]:
                fail(f"lua5.3 tail hook: Lua frames {got}, want hook_burn, one of {TAIL_CALLERS}, "
                     f"hook_workload, main\n    {t.describe()}")
            seen[got[1]] += 1
            if seen["tail_middle"] + seen["tail_target"]:
                break
        log(f"lua5.3 tail hook: dumps by the function entered {dict(seen)}")
        if not seen["tail_middle"] + seen["tail_target"]:
            fail(f"no dump of {TAIL_HOOK_DUMPS} landed in the hook of a tail call: {dict(seen)}")
    finally:
        child.close()


def late_runner_dump(args, path):
    """lua-perf dump -v of a lua5.4 asleep in io.read() when lua-perf decides that the sampling
    program is not needed: lua-perf is stopped there (SIGSTOP) while the script is released into
    its CPU loop, and continued once it runs. Returns (dump, stderr, pid)."""
    child = Child([LUA, path], stdin=True)
    try:
        child.wait_for("ready")
        wait_in_syscalls(child.pid, [child.pid], syscall_names())
        holder = {}

        def release():
            os.kill(holder["lua_perf"], signal.SIGSTOP)
            child.proc.stdin.write(b"go\n")
            child.proc.stdin.flush()
            deadline = time.monotonic() + 10
            while proc_stat(child.pid, child.pid)[0] != "R" and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(holder["lua_perf"], signal.SIGCONT)

        dump, err = run_dump(args, [child.pid], ["-v"], on_line=(SAMPLER_DEFERRED, release),
                             started=lambda pid: holder.update(lua_perf=pid))
        return dump, err, child.pid
    finally:
        child.close()


def case_late_runner(args, tmp):
    """A thread asleep when lua-perf decides, from /proc, that no thread runs (the sampling
    program is then left unloaded), and running by the iterator's first round: the program is
    loaded then and takes its stack. The stop may land after that round (then the iterator took
    the sleeping stack: right too, but not this path): a few tries."""
    path = os.path.join(tmp, "late.lua")
    with open(path, "w") as f:
        f.write(LUA_LATE)
    for attempt in range(1, LATE_ATTEMPTS + 1):
        dump, err, pid = late_runner_dump(args, path)
        t = dump[pid]["threads"][pid]
        got = [f for f in t.frames if f.startswith("L:")]
        log(f"attempt {attempt}: {t.state}; Lua frames {got}")
        if t.state == "sleeping":  # taken before the stop: the iterator's stack in io.read()
            check_sampler(err, loaded=False, deferred=True, label="lua5.4 taken asleep")
            continue
        check_sampler(err, loaded=True, deferred=True, label="lua5.4 running after the decision")
        want = expected_lua(path, LUA_LATE, "spin", 5)
        if got != want:
            fail(f"lua5.4 running after the decision: Lua frames {got}, want {want}\n    "
                 f"{t.describe()}")
        check_stack(t, MAIN_ROOT, leaf=ANY_FRAME, label="late runner")
        return
    fail(f"in {LATE_ATTEMPTS} tries, lua-perf never reached its first round after the stop")


def dump_nginx(args, master, workers, idle=False):
    """dump -p <master>: the parsed dump, which must hold the master and its workers. idle: none
    of them wakes up on its own, so the sampling program must not be loaded."""
    dump, err = run_dump(args, [master.pid], ["-v"])
    if idle:
        check_sampler(err, loaded=False, deferred=True, label="nginx, every process asleep")
    if set(dump) != {master.pid, *workers}:
        fail(f"dump has processes {sorted(dump)}, want master {master.pid} and workers "
             f"{workers}")
    return dump


def case_nginx(args, tmp):
    if not os.access(nginx.NGINX, os.X_OK):
        fail(f"{nginx.NGINX} not found: the project's install script installs nginx-light")
    os.chmod(tmp, 0o755)  # workers run as nobody
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    os.chmod(www, 0o755)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("<html><body>lua-perf dump test</body></html>\n")
    os.chmod(os.path.join(www, "index.html"), 0o644)
    port = nginx.free_port()
    master, workers = nginx.start_nginx(
        tmp, nginx.nginx_conf(tmp, nginx.NGINX_STATIC_HTTP.format(tmp=tmp, port=port)), port)
    try:
        names = syscall_names()
        for p in [master.pid] + workers:
            if len(proc_threads(p)) != 1:
                fail(f"nginx process {p} has threads {proc_threads(p)}: expected one each")
        in_syscall = {p: wait_in_syscalls(p, [p], names)[p] for p in [master.pid] + workers}
        log(f"nginx master {master.pid}, workers {workers}; in system calls {in_syscall}")
        dump = dump_nginx(args, master, workers, idle=True)
        ef = nginx.ElfFrames(nginx.NGINX)
        prefix = nginx.startup_prefix(ef)
        worker_chain = [one(m) for m in nginx.worker_chain(ef)]
        for p in [master.pid] + workers:
            proc = dump[p]
            want_ppid = None if p == master.pid else master.pid
            if proc["ppid"] != want_ppid:
                fail(f"nginx {p}: 'child of {proc['ppid']}', want {want_ppid}")
            if list(proc["threads"]) != [p]:
                fail(f"nginx {p}: threads {list(proc['threads'])}, want [{p}]")
            t = proc["threads"][p]
            label = f"nginx {'master' if p == master.pid else 'worker'} {p}"
            log(f"{label}: {t.state} in {t.syscall}, {len(t.frames)} frames")
            if t.state != "sleeping" or t.syscall != in_syscall[p]:
                fail(f"{label}: '{t.state} in {t.syscall}', want 'sleeping in {in_syscall[p]}'")
            check_sleeper_kernel(t, label)
            chain = prefix + (worker_chain if p != master.pid
                              else [one(exact("ngx_master_process_cycle"))])
            check_stack(t, chain, leaf=ANY_FRAME, label=label)
        status, _ = nginx.http_get(port, "/index.html")
        if " 200 " not in status + " ":
            fail(f"nginx does not serve after the dump: {status!r}")
        for p in [master.pid] + workers:
            if not os.path.exists(f"/proc/{p}"):
                fail(f"nginx process {p} gone after the dump")
    finally:
        nginx.stop_nginx(master)


NAP_HANDLER = fixture("nginx_lua", "nap.lua")


def content_by_lua_line(conf_text):
    """The nginx.conf line of the content_by_lua_block: ngx_lua names its chunk after it."""
    lines = [n for n, line in enumerate(conf_text.split("\n"), 1) if "content_by_lua_block" in line]
    if len(lines) != 1:
        fail(f"nginx.conf has content_by_lua_block on lines {lines}, want one")
    return lines[0]


def start_request(port):
    """A GET sent and left unanswered: the worker that takes it runs nap.lua for minutes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /nap HTTP/1.1\r\nHost: lua-perf\r\n\r\n")
    return sock


def check_lua_worker(t, handler, chunk, jit, label):
    """The stack of the worker asleep in nap.lua's poll, leaf first: kernel frames, libc's poll,
    then with the JIT off the FFI call's native frames and fast function, the Lua frames nap,
    _M.run and the content_by_lua chunk at their current lines; with the JIT on poll is called
    from the compiled loop of _M.run (`_[j]`, the trace's first line; nap is inlined into it).
    Below them one lj_vm frame, called by ngx_http_lua_run_thread."""
    at = marks(open(NAP_HANDLER).read())
    if jit:
        want = [f"L:_M.run@{handler}:{at['loop']}_[j]"]
    else:
        want = [f"L:nap@{handler}:{at['nap']}", f"L:_M.run@{handler}:{at['run']}"]
    want.append(f"L:main@{chunk}:1")
    user = t.user_frames()
    if not user or normalize_libc_name(user[0]) != "poll":
        fail(f"{label}: leaf user frame {user[:1]}, want libc's poll\n    {t.describe()}")
    lua = [i for i, f in enumerate(user) if f.startswith("L:") and not f.endswith("@builtin")]
    if not lua or [user[i] for i in lua] != want or lua != list(range(lua[0], lua[-1] + 1)):
        fail(f"{label}: Lua frames {[user[i] for i in lua]}, want {want} in a row\n"
             f"    {t.describe()}")
    between = user[1:lua[0]]
    if jit and between:
        fail(f"{label}: frames {between} between poll and the compiled Lua frame")
    if not jit and (len(between) < 2 or not re.fullmatch(r"L:\S+@builtin", between[-1])
                    or not all(f.startswith(("libluajit", "lj_")) for f in between[:-1])):
        fail(f"{label}: frames {between} between poll and nap: want LuaJIT's FFI call frames "
             "(libluajit) under a fast function (ffi's __call)")
    if user[lua[-1] + 1:lua[-1] + 3] != ["lj_vm", "ngx_http_lua_run_thread"]:
        fail(f"{label}: below the chunk {user[lua[-1] + 1:lua[-1] + 3]}, want lj_vm, "
             "ngx_http_lua_run_thread")


def check_still_napping(worker, names, timeout=2):
    """The dump did not disturb the worker: it is seen in nap.lua's poll again. Not just once,
    right after the dump: between two naps it is awake, or runnable and waiting for a CPU while
    the machine is busy (/proc/PID/syscall then says "running"), and that failed a loaded CI run."""
    deadline = time.monotonic() + timeout
    while names.get(proc_syscall(worker, worker)) != "poll":
        if time.monotonic() > deadline:
            fail(f"the napping worker {worker} was not back in nap.lua's poll within {timeout} s "
                 f"of the dump")
        time.sleep(0.01)


def case_nginx_lua(args, tmp, jit=False):
    """nginx + ngx_lua (OpenResty's module on LuaJIT, jit on or off): one worker asleep in
    nap.lua's poll, one idle; dump -p <master>."""
    os.chmod(tmp, 0o755)  # workers run as nobody
    port = nginx.free_port()
    conf = nginx.nginx_lua_conf(tmp, port, jit=jit, handler=NAP_HANDLER)
    chunk = f"content_by_lua(nginx.conf:{content_by_lua_line(conf)})"
    handler = os.path.join(tmp, "lua", "handler.lua")
    master, workers = nginx.start_nginx(tmp, conf, port)
    sock = None
    try:
        names = syscall_names()
        sock = start_request(port)
        deadline = time.monotonic() + 10
        while True:
            napping = [p for p in workers if names.get(proc_syscall(p, p)) == "poll"]
            if napping or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(napping) != 1:
            fail(f"workers in poll: {napping}, want the one that took the request")
        # nap.lua's loop is compiled after its first 56 naps (LuaJIT's hotloop), 1.6 s: give it 3 s
        time.sleep(3 if jit else 0.2)
        idle = [p for p in workers if p != napping[0]][0]
        in_syscall = {p: wait_in_syscalls(p, [p], names)[p] for p in [master.pid, idle]}
        dump = dump_nginx(args, master, workers)
        ef = nginx.ElfFrames(nginx.NGINX)
        chain = nginx.startup_prefix(ef) + [one(m) for m in nginx.worker_chain(ef)]
        for p, role in ((napping[0], "napping"), (idle, "idle")):
            t = dump[p]["threads"][p]
            label = f"nginx {role} worker {p}"
            log(f"{label}: {t.state} in {t.syscall}, {len(t.frames)} frames")
            want_syscall = "poll" if p == napping[0] else in_syscall[p]
            if t.state != "sleeping" or t.syscall != want_syscall:
                fail(f"{label}: '{t.state} in {t.syscall}', want 'sleeping in {want_syscall}'")
            check_sleeper_kernel(t, label)
            check_stack(t, chain, leaf=ANY_FRAME, label=label)
        check_lua_worker(dump[napping[0]]["threads"][napping[0]], handler, chunk, jit,
                         f"nginx worker {napping[0]}")
        check_still_napping(napping[0], names)
    finally:
        if sock:
            sock.close()
        nginx.stop_nginx(master)


CASES = {"threads": case_threads, "lua": case_lua, "lua_tail_hook": case_lua_tail_hook,
         "late_runner": case_late_runner,
         "nginx": case_nginx,
         "nginx_lua": case_nginx_lua,
         "nginx_lua_jit": lambda args, tmp: case_nginx_lua(args, tmp, jit=True)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", required=True, help="path of the lua-perf binary")
    ap.add_argument("--fixture", help="fixture_dump (threads)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False  # pylib.profiling.Profiler option; perf has no dump
    status = profiling.cannot_profile(args)
    if status is not None:
        return status
    return profiling.run_case(CASES[args.case], args, f"lua-perf-dump-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
