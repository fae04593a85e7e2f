#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Cross-check the rows compiled by unwind/cfi_compile.c against binutils' readelf.

For every row that `readelf --debug-dump=frames-interp` prints for every FDE (the LOC column),
the compiled table's rule in effect at that address (from tests/unit/unwind/unwind_table_dump) must agree:
  CFA   rsp+N / rbp+N ...      -> the same register and offset
        exp                    -> plt(rsp+N,K) or *(reg+N) when the DW_CFA_def_cfa_expression
                                  has that exact form (read from `--debug-dump=frames`), else
                                  unsupported
  regs  rbp rbx r12-r15 ra     -> c-N the same offset, s same value, u undefined; a register
                                  readelf does not list, or lists as "u" only because no rule
                                  has been given to it yet, is "same value"; register, val_offset
                                  and expression rules are u for callee-saved registers and make
                                  the row unsupported for ra
  FDEs of a CIE with augmentation "z...S" (signal frames) are "signal" throughout.
Also: an address just past the end of an FDE that no other FDE covers must be a gap.

readelf prints "u" both for DW_CFA_undefined and for a register that the FDE mentions but whose
rule is not set yet (binutils dwarf.c: the first pass over an FDE marks every register it
references DW_CFA_undefined). To tell them apart the raw instruction listing is replayed for
DW_CFA_undefined / restore / remember_state / restore_state, which is also where the CFA
expressions come from.

Exit status 0 when everything matches; 1 on any mismatch or when a binary is missing.
"""

import argparse
import bisect
import os
import re
import subprocess
import sys

REG_NAMES = ["rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
             "r12", "r13", "r14", "r15", "rip"]
RA_REG = 16
# Columns of unwind_table_dump, in its order, with their DWARF register numbers.
DUMP_COLUMNS = [("rbp", 6), ("rbx", 3), ("r12", 12), ("r13", 13), ("r14", 14), ("r15", 15), ("ra", 16)]

HEADER_RE = re.compile(r"^([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+) (CIE|FDE)\b(.*)$")
FDE_RE = re.compile(r"cie=([0-9a-f]+) pc=([0-9a-f]+)\.\.([0-9a-f]+)")
SECTION_RE = re.compile(r"^Contents of the (\S+) section")
REG_OPERAND_RE = re.compile(r"^\s*r(\d+)\b")
ADVANCE_RE = re.compile(r"^DW_CFA_(?:advance_loc\d?|MIPS_advance_loc8): \d+ to ([0-9a-f]+)$")
SET_LOC_RE = re.compile(r"^DW_CFA_set_loc: ([0-9a-f]+)$")
PLT_EXPR_RE = re.compile(
    r"^DW_OP_breg7 \(rsp\): (-?\d+); DW_OP_breg16 \(rip\): 0; DW_OP_lit15; DW_OP_and; "
    r"DW_OP_lit(\d+); DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus$")
DEREF_EXPR_RE = re.compile(r"^DW_OP_breg(\d+) \(\w+\): (-?\d+); DW_OP_deref$")
CFA_REG_OFF_RE = re.compile(r"^([a-z0-9]+)([+-]\d+)$")
SAVED_AT_CFA_RE = re.compile(r"^c([+-]\d+)$")
REG_EXPR_OPERAND_RE = re.compile(r"^\s*r\d+ \(\w+\) \((.*)\)$")
RBP_SLOT_EXPR_RE = re.compile(r"^DW_OP_breg6 \(rbp\): (-?\d+)$")

# Instructions that give a register a rule other than "undefined".
RULE_SETTERS = ("DW_CFA_offset", "DW_CFA_offset_extended", "DW_CFA_offset_extended_sf",
                "DW_CFA_same_value", "DW_CFA_register", "DW_CFA_expression", "DW_CFA_val_offset",
                "DW_CFA_val_offset_sf", "DW_CFA_val_expression",
                "DW_CFA_GNU_negative_offset_extended")


class Entry:
    """A CIE or FDE: its header and instruction lines (raw) or rows (interpreted)."""

    def __init__(self, kind, rest):
        self.kind = kind
        self.lines = []
        self.rows = []          # interpreted: (loc, cfa, {column name: value})
        self.columns = None
        self.cie = self.lo = self.hi = None
        self.augmentation = ""
        self.ra = RA_REG
        if kind == "FDE":
            m = FDE_RE.search(rest)
            if not m:
                raise ValueError("unparsed FDE header: " + rest)
            self.cie, self.lo, self.hi = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)
        else:
            m = re.search(r'CIE "([^"]*)".*\bra=(\d+)', "CIE" + rest)
            if m:
                self.augmentation, self.ra = m.group(1), int(m.group(2))


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit("FAIL: %s exited %d: %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def parse_readelf(text, interpreted):
    """{(section, entry offset): Entry} from readelf frames / frames-interp output."""
    entries = {}
    section = None
    current = None
    for line in text.splitlines():
        m = SECTION_RE.match(line)
        if m:
            section, current = m.group(1), None
            continue
        m = HEADER_RE.match(line)
        if m:
            current = Entry(m.group(4), m.group(5))
            entries[(section, int(m.group(1), 16))] = current
            continue
        if "ZERO terminator" in line:
            current = None
            continue
        if current is None or not line.strip():
            continue
        if not interpreted:
            stripped = line.strip()
            if stripped.startswith("DW_CFA_"):
                current.lines.append(stripped)
            elif stripped.startswith("Augmentation:"):
                current.augmentation = stripped.split('"')[1]
            elif stripped.startswith("Return address column:"):
                current.ra = int(stripped.split(":")[1])
            continue
        fields = []
        for token in line.split():   # a register rule prints as "r10 (r10)": one field
            if token.startswith("(") and fields:
                fields[-1] += " " + token
            else:
                fields.append(token)
        if fields[0] == "LOC":
            current.columns = fields[2:]
            continue
        if current.columns is None or not re.match(r"^[0-9a-f]+$", fields[0]):
            continue
        regs = dict(zip(current.columns, fields[2:]))
        current.rows.append((int(fields[0], 16), fields[1], regs))
    return entries


class UndefinedTracker:
    """Replays an FDE's raw instructions for what frames-interp does not show: which registers
    are explicitly undefined, the CFA expression text, and register expression texts."""

    def __init__(self, cie_entry):
        self.undefined, self.cfa_expr, self.reg_exprs = set(), None, {}
        for line in cie_entry.lines:
            self.step(line, None)
        self.cie_undefined = set(self.undefined)
        self.cie_cfa_expr = self.cfa_expr
        self.cie_reg_exprs = dict(self.reg_exprs)

    def step(self, line, stack):
        op, _, operands = line.partition(":")
        op = op.split(" (")[0].strip()
        reg_m = REG_OPERAND_RE.match(operands)
        reg = int(reg_m.group(1)) if reg_m else None
        if op == "DW_CFA_undefined" and reg is not None:
            self.undefined.add(reg)
            self.reg_exprs.pop(reg, None)
        elif op in RULE_SETTERS and reg is not None:
            self.undefined.discard(reg)
            expr_m = REG_EXPR_OPERAND_RE.match(operands) if op == "DW_CFA_expression" else None
            if expr_m:
                self.reg_exprs[reg] = expr_m.group(1)
            else:
                self.reg_exprs.pop(reg, None)
        elif op in ("DW_CFA_restore", "DW_CFA_restore_extended") and reg is not None:
            if reg in self.cie_undefined:
                self.undefined.add(reg)
            else:
                self.undefined.discard(reg)
            if reg in self.cie_reg_exprs:
                self.reg_exprs[reg] = self.cie_reg_exprs[reg]
            else:
                self.reg_exprs.pop(reg, None)
        elif op == "DW_CFA_remember_state" and stack is not None:
            stack.append((set(self.undefined), self.cfa_expr, dict(self.reg_exprs)))
        elif op == "DW_CFA_restore_state" and stack:
            self.undefined, self.cfa_expr, self.reg_exprs = stack.pop()
        elif line.startswith("DW_CFA_def_cfa_expression ("):
            self.cfa_expr = line[len("DW_CFA_def_cfa_expression ("):-1]
        elif op in ("DW_CFA_def_cfa", "DW_CFA_def_cfa_sf", "DW_CFA_def_cfa_register"):
            self.cfa_expr = None

    def states(self, fde_entry):
        """[(address, undefined set, cfa expression)] at the start of each row."""
        self.undefined, self.cfa_expr = set(self.cie_undefined), self.cie_cfa_expr
        self.reg_exprs = dict(self.cie_reg_exprs)
        stack = []
        out = []
        loc = fde_entry.lo
        for line in fde_entry.lines:
            m = ADVANCE_RE.match(line) or SET_LOC_RE.match(line)
            if m:
                out.append((loc, set(self.undefined), self.cfa_expr, dict(self.reg_exprs)))
                loc = int(m.group(1), 16)
                continue
            self.step(line, stack)
        out.append((loc, set(self.undefined), self.cfa_expr, dict(self.reg_exprs)))
        return out


def state_at(states, loc):
    addrs = [s[0] for s in states]
    i = bisect.bisect_right(addrs, loc) - 1
    return states[max(i, 0)]


def expected_cfa(cfa, cfa_expr):
    """The dump's CFA text expected for readelf's CFA column, or 'unsupported'."""
    if cfa == "exp":
        m = PLT_EXPR_RE.match(cfa_expr or "")
        if m:
            return "plt(rsp%+d,%d)" % (int(m.group(1)), int(m.group(2)))
        m = DEREF_EXPR_RE.match(cfa_expr or "")
        if m and int(m.group(1)) < RA_REG:
            return "*(%s%+d)" % (REG_NAMES[int(m.group(1))], int(m.group(2)))
        return "unsupported"
    m = CFA_REG_OFF_RE.match(cfa)
    if m and m.group(1) in REG_NAMES[:RA_REG] and -2**31 <= int(m.group(2)) < 2**31:
        return "%s%+d" % (m.group(1), int(m.group(2)))
    return "unsupported"


def expected_reg(value, regno, undefined, expr=None):
    """The dump's text for one register column, or None when the row must be unsupported."""
    is_ra = regno == RA_REG
    rbp_slot = RBP_SLOT_EXPR_RE.match(expr or "")
    if value == "exp" and not is_ra and rbp_slot and -2**15 <= int(rbp_slot.group(1)) < 2**15:
        return "b%+d" % int(rbp_slot.group(1))
    if value is None or value == "s":
        return "s"
    if value == "u":
        return "u" if regno in undefined else "s"
    m = SAVED_AT_CFA_RE.match(value)
    if m:
        off = int(m.group(1))
        if off == 0 or not -2**15 < off < 2**15:
            return None
        return "c%+d" % off
    # register, val_offset (v+N), expression (exp), val_expression (vexp)
    return None if is_ra else "u"


def expected_row(entry, cie, cfa, regs, undefined, cfa_expr, reg_exprs):
    """The full expected dump line (without the pc) for one readelf row."""
    if cie.augmentation.startswith("z") and "S" in cie.augmentation:
        return "signal" + " -" * len(DUMP_COLUMNS)
    if cie.ra != RA_REG:
        return "unsupported" + " -" * len(DUMP_COLUMNS)
    cfa_text = expected_cfa(cfa, cfa_expr)
    reg_texts = []
    for name, regno in DUMP_COLUMNS:
        text = expected_reg(regs.get(name), regno, undefined, reg_exprs.get(regno))
        if text is None:
            cfa_text = "unsupported"
        reg_texts.append(text)
    if cfa_text == "unsupported":
        return "unsupported" + " -" * len(DUMP_COLUMNS)
    return " ".join([cfa_text] + reg_texts)


class CompiledTable:
    def __init__(self, text):
        self.pcs, self.rules = [], []
        for line in text.splitlines():
            pc, _, rule = line.partition(" ")
            self.pcs.append(int(pc, 16))
            self.rules.append(rule)
        if self.pcs != sorted(self.pcs):
            sys.exit("FAIL: dumped rows are not sorted")

    def at(self, pc):
        i = bisect.bisect_right(self.pcs, pc) - 1
        return self.rules[i] if i >= 0 else "none"


def fde_rows(entry, cie_interp):
    """readelf rows of an FDE; an FDE without instructions has the CIE's row at its start."""
    rows = [r for r in entry.rows if entry.lo <= r[0] < entry.hi]
    if not rows and not entry.rows and cie_interp.rows:
        _, cfa, regs = cie_interp.rows[-1]
        rows = [(entry.lo, cfa, regs)]
    by_loc = {}
    for loc, cfa, regs in rows:   # a later row at the same address replaces an earlier one
        by_loc[loc] = (cfa, regs)
    return sorted((loc, cfa, regs) for loc, (cfa, regs) in by_loc.items())


def compare(raw, interp, table, max_report):
    compared = mismatches = gaps_checked = fdes = 0
    ranges = []
    for key, entry in sorted(interp.items()):
        if entry.kind != "FDE":
            continue
        section = key[0]
        raw_fde, raw_cie = raw.get(key), raw.get((section, entry.cie))
        cie_interp = interp.get((section, entry.cie))
        if raw_fde is None or raw_cie is None or cie_interp is None:
            sys.exit("FAIL: FDE %#x of %s has no raw listing or CIE" % (key[1], section))
        fdes += 1
        ranges.append((entry.lo, entry.hi))
        states = UndefinedTracker(raw_cie).states(raw_fde)
        for loc, cfa, regs in fde_rows(entry, cie_interp):
            _, undefined, cfa_expr, reg_exprs = state_at(states, loc)
            want = expected_row(entry, raw_cie, cfa, regs, undefined, cfa_expr, reg_exprs)
            got = table.at(loc)
            compared += 1
            if got != want:
                mismatches += 1
                if mismatches <= max_report:
                    print("MISMATCH at %#x (FDE %#x..%#x): readelf %s %s -> expected '%s', compiled '%s'"
                          % (loc, entry.lo, entry.hi, cfa, " ".join("%s=%s" % kv for kv in regs.items()),
                             want, got))
    ranges.sort()
    los = [lo for lo, _ in ranges]
    max_end = []   # max_end[i]: the furthest end among ranges[0..i]
    for _, hi in ranges:
        max_end.append(max(hi, max_end[-1]) if max_end else hi)
    for lo, hi in ranges:
        # covered by another FDE: one starting at or before hi that ends after hi
        i = bisect.bisect_right(los, hi)
        if i > 0 and max_end[i - 1] > hi:
            continue
        gaps_checked += 1
        got = table.at(hi)
        if not got.startswith("gap"):
            mismatches += 1
            if mismatches <= max_report:
                print("MISMATCH at %#x: end of FDE %#x..%#x with nothing after it, compiled '%s', "
                      "expected a gap" % (hi, lo, hi, got))
    return fdes, compared, gaps_checked, mismatches


def missing_expectations(expect, interp, table):
    """The --expect cases the file and its compiled table do not show."""
    present = {
        "debug_frame": any(sec == ".debug_frame" and e.kind == "FDE" for (sec, _), e in interp.items()),
        "deref": any(r.startswith("*(") for r in table.rules),
        "plt": any(r.startswith("plt(") for r in table.rules),
        "signal": any(r.startswith("signal") for r in table.rules),
        "outermost": any(r.endswith(" u") and r[0] != "u" for r in table.rules),
    }
    return [e for e in expect if not present[e]]


def inject_bug(table):
    """Self-test: corrupt one CFA offset in every 50th row by 8 (the checker must notice)."""
    for i in range(0, len(table.rules), 50):
        m = re.match(r"^(rsp|rbp)([+-]\d+)( .*)$", table.rules[i])
        if m:
            table.rules[i] = "%s%+d%s" % (m.group(1), int(m.group(2)) + 8, m.group(3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", required=True, help="path of the unwind_table_dump executable")
    ap.add_argument("--readelf", default="readelf")
    ap.add_argument("--vdso", action="store_true",
                    help="FILE is where to save this machine's vdso; rows come from --vdso (memfd)")
    ap.add_argument("--inject-bug", action="store_true",
                    help="self-test: corrupt the compiled rows, expect mismatches")
    ap.add_argument("--max-report", type=int, default=25)
    ap.add_argument("--expect", action="append", default=[],
                    choices=["debug_frame", "deref", "plt", "signal", "outermost"],
                    help="fail unless the file exercises this case (guards the test's coverage)")
    ap.add_argument("file")
    args = ap.parse_args()

    if args.vdso:
        run([args.dump, "--write-vdso", args.file])
        dump_text = run([args.dump, "--vdso"])
    else:
        if not os.path.isfile(args.file):
            sys.exit("FAIL: %s is not installed (scripts/ installs nginx-light, libluajit2-5.1-2 and "
                     "lua5.4); this test needs it" % args.file)
        dump_text = run([args.dump, args.file])
    table = CompiledTable(dump_text)
    if args.inject_bug:
        inject_bug(table)
    raw = parse_readelf(run([args.readelf, "-wN", "--debug-dump=frames", args.file]), interpreted=False)
    interp = parse_readelf(run([args.readelf, "-wN", "--debug-dump=frames-interp", args.file]), interpreted=True)

    fdes, compared, gaps, mismatches = compare(raw, interp, table, args.max_report)
    print("%s: %d FDEs, %d readelf rows compared, %d FDE ends checked as gaps, %d compiled rows, "
          "%d mismatches" % (args.file, fdes, compared, gaps, len(table.pcs), mismatches))
    if fdes == 0 or compared == 0:
        print("FAIL: readelf shows no FDEs for %s" % args.file)
        return 1
    missing = missing_expectations(args.expect, interp, table)
    if missing:
        print("FAIL: %s does not exercise: %s" % (args.file, ", ".join(missing)))
        return 1
    if args.inject_bug:
        if mismatches == 0:
            print("FAIL: an injected bug went unnoticed")
            return 1
        print("ok: the injected bug was caught")
        return 0
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
