#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Profiling processes that run in a container, from the host: lua-perf -p HOSTPID on a process
with its own PID and mount namespace and its own root directory (no container engine: util-linux
`unshare` and a root filesystem this test builds).

    container_profile_test.py rootfs --root DIR
    container_profile_test.py --lua-perf BIN --root DIR lua54 [--relative] [--minimal-caps]
    container_profile_test.py --lua-perf BIN --root DIR nginx
    container_profile_test.py --lua-perf BIN pidns

rootfs (the ctest fixture container_rootfs): DIR becomes a minimal root filesystem, copied from
  this host: /usr/bin/lua5.4, nginx with Debian's ngx_lua (ndk and lua modules), OpenResty's
  libluajit2, lua-resty-core and lua-resty-lrucache (/usr/share/lua/5.1), every library `ldd`
  lists for them, the merged-/usr top-level links, /etc/passwd and /etc/group (nobody, nogroup:
  nginx's workers), empty /proc, /dev, /tmp. Copied once: a stamp lists every source file with
  its size and mtime, and the copy is redone only when that list changes.

Every profiling case makes a directory CT = /tmp/lua-perf-ct-XXXXXX that exists twice: in the
container (DIR/tmp/...) holding the real workload, and on the host holding DECOYS at the same
paths - other function names on the same lines, other binaries. lua-perf must read the
container's files, so any decoy name in the profile fails the test; so does any frame or message
path that starts with DIR or /proc/ (paths are shown as the container sees them).

lua54: `unshare --pid --mount --fork --mount-proc=DIR/proc chroot DIR lua5.4 CT/srv/app.lua
  CT/lib` (tests/fixtures/container/app.lua). chroot: /proc/PID/maps, read from the host, prints the
  container's files as DIR/... (the reader's root); lua-perf must show /usr/bin/lua5.4. The host
  PID is the child of `unshare`, checked through its NSpid line (`<host pid> 1`). Inside:
    - CT/srv is an absolute symlink to CT/app; on the host, CT/srv/app.lua and CT/app/app.lua are
      decoys: the script must be read inside the container's root, symlinks included;
    - CT/lib/ctnative.so (tests/fixtures/container/native_module.c, stripped) has its debug file under
      the container's /usr/lib/debug/.build-id/, an absolute symlink to CT/dbg/ctnative.debug;
      the host's CT/lib/ctnative.so and CT/dbg/ctnative.debug are another variant with the SAME
      build-id (other function names), accepted by lua-perf if it ever opened them;
    - CT/lib/ctlink.so (stripped, no build-id) names its debug file by .gnu_debuglink, in
      CT/lib/.debug/; found only from the container's path of the library (not DIR/CT/...).
  --relative: `unshare --pid --mount --fork --mount-proc --root=DIR --wd=CT lua5.4 srv/app.lua
  lib` instead: the chunk is the relative srv/app.lua, read from the process's working directory
  (DIR/CT from the host), still inside its root (srv is that absolute symlink).
  Profiled 4 s at 997 Hz; asserted: exit 0; >= 99% of the samples with user frames complete
  (lua5.4's _start, __libc_start_main, __libc_start_call_main, main); every Lua frame names a
  function of the container's script with its definition line and the chunk CT/srv/app.lua
  (srv/app.lua with --relative);
  and each of the three hot chains, >= 99% exactly (tests/pylib/lua_profile.py's matching):
    <start-up>;<lua5.4>*;luaV_execute;L:main;L:ct_workload;L:ct_lua_burn               >= 400
    ...;L:ct_workload;L:ct_native_caller;<lua5.4>*;ct_container_entry;ct_container_spin >= 200
    ...;L:ct_workload;L:ct_link_caller;<lua5.4>*;ct_linked_entry;ct_linked_spin         >= 200
  (the native names: the variants' -DNAME_PREFIX, checked with nm on the unstripped builds);
  lua-perf's stderr says `PID <host pid>: Lua 5.4.N in /usr/bin/lua5.4`.
  --minimal-caps: lua-perf runs with only CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_SYSLOG
  (setpriv --bounding-set): without CAP_SYS_ADMIN /proc/PID/map_files/ is closed, and the
  mapped files are opened by their container paths inside /proc/PID/root - where the host's
  CT/lib/*.so (unstripped decoys) would give decoy names. Same assertions.

nginx: `unshare --pid --mount --fork` running this script as the container's init (the hidden
  `init` mode): private mounts, DIR bind-mounted on itself, the host's /dev bound in,
  pivot_root into DIR, a /proc of the new PID namespace, the old root detached, then exec
  /usr/sbin/nginx (master + 2 workers, ngx_lua, tests/fixtures/nginx_lua/handler.lua as CT/nginx/lua/
  handler.lua; the host's CT/nginx/lua/handler.lua is a decoy). As with container engines, the
  container's files are then in another mount namespace, outside the host's tree. wrk loads it
  from the host (shared network namespace), lua-perf -p <master's host PID> samples 4 s.
  Asserted: exit 0; the workers (host PIDs, children of the master) are followed, >= 200
  samples each; the native
  chains and LuaJIT frames of tests/pylib/nginx.py (check_lua_native_chains,
  check_luajit_chains: handler functions fib, build_string, sort_records, by_key in place, under
  ngx_http_lua_run_thread;lj_vm, compiled frames seen), with the container's handler path;
  stderr names LuaJIT in /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2...

pidns: lua-perf itself inside `unshare --pid --fork --mount-proc` (its /proc numbers processes
  unlike BPF): exit 1 and one stderr line saying to run it in the host's PID namespace.

Exit status: 0 pass, 1 fail, 77 skipped (not root). Python 3 standard library, util-linux
(unshare, setpriv), coreutils (chroot), gcc, binutils (objcopy, strip, nm), pkg-config.
"""
import argparse
import collections
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import chains, folded, lua_profile, nginx, profiling, report  # noqa: E402
from pylib.chains import exact, one, some  # noqa: E402
from pylib.folded import parse_fold, top_stacks, user_part  # noqa: E402
from pylib.lua_profile import L  # noqa: E402
from pylib.nginx import NGINX, NGINX_MODULES  # noqa: E402
from pylib.paths import fixture  # noqa: E402
from pylib.profiling import Child, Profiler  # noqa: E402
from pylib.report import fail, log  # noqa: E402

LUA = "/usr/bin/lua5.4"
LUAJIT_LIBS = "/usr/lib/x86_64-linux-gnu"
ROOTFS_ELFS = [LUA, NGINX, f"{NGINX_MODULES}/ndk_http_module.so",
               f"{NGINX_MODULES}/ngx_http_lua_module.so"]
ROOTFS_TREES = ["/usr/share/lua/5.1"]  # lua-resty-core, lua-resty-lrucache
ROOTFS_TOP_LINKS = ["bin", "sbin", "lib", "lib64"]  # Debian 12's merged /usr: lib -> usr/lib
ROOTFS_DIRS = {"proc": 0o555, "dev": 0o755, "tmp": 0o1777, "etc": 0o755, ".oldroot": 0o700}
ROOTFS_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
}
ROOTFS_VERSION = 1   # bump when the layout above changes
STAMP = ".lua-perf-rootfs.json"

MODULE_SRC = fixture("container", "native_module.c")
APP_SRC = fixture("container", "app.lua")
DURATION = 4
MIN_HOT_LUA = 400      # of ~2000 samples: half of 4 s at 997 Hz (fewer on a loaded machine)
MIN_HOT_NATIVE = 200   # of ~1000: a quarter each
NGINX_DURATION = 4
WRK_MAX_SECONDS = 120  # stopped (SIGINT) as soon as lua-perf exits
MINIMAL_CAPS = "-all,+bpf,+perfmon,+sys_ptrace,+syslog"

# The module variants: (module, name prefix). The container's are the real ones.
CONTAINER_NATIVE = ("ctnative", "ct_container_")
HOST_NATIVE = ("ctnative", "ct_host_")
CONTAINER_LINK = ("ctlink", "ct_linked_")
HOST_LINK = ("ctlink", "ct_hostlink_")
DECOY_PREFIX = "host_decoy_"  # Lua decoys: every function name gets it
DECOY_MARKS = ("ct_host", DECOY_PREFIX)


# --------------------------------------------------------------------------------------------
# The root filesystem


def ldd_dependencies(path):
    """Absolute paths of the libraries (and the ELF interpreter) `ldd` lists for path."""
    out = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         check=True).stdout.decode(errors="replace")
    return re.findall(r"(/\S+) \(0x[0-9a-f]+\)", out)


def rootfs_sources():
    """Every host file the root filesystem copies (symlinks as themselves), sorted."""
    for path in ROOTFS_ELFS:
        if not os.path.exists(path):
            fail(f"{path} not found: the project's install script installs lua5.4, nginx-light, "
                 "libnginx-mod-http-ndk, libnginx-mod-http-lua and lua-resty-core")
    files = set()
    for path in ROOTFS_ELFS:
        files.add(path)
        files.update(ldd_dependencies(path))
    for tree in ROOTFS_TREES:
        if not os.path.isdir(tree):
            fail(f"{tree} not found (Debian packages lua-resty-core, lua-resty-lrucache)")
        for dirpath, _, names in os.walk(tree):
            files.update(os.path.join(dirpath, n) for n in names)
    return sorted(files)


def install_host_file(root, path, done):
    """Copies host file `path` to the same path under root: its directory resolved (so /lib/x is
    written as usr/lib/x, reached through root's own lib link), a symlink as a symlink plus its
    target."""
    real_dir = os.path.realpath(os.path.dirname(path))
    src = os.path.join(real_dir, os.path.basename(path))
    if src in done:
        return
    done.add(src)
    dst = root + src
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.islink(src):
        target = os.readlink(src)
        os.symlink(target, dst)
        install_host_file(root, target if target.startswith("/")
                          else os.path.join(real_dir, target), done)
    else:
        shutil.copy2(src, dst)


def rootfs_manifest(sources):
    entries = []
    for path in sources:
        st = os.lstat(path)
        entries.append([path, st.st_size, st.st_mtime_ns])
    return {"version": ROOTFS_VERSION, "files": entries}


def build_rootfs(root):
    """Builds root (see the module docstring) unless an up-to-date copy is there."""
    sources = rootfs_sources()
    manifest = rootfs_manifest(sources)
    stamp = os.path.join(root, STAMP)
    try:
        with open(stamp) as f:
            if json.load(f) == manifest:
                log(f"{root}: up to date ({len(sources)} files)")
                return
    except (OSError, ValueError):
        pass
    staging = root + ".new"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    os.chmod(staging, 0o755)
    for name in ROOTFS_TOP_LINKS:
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), os.path.join(staging, name))
    for name, mode in ROOTFS_DIRS.items():
        os.makedirs(os.path.join(staging, name), exist_ok=True)
        os.chmod(os.path.join(staging, name), mode)
    for name, text in ROOTFS_FILES.items():
        with open(os.path.join(staging, name), "w") as f:
            f.write(text)
    done = set()
    for path in sources:
        install_host_file(staging, path, done)
    # The container's own ld.so.cache (ldconfig -r: the libraries under staging, as there).
    subprocess.run(["ldconfig", "-r", staging], check=True)
    with open(os.path.join(staging, STAMP), "w") as f:
        json.dump(manifest, f)
    shutil.rmtree(root, ignore_errors=True)
    os.rename(staging, root)
    log(f"{root}: built from {len(sources)} host files")


def case_rootfs(args):
    build_rootfs(os.path.abspath(args.root))
    # The copy runs: each ELF's libraries resolve inside root.
    for exe, argv in ((LUA, [LUA, "-v"]), (NGINX, [NGINX, "-v"])):
        res = subprocess.run(["chroot", args.root] + argv, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        out = res.stdout.decode(errors="replace").strip()
        log(f"chroot {args.root} {' '.join(argv)}: exit {res.returncode}: {out}")
        if res.returncode != 0:
            fail(f"{exe} does not run inside {args.root}: {out!r}")


# --------------------------------------------------------------------------------------------
# Containers: the init of the pivot_root container, host PIDs


MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000          # include/uapi/linux/mount.h
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155                                            # x86_64 syscall table


def container_init(root, argv):
    """PID 1 of the nginx container (run by `unshare --pid --mount --fork`): as a container
    engine does, pivot_root into root, so that the host's tree is no longer reachable; then exec
    argv. Never returns."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(what, rc):
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"container init: {what}: {os.strerror(err)}")

    broot = root.encode()
    check("make / private", libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))
    check("bind the root", libc.mount(broot, broot, None, MS_BIND | MS_REC, None))
    check("bind /dev", libc.mount(b"/dev", broot + b"/dev", None, MS_BIND | MS_REC, None))
    os.chdir(root)
    check("pivot_root", libc.syscall(SYS_PIVOT_ROOT, b".", b".oldroot"))
    os.chdir("/")
    check("mount /proc", libc.mount(b"proc", b"/proc", b"proc",
                                    MS_NOSUID | MS_NODEV | MS_NOEXEC, None))
    check("detach the old root", libc.umount2(b"/.oldroot", MNT_DETACH))
    os.execv(argv[0], argv)


def ns_pids(pid):
    """The NSpid line of /proc/PID/status: the PID in each namespace, the host's first."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def container_pid1(unshare, comm, timeout=10):
    """The host PID of the container's first process: the child `unshare --fork` started,
    once it runs `comm`, checked to be PID 1 of a PID namespace and of a mount namespace that
    are not ours."""
    deadline = time.monotonic() + timeout
    while True:
        kids = nginx.children_of(unshare.pid)
        if len(kids) == 1:
            try:
                with open(f"/proc/{kids[0]}/comm") as f:
                    if f.read().strip() == comm:
                        break
            except OSError:
                pass
        if time.monotonic() > deadline or unshare.proc.poll() is not None:
            fail(f"unshare (PID {unshare.pid}) has no child running {comm} after {timeout} s: "
                 f"children {kids}")
        time.sleep(0.05)
    pid = kids[0]
    nspid = ns_pids(pid)
    log(f"container PID 1 = host PID {pid} (NSpid: {nspid})")
    if len(nspid) < 2 or nspid[0] != pid or nspid[-1] != 1:
        fail(f"PID {pid}: NSpid {nspid}, want [{pid}, ..., 1]")
    for ns in ("pid", "mnt"):
        if os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}"):
            fail(f"PID {pid} shares our {ns} namespace")
    return pid


# --------------------------------------------------------------------------------------------
# The per-run directory, in the container and on the host


class CtDir:
    """CT = /tmp/lua-perf-ct-XXXXXX, created both under root (the container's) and on the host
    (the decoys'); removed from both, with anything else registered in `extra`."""

    def __init__(self, root):
        self.root = root
        inner = tempfile.mkdtemp(prefix="lua-perf-ct-", dir=os.path.join(root, "tmp"))
        self.path = "/tmp/" + os.path.basename(inner)
        self.extra = []  # container paths to remove (files, symlinks), innermost dirs after
        try:
            os.mkdir(self.path)
        except FileExistsError:
            shutil.rmtree(inner)
            fail(f"{self.path} exists on the host: a previous run left it")
        for d in (inner, self.path):
            os.chmod(d, 0o755)  # nginx's workers (nobody) read the handler

    def ct(self, rel=""):
        """Container path of rel."""
        return os.path.join(self.path, rel) if rel else self.path

    def inside(self, path):
        """Where the host writes the container's `path`."""
        return self.root + path

    def write(self, path, data, host=False, mode=0o644):
        """Writes container path `path` (host=True: the host's file at that path)."""
        real = path if host else self.inside(path)
        os.makedirs(os.path.dirname(real), mode=0o755, exist_ok=True)
        with open(real, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.chmod(real, mode)

    def copy(self, src, path, host=False):
        with open(src, "rb") as f:
            self.write(path, f.read(), host=host)

    def symlink(self, target, path, host=False):
        real = path if host else self.inside(path)
        os.makedirs(os.path.dirname(real), exist_ok=True)
        os.symlink(target, real)
        if not host and not path.startswith(self.path + "/"):
            self.extra.append(path)

    def close(self):
        for path in self.extra:
            real = self.inside(path)
            try:
                os.unlink(real)
            except FileNotFoundError:
                pass
            d = os.path.dirname(path)  # empty directories the test created, up to usr/lib
            while d not in ("/usr/lib", "/usr", "/") and not os.listdir(self.inside(d)):
                os.rmdir(self.inside(d))
                d = os.path.dirname(d)
        shutil.rmtree(self.inside(self.path), ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The C modules


def lua54_cflags():
    res = subprocess.run(["pkg-config", "--cflags", "lua5.4"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    if res.returncode != 0:
        fail("pkg-config lua5.4 failed: the project's install script installs liblua5.4-dev")
    return res.stdout.decode().split()


def run(argv):
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        fail(f"$ {' '.join(argv)}: exit {res.returncode}: {res.stdout.decode(errors='replace')}")
    return res.stdout.decode(errors="replace")


def function_symbols(path):
    """Names of the function symbols of path's .symtab (nm --defined-only)."""
    out = run(["nm", "--defined-only", path]) if os.path.getsize(path) else ""
    return {line.split()[2] for line in out.splitlines()
            if len(line.split()) == 3 and line.split()[1] in "tT"}


def build_module(work, variant, build_id):
    """Compiles one variant into work: returns (unstripped .so, its debug file). build_id: a hex
    string (the same for the variants that must look alike) or "none"."""
    module, prefix = variant
    out = os.path.join(work, f"{prefix}{module}.so")
    run(["gcc", "-O2", "-g", "-fPIC", "-shared", "-Wall", "-Wextra"] + lua54_cflags()
        + [f"-DMODULE={module}", f"-DNAME_PREFIX={prefix}",
           f"-Wl,--build-id={'none' if build_id == 'none' else '0x' + build_id}",
           "-o", out, MODULE_SRC])
    names = function_symbols(out)
    for fn in ("entry", "spin"):
        if prefix + fn not in names:
            fail(f"{out}: no function {prefix}{fn} (nm): {sorted(names)}")
    debug = out + ".debug"
    run(["objcopy", "--only-keep-debug", out, debug])
    return out, debug


def stripped_copy(src, dst, debuglink=None):
    """strip --strip-all src -> dst; with debuglink, a .gnu_debuglink to that file added (its
    base name and CRC32)."""
    run(["strip", "--strip-all", "-o", dst, src])
    if debuglink:
        linked = dst + ".linked"
        run(["objcopy", f"--add-gnu-debuglink={debuglink}", dst, linked])
        os.replace(linked, dst)
    left = function_symbols(dst) if ".symtab" in run(["objdump", "-h", dst]) else set()
    if left:
        fail(f"{dst}: symbols left after strip: {sorted(left)}")


def decoy_lua(text, names):
    """The script with every function name in `names` prefixed: same lines, other names."""
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name)}\b", DECOY_PREFIX + name, text)
    return text


def setup_lua54(ct, work):
    """The lua54 case's files in the container and the decoys on the host (module docstring).
    Returns (chunk as the script is run, the container's script text)."""
    build_id = os.urandom(20).hex()
    # ctnative: by build-id, through an absolute symlink in the container's /usr/lib/debug.
    real_so, real_dbg = build_module(work, CONTAINER_NATIVE, build_id)
    decoy_so, decoy_dbg = build_module(work, HOST_NATIVE, build_id)
    stripped = os.path.join(work, "ctnative.so")
    stripped_copy(real_so, stripped)
    ct.copy(stripped, ct.ct("lib/ctnative.so"))
    ct.copy(real_dbg, ct.ct("dbg/ctnative.debug"))
    ct.symlink(ct.ct("dbg/ctnative.debug"),
               f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug")
    ct.copy(decoy_so, ct.ct("lib/ctnative.so"), host=True)
    ct.copy(decoy_dbg, ct.ct("dbg/ctnative.debug"), host=True)
    # ctlink: by .gnu_debuglink, next to the library in .debug/.
    real_so, real_dbg = build_module(work, CONTAINER_LINK, "none")
    decoy_so, decoy_dbg = build_module(work, HOST_LINK, "none")
    linkdbg = os.path.join(work, "ctlink.so.debug")
    shutil.copyfile(real_dbg, linkdbg)
    stripped = os.path.join(work, "ctlink.so")
    stripped_copy(real_so, stripped, debuglink=linkdbg)
    ct.copy(stripped, ct.ct("lib/ctlink.so"))
    ct.copy(linkdbg, ct.ct("lib/.debug/ctlink.so.debug"))
    ct.copy(decoy_so, ct.ct("lib/ctlink.so"), host=True)
    ct.copy(decoy_dbg, ct.ct("lib/.debug/ctlink.so.debug"), host=True)
    # The script: CT/srv -> CT/app in the container; decoys at both paths on the host.
    with open(APP_SRC) as f:
        text = f.read()
    decoy = decoy_lua(text, lua_profile.script_definitions(text))
    if lua_profile.script_definitions(decoy).keys() & lua_profile.script_definitions(text).keys():
        fail("the decoy script shares function names with the real one")
    ct.write(ct.ct("app/app.lua"), text)
    ct.symlink(ct.ct("app"), ct.ct("srv"))
    ct.write(ct.ct("app/app.lua"), decoy, host=True)
    ct.write(ct.ct("srv/app.lua"), decoy, host=True)
    return ct.ct("srv/app.lua"), text


# --------------------------------------------------------------------------------------------
# Checks


def check_container_paths(stacks, err, root):
    """No frame and no lua-perf message shows a path as the host sees the container's files
    (under root, or through /proc/PID/root), and no frame carries a decoy's name."""
    bad = collections.Counter()
    for frames, count in stacks:
        for fr in frames:
            if root in fr or "/proc/" in fr or any(m in fr for m in DECOY_MARKS):
                bad[fr] += count
    if bad:
        fail("frames with host paths or decoy names:\n"
             + "\n".join(f"  {c:7d}  {fr}" for fr, c in bad.most_common(10)))
    for line in err.split("\n"):
        if root in line or re.search(r"/proc/\d+/root", line):
            fail(f"lua-perf's message shows a host path: {line!r}")


def check_runtime_line(err, pid, pattern, what):
    """lua-perf's `PID <pid>: <runtime> in <path>` line names the container's path."""
    lines = [line for line in err.split("\n") if re.match(rf"lua-perf: PID {pid}: ", line)]
    log(f"runtime lines of PID {pid}: {lines}")
    if not any(re.fullmatch(rf"lua-perf: PID {pid}: {pattern}", line) for line in lines):
        fail(f"no stderr line 'PID {pid}: {pattern}' ({what}): {lines}")


def native_chain_check(ctx, stacks, caller, names, min_hot, label):
    """>= MIN_HOT samples whose leaf is names[-1], >= 99% of them exactly the start-up, the VM,
    L:main;L:ct_workload;L:<caller>, lua5.4 frames, then `names` (the module's functions)."""
    spec = ctx.chain_spec([L("main"), L("ct_workload"), L(caller)])
    spec += [some(ctx.vm_frame(), 0, 12)] + [one(exact(n)) for n in names]
    users = [(user_part(f), c) for f, c in stacks if user_part(f)]
    hot = [(f, c) for f, c in users if f[-1] == names[-1]]
    n_hot = sum(c for _, c in hot)
    ok = sum(c for f, c in hot if chains.full_match(f, spec))
    log(f"{label}: {n_hot} samples with leaf {names[-1]}, {ok} exactly {chains.spec_desc(spec)}")
    if n_hot < min_hot:
        module = [(f, c) for f, c in users if caller in ";".join(f)]
        fail(f"{label}: only {n_hot} samples end in {names[-1]} (want >= {min_hot}): is the "
             "container's debug file read?\n" + top_stacks(module, title=f"stacks under {caller}"))
    if ok < chains.MIN_SHARE * n_hot:
        bad = [(f, c) for f, c in hot if not chains.full_match(f, spec)]
        hints = [f"  {c:7d}  {chains.first_mismatch(f, spec)}\n           {folded.compress(f)}"
                 for f, c in sorted(bad, key=lambda s: -s[1])[:8]]
        fail(f"{label}: only {ok}/{n_hot} samples are exactly {chains.spec_desc(spec)}\n"
             + "\n".join(hints))


# --------------------------------------------------------------------------------------------
# Cases


def case_lua54(args, tmp):
    root = os.path.abspath(args.root)
    label = "lua5.4 in a chroot container" + (" (relative chunk)" if args.relative else "") \
        + (" (minimal capabilities)" if args.minimal_caps else "")
    ct = CtDir(root)
    child = prof = None
    try:
        chunk, text = setup_lua54(ct, tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUA_")}
        unshare = ["unshare", "--pid", "--mount", "--fork", "--kill-child"]
        if args.relative:  # unshare chroots itself, then mounts /proc and enters CT
            chunk = os.path.relpath(chunk, ct.ct())
            argv = unshare + ["--mount-proc", f"--root={root}", f"--wd={ct.ct()}", LUA, chunk,
                              "lib"]
        else:
            argv = unshare + [f"--mount-proc={root}/proc", "chroot", root, LUA, chunk,
                              ct.ct("lib")]
        child = Child(argv, env=env)
        child.wait_for("ready", timeout=30)
        pid = container_pid1(child, "lua5.4")
        prefix = ["setpriv", f"--bounding-set={MINIMAL_CAPS}", "--"] if args.minimal_caps else []
        out = os.path.join(tmp, "out.fold")
        prof = Profiler(args, [pid], DURATION, out, prefix=prefix)
        rc, _, err = prof.finish()
        profiling.check_exit(rc, err, args)
        if child.proc.poll() is not None:
            fail(f"the container exited during profiling: {child.proc.returncode}")
        stacks = parse_fold(out)
    finally:
        if prof:
            prof.kill()
        if child:
            child.close()
        ct.close()

    check_container_paths(stacks, err, root)
    check_runtime_line(err, pid, r"Lua 5\.4\.\d+ in /usr/bin/lua5\.4", "the container's path")
    exe = lua_profile.Binary(root + LUA)
    ctx = lua_profile.Context(exe, exe, chunk, text, "app.lua", child.info, False)
    nginx.check_complete(stacks, ctx.prefix, label)
    lua_profile.check_lua_frames(ctx, stacks)
    lua_profile.find_vm_loop(ctx, stacks)
    lua_profile.check_chain(ctx, stacks, [L("main"), L("ct_workload"), L("ct_lua_burn")],
                            MIN_HOT_LUA, f"{label}: ct_lua_burn")
    names = [CONTAINER_NATIVE[1] + "entry", CONTAINER_NATIVE[1] + "spin"]
    native_chain_check(ctx, stacks, "ct_native_caller", names, MIN_HOT_NATIVE,
                       f"{label}: ctnative (build-id debug file)")
    names = [CONTAINER_LINK[1] + "entry", CONTAINER_LINK[1] + "spin"]
    native_chain_check(ctx, stacks, "ct_link_caller", names, MIN_HOT_NATIVE,
                       f"{label}: ctlink (.gnu_debuglink debug file)")


def wait_port_or_fail(port, ct):
    if not nginx.wait_port(port):
        log_path = ct.inside(ct.ct("nginx/error.log"))
        err = open(log_path).read()[-2000:] if os.path.exists(log_path) else ""
        fail(f"nginx in the container does not listen on 127.0.0.1:{port}; error.log: {err!r}")


def case_nginx(args, tmp):
    root = os.path.abspath(args.root)
    if not os.access(nginx.WRK, os.X_OK):
        fail(f"{nginx.WRK} not found: the project's install script installs wrk")
    ct = CtDir(root)
    child = None
    try:
        prefix_dir = ct.ct("nginx")
        lua_dir = os.path.join(prefix_dir, "lua")
        port = nginx.free_port()
        http = nginx.NGINX_LUA_HTTP.format(tmp=prefix_dir, port=port, jit="on")
        conf = nginx.nginx_conf(prefix_dir, http,
                                main=nginx.NGINX_LUA_MAIN.format(modules=NGINX_MODULES), workers=2)
        ct.write(os.path.join(prefix_dir, "nginx.conf"), conf)
        with open(nginx.LUA_HANDLER) as f:
            handler = f.read()
        ct.write(os.path.join(lua_dir, "handler.lua"), handler)
        decoy = decoy_lua(handler, set(lua_profile.script_definitions(handler)) | {"_M.run"})
        ct.write(os.path.join(lua_dir, "handler.lua"), decoy, host=True)
        child = Child(["unshare", "--pid", "--mount", "--fork", "--kill-child",
                       sys.executable, os.path.abspath(__file__), "init", root, "--",
                       NGINX, "-p", prefix_dir + "/", "-e", os.path.join(prefix_dir, "error.log"),
                       "-c", os.path.join(prefix_dir, "nginx.conf")])
        wait_port_or_fail(port, ct)
        master = container_pid1(child, "nginx")
        workers = nginx.wait_workers(master, 2)
        log(f"nginx master: host PID {master}, workers {workers} (NSpid "
            f"{[ns_pids(w) for w in workers]})")
        status, body = nginx.http_get(port, "/")
        if " 200 " not in status + " " or body != nginx.lua_handler_response():
            fail(f"GET /: {status!r} {body!r}, want 200 {nginx.lua_handler_response()!r}")
        out = os.path.join(tmp, "out.fold")
        wrk = prof = None
        try:
            # The load lasts until lua-perf is done (its start-up time varies: ASan builds),
            # then SIGINT makes wrk stop and print its summary.
            wrk = nginx.run_wrk(port, WRK_MAX_SECONDS)
            prof = Profiler(args, [master], NGINX_DURATION, out)
            rc, _, err = prof.finish()
            wrk.proc.send_signal(signal.SIGINT)
            wrk_out = nginx.finish_wrk(wrk)
        finally:
            if prof:
                prof.kill()
            if wrk:
                wrk.close()
        profiling.check_exit(rc, err, args)
        if "Non-2xx" in wrk_out or "Socket errors" in wrk_out:
            fail(f"wrk saw errors:\n{wrk_out}")
        if child.proc.poll() is not None:
            fail(f"the container exited during profiling: {child.proc.returncode}")
    finally:
        if child:
            nginx.stop_nginx(child)
        ct.close()

    stacks = parse_fold(out)
    check_container_paths(stacks, err, root)
    procs, _ = profiling.process_summary(err)
    for w in workers:
        n, comm = procs.get(w, (0, "?"))
        log(f"  worker {w}: {n} samples ({comm})")
        if n < 200 or comm != "nginx":
            fail(f"worker {w} (host PID): {n} samples as {comm!r} (want >= 200 as 'nginx')")
    for w in workers:
        check_runtime_line(err, w, rf"LuaJIT .* in {re.escape(LUAJIT_LIBS)}/libluajit-5\.1\.so\S*",
                           "the container's path")
    nginx.check_lua_native_chains(stacks, nginx=root + NGINX)
    nginx.check_luajit_chains(stacks, lua_dir, jit=True)


def case_pidns(args, tmp):
    problems = profiling.expect_error(
        args, "lua-perf in its own PID namespace",
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", args.lua_perf, "-p", "1",
         "-d", "1", "-o", os.path.join(tmp, "out.fold")],
        r"PID namespace.*host")
    if problems:
        fail("\n".join(problems))


def main():
    if len(sys.argv) > 3 and sys.argv[1] == "init" and sys.argv[3] == "--":
        container_init(sys.argv[2], sys.argv[4:])  # the nginx container's PID 1: never returns
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=["rootfs", "lua54", "nginx", "pidns"])
    ap.add_argument("--lua-perf", help="path of the lua-perf binary")
    ap.add_argument("--root", help="the container's root filesystem (built by the rootfs case)")
    ap.add_argument("--minimal-caps", action="store_true",
                    help="lua54: run lua-perf with CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, "
                         "CAP_SYSLOG only")
    ap.add_argument("--relative", action="store_true",
                    help="lua54: run the script by a relative path from CT (unshare --root --wd)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False  # pylib.profiling.Profiler option
    if os.geteuid() != 0:
        log("SKIP: container tests need root (namespaces, chroot, BPF, perf events)")
        return report.SKIP
    if args.case == "rootfs":
        profiling.install_signal_handlers()
        try:
            case_rootfs(args)
        except report.TestFailure as e:
            log(f"FAIL: {e}")
            return 1
        log("PASS: rootfs")
        return 0
    if not (args.lua_perf and os.access(args.lua_perf, os.X_OK)):
        log(f"FAIL: lua-perf binary not found or not executable: {args.lua_perf!r}")
        return 1
    if args.case != "pidns" and not (args.root and os.path.exists(
            os.path.join(args.root, STAMP))):
        log(f"FAIL: no root filesystem at {args.root!r} (the container_rootfs fixture builds it)")
        return 1
    cases = {"lua54": case_lua54, "nginx": case_nginx, "pidns": case_pidns}
    return profiling.run_case(cases[args.case], args, f"lua-perf-container-{args.case}-")


if __name__ == "__main__":
    sys.exit(main())
