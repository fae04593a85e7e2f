# SPDX-License-Identifier: MIT
"""Frame matchers and expected chains: a driver says which frames a hot sample must hold (one
exact function, libc at any offset, a run of recursion ...), and check_chains measures how many
hot samples match exactly and completely (the assertions (a) and (b) of the native tests)."""
import re

from .folded import compress, split_offset, top_stacks, user_part
from .report import fail, log


MIN_SHARE = 0.99        # share of hot samples that must have the exact chain / be complete


def normalize_libc_name(name):
    """glibc's many names for one function: __GI___qsort_r, __qsort_r, qsort_r -> qsort_r;
    msort_with_tmp.part.0 -> msort_with_tmp; __libc_start_main_impl -> libc_start_main."""
    name = re.sub(r"@.*$", "", name)
    name = re.sub(r"^(__GI_)+", "", name)
    name = name.lstrip("_")
    name = re.sub(r"(\.(part|constprop|isra|cold|lto_priv)\.\d+)+$", "", name)
    name = re.sub(r"(_impl|_alias_\d+|_internal|_\d)$", "", name)
    return name


class M:
    """A frame matcher: test(frame) -> bool, with a description for messages."""

    def __init__(self, desc, test):
        self.desc = desc
        self.test = test

    def __repr__(self):
        return self.desc


def exact(name):
    return M(name, lambda fr: fr == name)


LIBC = "libc.so.6"


def libc_fn(names, offsets=None, allow_offset=True):
    """A libc function: named (any glibc alias of one of `names`) or, libc being stripped,
    `libc.so.6+0xOFF` — with OFF in `offsets` when those are known (each +/-: return
    addresses may be printed as is or minus one)."""
    names = set(names)
    offs = None
    if offsets is not None:
        offs = set()
        for o in offsets:
            offs.update((o, o - 1))

    def test(fr):
        so = split_offset(fr)
        if so is None:
            return normalize_libc_name(fr) in names
        if not allow_offset or so[0] != LIBC:
            return False
        return offs is None or so[1] in offs

    desc = "|".join(sorted(names))
    if allow_offset:
        desc += f"|{LIBC}+" + ("0x" + "/".join(f"{o:x}" for o in sorted(offsets))
                               if offsets else "0x*")
    return M(f"<{desc}>", test)


def elf_range(basename, lo, hi, names=(), desc=None):
    """A frame inside [lo, hi) of the ELF file `basename`, or one of `names`."""
    names = set(names)

    def test(fr):
        so = split_offset(fr)
        if so is None:
            return fr in names
        return so[0] == basename and lo <= so[1] <= hi  # hi included: a return address may
        #                                                 follow a final (noreturn) call

    return M(desc or f"<{basename}+0x{lo:x}..0x{hi:x}>", test)


# A chain spec is a list of (matcher, min_repeat, max_repeat).
def one(m):
    return (m, 1, 1)


def times(m, n):
    return (m, n, n)


def some(m, lo=1, hi=8):
    return (m, lo, hi)


def spec_desc(spec):
    out = []
    for m, lo, hi in spec:
        out.append(m.desc if (lo, hi) == (1, 1) else
                   f"{m.desc}*{lo}" if lo == hi else f"{m.desc}*{lo}..{hi}")
    return ";".join(out)


def full_match(frames, spec):
    """Does the whole frame sequence match the spec (with bounded repeats)? Backtracking."""
    memo = {}

    def go(i, j):
        key = (i, j)
        if key in memo:
            return memo[key]
        if j == len(spec):
            r = i == len(frames)
        else:
            m, lo, hi = spec[j]
            r = False
            k = 0
            while True:
                if k >= lo and go(i + k, j + 1):
                    r = True
                    break
                if k == hi or i + k >= len(frames) or not m.test(frames[i + k]):
                    break
                k += 1
        memo[key] = r
        return r

    return go(0, 0)


def suffix_match(frames, spec):
    """Do the frames end with exactly the spec (the spec's first item anchors where)?"""
    first = spec[0][0]
    for i in range(len(frames)):
        if first.test(frames[i]) and full_match(frames[i:], spec):
            return True
    return False


def first_mismatch(frames, spec):
    """Human-readable hint: where a stack stops following prefix+chain (greedy, approximate)."""
    i = 0
    for m, lo, hi in spec:
        k = 0
        while k < hi and i < len(frames) and m.test(frames[i]):
            i += 1
            k += 1
        if k < lo:
            got = frames[i] if i < len(frames) else "<end of stack>"
            return f"frame #{i} is {got!r}, expected {m.desc} (repeat {lo}..{hi}, got {k})"
    if i < len(frames):
        return f"extra frames from #{i}: {compress(frames[i:], 10)}"
    return "matches"


def check_chains(stacks, hot, prefix, chain, min_hot, label, translate=None):
    """Assertions (a) and (b) over the hot samples: see the module docstring."""
    if translate:
        stacks = [(translate(f), c) for f, c in stacks]
    total = sum(c for _, c in stacks)
    hot_stacks = [(user_part(f), c) for f, c in stacks
                  if user_part(f) and hot.test(user_part(f)[-1])]
    n_hot = sum(c for _, c in hot_stacks)
    log(f"{label}: {total} samples, {n_hot} with leaf {hot.desc}")
    if n_hot < min_hot:
        fail(f"{label}: only {n_hot} samples whose leaf is {hot.desc} (want >= {min_hot})\n"
             + top_stacks(stacks))
    chain_ok = sum(c for f, c in hot_stacks if suffix_match(f, chain))
    root_ok = sum(c for f, c in hot_stacks if prefix[0][0].test(f[0]))
    exact_ok = sum(c for f, c in hot_stacks if full_match(f, prefix + chain))
    log(f"  chain {spec_desc(chain)}: {chain_ok}/{n_hot} = {chain_ok / n_hot:.2%}")
    log(f"  root {prefix[0][0].desc}: {root_ok}/{n_hot} = {root_ok / n_hot:.2%}")
    log(f"  whole stack {spec_desc(prefix)};<chain>: {exact_ok}/{n_hot} = {exact_ok / n_hot:.2%}")
    problems = []
    if chain_ok < MIN_SHARE * n_hot:
        problems.append(f"(a) only {chain_ok / n_hot:.2%} of hot samples have exactly the "
                        f"chain {spec_desc(chain)}")
    if root_ok < MIN_SHARE * n_hot:
        problems.append(f"(b) only {root_ok / n_hot:.2%} of hot samples are complete (root "
                        f"frame {prefix[0][0].desc})")
    if exact_ok < MIN_SHARE * n_hot:
        problems.append(f"(b) only {exact_ok / n_hot:.2%} of hot samples are exactly "
                        f"{spec_desc(prefix)};<chain>")
    if problems:
        bad = [(f, c) for f, c in hot_stacks if not full_match(f, prefix + chain)]
        hints = [f"  {c:7d}  {first_mismatch(f, prefix + chain)}\n           {compress(f)}"
                 for f, c in sorted(bad, key=lambda s: -s[1])[:8]]
        fail(f"{label}: " + "; ".join(problems) + "\n" + top_stacks(hot_stacks, title="hot stacks")
             + "\n  most common deviations:\n" + "\n".join(hints))
    return hot_stacks


MAIN_PREFIX = [
    one(exact("_start")),
    one(libc_fn({"libc_start_main"}, allow_offset=False)),
    one(libc_fn({"libc_start_call_main"})),
]
