# SPDX-License-Identifier: MIT
"""PUC Lua built from source in the variants the detection tests cover, and lua_detect_tool's
report of what lua-perf detects in a binary."""
import concurrent.futures
import glob
import os
import re
import shutil

from .detect_checks import run


CALLEE_SAVED = {"rbx": 3, "rbp": 6, "r12": 12, "r13": 13, "r14": 14, "r15": 15}
REG_NAME = {number: name for name, number in CALLEE_SAVED.items()}
DETECT_LINE = re.compile(
    r"file=(?P<file>\S+) result=(?P<result>\S+)(?: version=(?P<version>\S+) kind=(?P<kind>\d+) "
    r"exec_start=(?P<start>\S+) exec_end=(?P<end>\S+) l_reg=(?P<reg>\d+) "
    r"l_in_frame=(?P<in_frame>\d) l_cfa_off=(?P<cfa_off>-?\d+) "
    r"resume_start=(?P<resume_start>\S+) resume_end=(?P<resume_end>\S+) "
    r"resume_l_reg=(?P<resume_reg>\d+) resume_l_in_frame=(?P<resume_in_frame>\d) "
    r"resume_l_cfa_off=(?P<resume_cfa_off>-?\d+) "
    r"from_symtab=(?P<symtab>\d) reason=(?P<reason>.*))?$")


def detect(tool, path):
    out = run([tool, "detect", path]).strip().splitlines()
    match = DETECT_LINE.match(out[-1]) if out else None
    if not match:
        raise RuntimeError(f"unparsable detection output for {path}: {out}")
    d = match.groupdict()
    if d["start"] is not None:
        d["start"], d["end"] = int(d["start"], 16), int(d["end"], 16)
        d["reg"], d["symtab"] = int(d["reg"]), d["symtab"] == "1"
        d["in_frame"], d["cfa_off"] = d["in_frame"] == "1", int(d["cfa_off"])
        d["resume_start"], d["resume_end"] = int(d["resume_start"], 16), int(d["resume_end"], 16)
        d["resume"] = {"in_frame": d["resume_in_frame"] == "1", "reg": int(d["resume_reg"]),
                       "cfa_off": int(d["resume_cfa_off"])}
    return d


def home_of(d):
    """Where a detection result says L is: 'r15' or 'cfa-184' (the probe's names)."""
    if d["in_frame"]:
        return f"cfa{d['cfa_off']:+d}"
    return REG_NAME.get(d["reg"], str(d["reg"]))


def describe(d):
    if d["result"] in ("none", "error"):
        return d["result"]
    home = home_of(d) if d["result"] == "ok" else "-"
    return (f"{d['result']} Lua {d['version']} luaV_execute {d['start']:#x}..{d['end']:#x} "
            f"L={home} symtab={int(d['symtab'])}" +
            (f" ({d['reason']})" if d["result"] != "ok" else ""))


CORE_EXCLUDE = {"lua.c", "luac.c", "print.c", "onelua.c", "ltests.c"}
COMPAT = {"5.1": [], "5.3": ["-DLUA_COMPAT_5_2"], "5.4": ["-DLUA_COMPAT_5_3"]}


def source_tree(sources, version):
    trees = sorted(glob.glob(os.path.join(sources, f"lua{version}-*", "src", "lvm.c")))
    if not trees:
        raise RuntimeError(f"no lua{version}-*/src/lvm.c under {sources} (scripts/fetch-lua-sources.sh)")
    return os.path.dirname(os.path.dirname(trees[-1]))


class Variant:
    """compiler: 'cc' (--cc, gcc) or 'clang' (--clang)."""

    def __init__(self, name, cflags, ldflags=(), shared=False, compiler="cc"):
        self.name, self.cflags, self.ldflags, self.shared = name, list(cflags), list(ldflags), shared
        self.compiler = compiler


VARIANTS = [
    Variant("O1", ["-O1", "-fPIC"]),
    Variant("O2", ["-O2", "-fPIC"], shared=True),
    Variant("O3", ["-O3", "-fPIC"]),
    Variant("O2-nopie-cet", ["-O2", "-fno-pic", "-fcf-protection"], ["-no-pie"]),
    Variant("O1-fp", ["-O1", "-fPIC", "-fno-omit-frame-pointer"]),  # CFA = rbp + 16
    Variant("clang-O2", ["-O2", "-fPIC"], compiler="clang"),
]


def build_variant(cc, tree, version, variant, out_dir):
    """Compile the Lua core and lua.c with symbols; link lua (the API exported, like Debian's
    /usr/bin/lua5.x) and, for shared variants, liblua.so. Reused when the flags are unchanged."""
    stamp_path = os.path.join(out_dir, "stamp")
    stamp = " ".join([cc, tree] + variant.cflags + variant.ldflags + [str(variant.shared)])
    outputs = [os.path.join(out_dir, "lua")] + ([os.path.join(out_dir, "liblua.so")] if variant.shared else [])
    if os.path.exists(stamp_path) and all(os.path.exists(o) for o in outputs):
        with open(stamp_path) as f:
            if f.read() == stamp:
                return outputs
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    src = os.path.join(tree, "src")
    cflags = (["-std=gnu99", "-g", "-w", "-DLUA_USE_POSIX", "-DLUA_USE_DLOPEN"] + COMPAT[version] +
              variant.cflags)
    sources = sorted(f for f in os.listdir(src) if f.endswith(".c") and f not in CORE_EXCLUDE)
    objs = [os.path.join(out_dir, f[:-2] + ".o") for f in sources]
    jobs = [[cc] + cflags + ["-c", os.path.join(src, f), "-o", o] for f, o in zip(sources, objs)]
    main_obj = os.path.join(out_dir, "lua.o")
    jobs.append([cc] + cflags + ["-c", os.path.join(src, "lua.c"), "-o", main_obj])
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for result in pool.map(run, jobs):
            del result
    run([cc, "-g"] + variant.ldflags + ["-Wl,-E", "-o", outputs[0], main_obj] + objs + ["-lm", "-ldl"])
    if variant.shared:
        run([cc, "-shared", "-g", "-o", outputs[1]] + objs + ["-lm", "-ldl"])
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return outputs
