#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Nothing lost over time: long runs, processes from their first instruction, lua-perf -- CMD.

    long_run_test.py --lua-perf BIN [--seconds S] CASE

churn: a shell loop runs luacheck (Debian's lua-check, Lua 5.1) over /usr/share/lua again and
  again: a process tree with churn running a large Lua code base. lua-perf -p <shell> --stats
  -d S (default 120) at 997 Hz. Asserted:
    - exit 0; "0 lost (sample map full), 0 without stack (stack map full)"; no loss warning on
      stderr (any loss is said when it starts);
    - the samples BPF took (--stats) == the summary's total == the folded file's total;
    - at least half of S seconds of one CPU sampled, from at least S / 4 luacheck processes;
    - the summary's "distinct folded stacks" equals the file's line count, its peak RSS is
      below RSS_LIMIT_MIB, its CPU use while sampling is below OWN_CPU_LIMIT of one CPU;
    - Lua frames are named: "L:?@?:0" (a Proto not read in time) in < 2% of the Lua samples.
short_child: a shell loop `sleep 0.4; lua5.4 burn.lua 0.2` (the child burns 0.2 s of CPU time,
  os.clock) profiled with -p <shell> -d 5: every lua5.4 child that lived inside the run has
  SHORT_MIN..SHORT_MAX samples (about 200: sampled from its first instruction, found by the
  kernel's fork/exec tracepoints, not by the once-a-second scan); at most two at the edges of the
  run may have fewer; at least 5 children; their Lua function `burn` is named; the same stack in
  several children is one line (the most common stack has more samples than any one child).
command: lua-perf -o F -- lua5.4 cmd.lua ARG with stdin, stdout and the environment checked
  through: exit status 3 passed through; at most MAX_UNPUBLISHED samples without a user frame
  ([no stack], or kernel frames only: taken before CMD's new mappings were published); the Lua
  function that runs first (0.3 s of CPU) has at least FIRST_SHARE of the samples of the one
  that runs second (0.3 s), with their whole stacks: sampled from the start, the libraries that
  ld.so maps after the exec unwound through at once.
command_script: the same, CMD being the script itself (`#!/usr/bin/env lua5.4`): lua5.4's
  table is built before the script starts, as an executable's is (without it, first_fn keeps
  0.87 of second_fn's samples whole).
command_quick: `-- true` exits 0 and `-- false` exits 1, each with its output file written.
command_errors: a command that does not exist (127) and one that cannot be executed (126) are
  said on stderr and leave no output file; `dump -- true`, `-p PID -- true` and `--` alone are
  usage errors (exit 2).
interrupt: `-- sleep 100` in its own session: SIGINT to the whole group (Ctrl-C) ends both,
  lua-perf exits 130 and writes its outputs; SIGTERM to lua-perf alone is passed on to sleep,
  lua-perf exits 143.

Exit status: 0 pass, 1 fail, 77 skipped (not root).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib.folded import parse_fold  # noqa: E402
from pylib.profiling import (  # noqa: E402
    cannot_profile, check_exit, Child, die_with_parent, FREQ, process_summary, Profiler,
    PROFILER_GRACE, run_case)
from pylib.report import fail, log  # noqa: E402

LUA_TREE = "/usr/share/lua"
RSS_LIMIT_MIB = 1024     # measured: 124 MiB after 120 s (docs/benchmarks.md); room for ASan
OWN_CPU_LIMIT = 0.15     # of one CPU, while sampling (measured: 5.5%, docs/benchmarks.md)
UNNAMED_LUA = "L:?@?:0"
# Lua samples left unnamed, at most: luacheck processes live ~0.4 s, and a stack first seen in the
# last moments of one is named only if userspace reads its Protos before the exit; beyond the
# first 64 new stacks of a second it is woken every 25 ms at most (docs/design.md, "Names").
# Measured 0.45-0.7% here (plain and ASan alike); a faster machine runs more processes a second.
UNNAMED_LIMIT = 0.02
SHORT_BURN_S = 0.2
SHORT_MIN, SHORT_MAX = 170, 235   # samples of a child burning 0.2 s of CPU at 997 Hz
COMMAND_BURN_S = 0.3
# Samples of CMD without a user frame: those between its exec and the publication of its new
# mappings, and the last ones of its exit; 0-2 at 1000 Hz, plain and ASan (0.3 ms to publish: its
# executable's table is built before it starts). Up to 300 while /proc/kallsyms was read on the
# main thread at that moment (150 ms and more under ASan).
MAX_UNPUBLISHED = 25
# Whole stacks of the first function over the second's: 0.97-1.0. 0.90 while the libraries ld.so
# maps after the exec waited for the tables of libm, libreadline and libtinfo to be built before
# being published (libc's is built already, for lua-perf's own image that CMD starts as).
FIRST_SHARE = 0.95

# Burns `seconds` of CPU time (os.clock), whatever else runs on the machine.
LUA_BURN = """
local function burn(seconds)
  local stop, x = os.clock() + seconds, 0
  while os.clock() < stop do
    for i = 1, 1000 do x = x + i % 7 end
  end
  return x
end
"""
BURN_LUA = LUA_BURN + "burn(tonumber(arg[1]))\n"
COMMAND_LUA = LUA_BURN + """local function first_fn() local x = burn(BURN_SECONDS) return x end
local function second_fn() local x = burn(BURN_SECONDS) return x end
first_fn()
second_fn()
io.write("arg=", arg[1], " env=", os.getenv("LP_TEST_VAR"), " stdin=", io.read("l"), "\\n")
os.exit(3)
"""


def summary_numbers(err):
    """(samples, lost, without stack) from the summary's first line."""
    m = re.search(r"^lua-perf: (\d+) samples in [0-9.]+ s at \d+ Hz; (\d+) lost \(sample map "
                  r"full\), (\d+) without stack \(stack map full\)", err, re.M)
    if not m:
        fail(f"no sample line in the summary: {err[-2000:]!r}")
    return int(m[1]), int(m[2]), int(m[3])


def own_cost(err):
    """(distinct folded stacks, CPU share while sampling, peak RSS MiB) from the summary."""
    m = re.search(r"^lua-perf: (\d+) distinct folded stacks; kernel maps drained (\d+) times; "
                  r"lua-perf used [0-9.]+ s of CPU to start, [0-9.]+ s while sampling "
                  r"\(([0-9.]+)% of one CPU\), peak RSS ([0-9.]+) MiB$", err, re.M)
    if not m:
        fail(f"no own-cost line in the summary: {err[-2000:]!r}")
    log(f"distinct stacks {m[1]}, drains {m[2]}, own CPU {m[3]}%, peak RSS {m[4]} MiB")
    return int(m[1]), int(m[2]), float(m[3]) / 100, float(m[4])


def stats_counter(err, what):
    m = re.search(r"^  " + re.escape(what) + r" +(\d+)$", err, re.M)
    if not m:
        fail(f"--stats has no {what!r} line: {err[-2000:]!r}")
    return int(m[1])


def check_no_loss_warning(err):
    said = [line for line in err.split("\n")
            if line.startswith("lua-perf: warning") and
            re.search(r"lost|without stack|not profiled|distinct stacks", line)]
    if said:
        fail(f"loss said on stderr: {said}")


def lua_samples(stacks):
    """(samples with a Lua frame, samples with an unnamed Lua frame)."""
    lua = unnamed = 0
    for frames, count in stacks:
        if any(f.startswith("L:") for f in frames):
            lua += count
            if UNNAMED_LUA in frames:
                unnamed += count
    return lua, unnamed


def write_file(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def case_churn(args, tmp):
    if not os.path.isdir(LUA_TREE) or not shutil.which("luacheck"):
        fail("luacheck (Debian package lua-check) and /usr/share/lua are needed")
    loop = f"while :; do luacheck --no-cache {LUA_TREE} >/dev/null 2>&1; done"
    child = Child(["sh", "-c", loop])
    try:
        out = os.path.join(tmp, "churn.fold")
        prof = Profiler(args, [child.pid], args.seconds, out, extra=["--stats"])
        rc, _, err = prof.finish()
    finally:
        child.close()
    check_exit(rc, err, args)
    check_no_loss_warning(err)
    samples, lost, stackless = summary_numbers(err)
    if lost or stackless:
        fail(f"{lost} samples lost, {stackless} without stack")
    taken = stats_counter(err, "samples taken by BPF")
    stacks = parse_fold(out)
    folded = sum(c for _, c in stacks)
    log(f"BPF took {taken} samples, the summary says {samples}, the folded file has {folded}")
    if not taken == samples == folded:
        fail(f"samples taken by BPF {taken}, in the summary {samples}, in the folded file "
             f"{folded}: all three must be equal")
    if samples < 0.5 * FREQ * args.seconds:
        fail(f"{samples} samples in {args.seconds} s: less than half of one busy CPU")
    procs, rest = process_summary(err)
    luachecks = sum(1 for _, comm in procs.values() if comm == "lua5.1")  # luacheck's VM
    followed = re.search(r"^lua-perf: (\d+) processes followed", err, re.M)
    if not followed or int(followed[1]) < args.seconds / 4:
        fail(f"fewer than {args.seconds / 4} processes followed: {followed and followed[0]}")
    if luachecks < 10:
        fail(f"only {luachecks} lua5.1 (luacheck) processes in the per-process summary")
    distinct, drains, cpu_share, rss = own_cost(err)
    if distinct != len(stacks):
        fail(f"the summary says {distinct} distinct folded stacks, the file has {len(stacks)}")
    if drains < args.seconds / 2:
        fail(f"kernel maps drained {drains} times in {args.seconds} s")
    if rss <= 0 or rss > RSS_LIMIT_MIB:
        fail(f"peak RSS {rss} MiB (limit {RSS_LIMIT_MIB})")
    if cpu_share > OWN_CPU_LIMIT:
        fail(f"lua-perf used {cpu_share:.1%} of one CPU while sampling")
    lua, unnamed = lua_samples(stacks)
    log(f"{lua} samples with Lua frames, {unnamed} of them with an unnamed Lua frame")
    if lua < 0.5 * samples or unnamed > UNNAMED_LIMIT * lua:
        fail(f"{unnamed} of {lua} Lua samples have an unnamed Lua frame (want < "
             f"{UNNAMED_LIMIT:.0%}), "
             f"{samples} samples in all")


def lua_children(err, comm):
    procs, rest = process_summary(err)
    if rest >= SHORT_MIN:
        fail(f"the per-process summary left out processes with {rest} samples: a child?")
    return {pid: n for pid, (n, c) in procs.items() if c == comm}


def case_short_child(args, tmp):
    burn = write_file(tmp, "burn.lua", BURN_LUA)
    child = Child(["sh", "-c", f"while :; do sleep 0.4; lua5.4 {burn} {SHORT_BURN_S}; done"])
    try:
        out = os.path.join(tmp, "short.fold")
        prof = Profiler(args, [child.pid], 5, out)
        rc, _, err = prof.finish()
    finally:
        child.close()
    check_exit(rc, err, args)
    counts = sorted(lua_children(err, "lua5.4").values())
    log(f"samples of each lua5.4 child: {counts}")
    inside = [n for n in counts if SHORT_MIN <= n <= SHORT_MAX]
    if len(inside) < 5 or len(counts) - len(inside) > 2:
        fail(f"lua5.4 children with {SHORT_MIN}..{SHORT_MAX} samples: {len(inside)} of "
             f"{len(counts)} (want >= 5, all but the two at the run's edges): {counts}")
    stacks = parse_fold(out)
    if not any(f.startswith("L:burn@") for frames, _ in stacks for f in frames):
        fail("no sample names the Lua function burn")
    top = max(c for _, c in stacks)
    log(f"the most common stack has {top} samples")
    if top <= max(counts):
        fail(f"no stack has more samples than the busiest child ({max(counts)}): the same stack "
             "in several processes is not one line")


def run_lua_perf(args, argv, stdin=subprocess.DEVNULL, input_text=None, env=None, timeout=60):
    full = [args.lua_perf] + argv
    log("$ " + " ".join(full))
    res = subprocess.run(full, input=input_text, stdin=None if input_text else stdin,
                         capture_output=True, text=True, env=env, timeout=timeout,
                         preexec_fn=die_with_parent)
    log(f"exit {res.returncode}; stderr:")
    for line in res.stderr.rstrip("\n").split("\n"):
        log("  | " + line)
    return res


def command_run(args, tmp, command):
    """lua-perf -- COMMAND an-arg, COMMAND running COMMAND_LUA: see the module's docstring."""
    out = os.path.join(tmp, "cmd.fold")
    env = dict(os.environ, LP_TEST_VAR="passed-through")
    res = run_lua_perf(args, ["-f", str(FREQ), "-o", out, "--"] + command + ["an-arg"],
                       input_text="from-stdin\n", env=env)
    if res.returncode != 3:
        fail(f"exit status {res.returncode}, want the command's 3")
    want = "arg=an-arg env=passed-through stdin=from-stdin"
    if res.stdout.strip() != want:
        fail(f"the command's stdout {res.stdout!r}, want {want!r}")
    stacks = parse_fold(out)
    first = sum(c for frames, c in stacks if any(f.startswith("L:first_fn@") for f in frames))
    second = sum(c for frames, c in stacks if any(f.startswith("L:second_fn@") for f in frames))
    unpublished = sum(c for frames, c in stacks
                      if frames == ("[no stack]",) or all(f.endswith("_[k]") for f in frames))
    log(f"first_fn {first} samples, second_fn {second}, {unpublished} without a user frame")
    if second < 0.8 * COMMAND_BURN_S * FREQ:
        fail(f"second_fn has {second} samples for {COMMAND_BURN_S} s of CPU")
    if unpublished > MAX_UNPUBLISHED:
        fail(f"{unpublished} samples without a user frame: CMD's mappings were published late")
    if first < FIRST_SHARE * second:
        fail(f"first_fn has {first} samples with its whole stack, second_fn {second}: the start "
             "was not sampled, or not unwound")


def case_command(args, tmp):
    script = write_file(tmp, "cmd.lua", COMMAND_LUA.replace("BURN_SECONDS", str(COMMAND_BURN_S)))
    command_run(args, tmp, ["lua5.4", script])


def case_command_script(args, tmp):
    text = "#!/usr/bin/env lua5.4\n" + COMMAND_LUA.replace("BURN_SECONDS", str(COMMAND_BURN_S))
    script = write_file(tmp, "cmd-script", text)
    os.chmod(script, 0o755)
    command_run(args, tmp, [script])


def case_command_quick(args, tmp):
    for cmd, want in (("true", 0), ("false", 1)):
        out = os.path.join(tmp, f"{cmd}.fold")
        res = run_lua_perf(args, ["-o", out, "--", cmd])
        if res.returncode != want:
            fail(f"-- {cmd}: exit status {res.returncode}, want {want}")
        if not os.path.exists(out):
            fail(f"-- {cmd}: no output file {out}")
        parse_fold(out)
        if not re.search(rf"^lua-perf: {cmd} exited \(status {want}\)$", res.stderr, re.M):
            fail(f"-- {cmd}: stderr does not say how it exited")


def case_command_errors(args, tmp):
    for cmd, want, reason in (("/nonexistent/lua-perf-test", 127, "No such file"),
                              ("/etc/passwd", 126, "Permission denied")):
        out = os.path.join(tmp, "never.fold")
        res = run_lua_perf(args, ["-o", out, "--", cmd, "x"])
        if res.returncode != want:
            fail(f"-- {cmd}: exit status {res.returncode}, want {want}")
        errors = [line for line in res.stderr.split("\n") if "error" in line]
        if len(errors) != 1 or cmd not in errors[0] or reason not in errors[0]:
            fail(f"-- {cmd}: want one error line naming it and {reason!r}: {res.stderr!r}")
        if os.path.exists(out):
            fail(f"-- {cmd}: the output file was created although nothing ran")
    for argv, what in ((["dump", "--", "true"], "not a command"),
                       (["-p", str(os.getpid()), "--", "true"], "not both"),
                       (["--"], "no command")):
        res = run_lua_perf(args, argv)
        if res.returncode != 2 or what not in res.stderr:
            fail(f"{argv}: exit {res.returncode}, stderr {res.stderr!r}; want 2 and {what!r}")


def interrupted_run(args, tmp, name, send):
    out = os.path.join(tmp, f"{name}.fold")
    argv = [args.lua_perf, "-o", out, "--", "sleep", "100"]
    log("$ " + " ".join(argv))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        sleep_pid = wait_for_child(proc.pid, "sleep")
        send(proc.pid)
        _, err = proc.communicate(timeout=PROFILER_GRACE)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log(f"exit {proc.returncode}; stderr: {err[-1500:]!r}")
    if os.path.exists(f"/proc/{sleep_pid}") and "sleep" in open(f"/proc/{sleep_pid}/comm").read():
        fail("the command outlived lua-perf")
    if not os.path.exists(out):
        fail(f"no output file after the interruption ({name})")
    return proc.returncode, err


def wait_for_child(ppid, comm, timeout=20):
    """PID of ppid's child running comm, once lua-perf has started it (after its BPF loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for tid in os.listdir(f"/proc/{ppid}/task"):
            try:
                children = open(f"/proc/{ppid}/task/{tid}/children").read().split()
            except OSError:
                continue
            for pid in children:
                try:
                    if open(f"/proc/{pid}/comm").read().strip() == comm:
                        time.sleep(0.5)  # sampling has started; let it run a little
                        return int(pid)
                except OSError:
                    pass
        time.sleep(0.05)
    fail(f"lua-perf did not start {comm} within {timeout} s")


def case_interrupt(args, tmp):
    rc, err = interrupted_run(args, tmp, "sigint", lambda pid: os.killpg(pid, signal.SIGINT))
    if rc != 128 + signal.SIGINT:
        fail(f"Ctrl-C: exit status {rc}, want {128 + signal.SIGINT} (sleep killed by SIGINT)")
    rc, err = interrupted_run(args, tmp, "sigterm", lambda pid: os.kill(pid, signal.SIGTERM))
    if rc != 128 + signal.SIGTERM:
        fail(f"SIGTERM to lua-perf: exit status {rc}, want {128 + signal.SIGTERM} (passed on)")


CASES = {
    "churn": case_churn,
    "short_child": case_short_child,
    "command": case_command,
    "command_script": case_command_script,
    "command_quick": case_command_quick,
    "command_errors": case_command_errors,
    "interrupt": case_interrupt,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lua-perf", required=True)
    ap.add_argument("--seconds", type=int, default=120, help="length of the churn run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    args.use_perf = False
    status = cannot_profile(args)
    if status is not None:
        return status
    return run_case(CASES[args.case], args, f"lua-perf-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
