#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lua-perf -p PID follows the process and all its descendants (tests/fixtures/native/fixture_fork.c).

    process_tree_test.py --lua-perf BIN --fixture fixture_fork fork|many|gone

fork: fixture_fork's parent has a child and (through a "middle" process) a grandchild burning
  CPU in burn_early; lua-perf -p <parent> -d 5; 1 s after lua-perf opened its perf events the
  test makes the parent fork a late child burning in burn_late. Asserted:
    - stderr says every descendant joined, with the right parent (the late one too);
    - the per-process summary lists the child, the grandchild and the late child, each named
      fixture_fork, with >= 400 / 400 / 200 samples; the parent and the middle process (both
      blocked) have < 2% of the child's;
    - the stacks are exact (>= 99% of hot samples, as in native_profile_test.py):
      _start;...;main;start_early;spawn_child{1,2};burn_early and
      _start;...;main;serve_requests;spawn_child;burn_late (a forked child returns from fork()
      into its parent's frames);
    - the summary agrees with the stacks: only the child runs burn_early under one spawn_child,
      only the grandchild under two, only the late child runs burn_late: each process's count in
      the summary is within 5% of the hot samples of its own chain.
many: the parent forks 20 late children before lua-perf -p <parent> -d 2 starts (22 burners):
  the summary lists exactly the 16 busiest, sorted, then "+N more processes: M samples"; listed
  + M = the total; 22 to 24 processes have samples (the parent and the middle may), 24 are
  followed, and no PID outside the tree appears.
gone: lua-perf -p <parent> -d 30; 2 s after sampling started the test stops the fixture
  (SIGTERM: every process stops and reaps its children) but does not reap the parent, which
  stays a zombie. lua-perf must end by itself within 10 s of that, exit 0, say every process
  exited, and still write the summary (child and grandchild with >= 150 samples) and exact
  burn_early stacks.

Exit status: 0 pass, 1 fail, 77 skipped (not root).
"""
import argparse
import contextlib
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import profiling  # noqa: E402
from pylib.chains import check_chains, exact, MAIN_PREFIX, one, some  # noqa: E402
from pylib.folded import parse_fold, user_part  # noqa: E402
from pylib.profiling import (  # noqa: E402
    check_exit, Child, joined_lines, need_info, process_summary, Profiler)
from pylib.report import fail, log  # noqa: E402

FORK_DURATION = 5
LATE_AFTER = 1.0      # seconds after lua-perf attached
# Modest minimums: other test suites may share the 2 cores; the agreement between the summary
# and the stacks is the sharp check.
MIN_EARLY = 400
MIN_LATE = 200
MIN_GONE = 150        # per burner, 2 s of sampling
AGREEMENT = 0.05      # summary vs stacks, per process
MANY_LATE = 20        # late children of the "many" case
PROCESS_LINES = 16    # processes the summary lists (output/summary.c)


def stop_fixture(child, reap=True):
    """SIGTERM the fixture's parent: it stops and reaps its descendants. reap=False leaves the
    parent a zombie (the test reaps it later through close())."""
    if child.proc.returncode is None:
        try:
            os.kill(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if reap:
        try:
            child.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - close() below kills what is left
            pass
        child.close()


def wait_gone(pids, timeout=10):
    """Until none of pids runs any more (gone or zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(proc_state(p) in (None, "Z") for p in pids):
            return
        time.sleep(0.05)
    fail(f"fixture processes {pids} still running {timeout} s after SIGTERM")


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def early_pids(child):
    return {k: int(need_info(child, k)) for k in ("child", "middle", "grandchild")}


class Fixture:
    """fixture_fork running (child: its parent) with its early pids, and the profiler (prof)
    once one is started."""

    def __init__(self, args):
        self.args = args
        self.child = Child([args.fixture], stdin=True)
        self.pids = None
        self.prof = None

    def profile(self, duration, out, attached=True):
        """lua-perf -p <parent> -d duration; attached: wait until its perf events are open."""
        self.prof = Profiler(self.args, [self.child.pid], duration, out)
        if attached and not self.prof.wait_attached():
            log("warning: no perf_event fd seen in the profiler within 15 s; going on")
        return self.prof


@contextlib.contextmanager
def fork_fixture(args):
    """A Fixture once it is ready; on the way out the profiler is killed and the fixture stopped
    and reaped, whatever happened."""
    fx = Fixture(args)
    try:
        fx.child.wait_for("ready")
        fx.pids = early_pids(fx.child)
        yield fx
    finally:
        if fx.prof:
            fx.prof.kill()
        stop_fixture(fx.child)


def read_late_pid(child):
    line = child.read_line(timeout=5)
    if line is None or not line.startswith("late "):
        fail(f"fixture_fork did not report its late child: {line!r}")
    return int(line.split()[1])


def early_chain():
    return [one(exact("main")), one(exact("start_early")), some(exact("spawn_child"), 1, 2),
            one(exact("burn_early"))]


def hot_by_depth(stacks, leaf):
    """{number of spawn_child frames: samples} of the stacks whose user leaf is `leaf`."""
    out = {}
    for f, c in stacks:
        u = user_part(f)
        if u and u[-1] == leaf:
            d = u.count("spawn_child")
            out[d] = out.get(d, 0) + c
    return out


def check_joined(err, expected):
    """expected: {pid: parent pid}; every one must have a "joined" line naming fixture_fork."""
    joined = joined_lines(err)
    for pid, parent in expected.items():
        if pid not in joined:
            fail(f"no 'PID {pid} (...) joined' line on stderr; joined: {joined}")
        if joined[pid] != ("fixture_fork", parent):
            fail(f"PID {pid} joined as {joined[pid]}, want ('fixture_fork', {parent})")


def check_counts(procs, want):
    """want: {label: (pid, minimum)}: each in the summary, named fixture_fork, >= minimum."""
    for label, (pid, minimum) in want.items():
        if pid not in procs:
            fail(f"{label} (PID {pid}) not in the per-process summary: {procs}")
        samples, comm = procs[pid]
        log(f"  {label} PID {pid}: {samples} samples ({comm})")
        if comm != "fixture_fork" or samples < minimum:
            fail(f"{label} PID {pid}: {samples} samples as {comm!r}; want >= {minimum} as "
                 "'fixture_fork'")


def check_agreement(label, summary_count, stack_count):
    log(f"  {label}: {summary_count} samples in the summary, {stack_count} in its own chain")
    if abs(summary_count - stack_count) > AGREEMENT * max(summary_count, 1):
        fail(f"{label}: the summary says {summary_count} samples, its stacks hold {stack_count}")


def case_fork(args, tmp):
    out = os.path.join(tmp, "out.fold")
    with fork_fixture(args) as fx:
        child, pids = fx.child, fx.pids
        prof = fx.profile(FORK_DURATION, out)
        time.sleep(LATE_AFTER)
        child.send("spawn\n")
        late = read_late_pid(child)
        log(f"parent {child.pid}, {pids}, late child {late} forked "
            f"{time.monotonic() - prof.start_time:.1f} s after lua-perf started")
        rc, _, err = prof.finish()
        check_exit(rc, err, args)
        if child.proc.poll() is not None:
            fail(f"fixture_fork exited during profiling with {child.proc.returncode}")

    check_joined(err, {pids["child"]: child.pid, pids["middle"]: child.pid,
                       pids["grandchild"]: pids["middle"], late: child.pid})
    procs, _ = process_summary(err)
    check_counts(procs, {"child": (pids["child"], MIN_EARLY),
                         "grandchild": (pids["grandchild"], MIN_EARLY),
                         "late child": (late, MIN_LATE)})
    for label in ("middle", "parent"):
        pid = pids["middle"] if label == "middle" else child.pid
        n = procs.get(pid, (0, ""))[0]
        if n > 0.02 * procs[pids["child"]][0]:
            fail(f"the {label} (PID {pid}) waits, yet has {n} samples")

    stacks = parse_fold(out)
    check_chains(stacks, exact("burn_early"), MAIN_PREFIX, early_chain(), 2 * MIN_EARLY,
                 "child + grandchild")
    late_chain = [one(exact("main")), one(exact("serve_requests")), one(exact("spawn_child")),
                  one(exact("burn_late"))]
    check_chains(stacks, exact("burn_late"), MAIN_PREFIX, late_chain, MIN_LATE, "late child")
    early = hot_by_depth(stacks, "burn_early")
    late_hot = hot_by_depth(stacks, "burn_late")
    check_agreement("child", procs[pids["child"]][0], early.get(1, 0))
    check_agreement("grandchild", procs[pids["grandchild"]][0], early.get(2, 0))
    check_agreement("late child", procs[late][0], late_hot.get(1, 0))


def case_gone(args, tmp):
    out = os.path.join(tmp, "out.fold")
    with fork_fixture(args) as fx:
        child, pids = fx.child, fx.pids
        prof = fx.profile(30, out)
        time.sleep(2)
        stop_fixture(child, reap=False)
        stopped = time.monotonic()
        wait_gone(list(pids.values()) + [child.pid])
        rc, _, err = prof.finish(timeout=40)
        ended = time.monotonic() - stopped
        state = proc_state(child.pid)
        log(f"lua-perf ended {ended:.1f} s after the fixture was stopped; its root is in "
            f"state {state}")
        if state != "Z":
            fail(f"the root {child.pid} should still be an unreaped zombie, state {state}")
        check_exit(rc, err, args)
        if ended > 10:
            fail(f"lua-perf ran on {ended:.1f} s after its whole process tree had exited")

    if "all target processes exited" not in err:
        fail("lua-perf did not say that all target processes exited")
    for pid in list(pids.values()) + [child.pid]:
        if f"lua-perf: PID {pid} (fixture_fork) exited" not in err:
            fail(f"no 'PID {pid} (fixture_fork) exited' line on stderr")
    procs, _ = process_summary(err)
    check_counts(procs, {"child": (pids["child"], MIN_GONE),
                         "grandchild": (pids["grandchild"], MIN_GONE)})
    check_chains(parse_fold(out), exact("burn_early"), MAIN_PREFIX, early_chain(), 2 * MIN_GONE,
                 "child + grandchild")


def case_many(args, tmp):
    """More processes with samples than the summary lists: the busiest PROCESS_LINES, sorted,
    then "+N more processes: M samples", and the numbers add up to the total."""
    out = os.path.join(tmp, "out.fold")
    with fork_fixture(args) as fx:
        child, pids = fx.child, fx.pids
        child.send("spawn\n" * MANY_LATE)
        late = [read_late_pid(child) for _ in range(MANY_LATE)]
        rc, _, err = fx.profile(2, out, attached=False).finish()
        check_exit(rc, err, args)
    burners = [pids["child"], pids["grandchild"]] + late
    procs, rest = process_summary(err)
    m = re.search(r"^lua-perf: (\d+) samples in ", err, re.M)
    followed = re.search(r"^lua-perf: (\d+) processes followed", err, re.M)
    more = re.search(r"^  \+(\d+) more processes: \d+ samples$", err, re.M)
    if not m or not followed or not more:
        fail("no total samples, processes followed or '+N more' line on stderr")
    total = int(m[1])
    counts = [n for n, _ in procs.values()]
    with_samples = len(procs) + int(more[1])
    log(f"  {len(procs)} processes listed + {more[1]} more ({rest} samples); total {total}; "
        f"{followed[1]} followed")
    if len(procs) != PROCESS_LINES:
        fail(f"{len(procs)} processes listed, want {PROCESS_LINES} (then '+N more')")
    if counts != sorted(counts, reverse=True):
        fail(f"the per-process summary is not sorted by samples: {counts}")
    if sum(counts) + rest != total:
        fail(f"listed {sum(counts)} + more {rest} != total {total}")
    # Every burner has samples; the parent and the middle process may or may not.
    if not len(burners) <= with_samples <= len(burners) + 2:
        fail(f"{with_samples} processes with samples, want {len(burners)} to {len(burners) + 2}")
    if int(followed[1]) != len(burners) + 2:
        fail(f"{followed[1]} processes followed, want {len(burners) + 2}")
    listed = set(procs) - set(burners) - {child.pid, pids["middle"]}
    if listed:
        fail(f"the summary lists PIDs {sorted(listed)} that are not in the tree")


CASES = {"fork": case_fork, "gone": case_gone, "many": case_many}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", required=True, help="path of the lua-perf binary")
    ap.add_argument("--fixture", required=True, help="fixture_fork")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False  # the shared helpers ask
    status = profiling.cannot_profile(args)
    if status is not None:
        return status
    return profiling.run_case(CASES[args.case], args, f"lua-perf-tree-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
