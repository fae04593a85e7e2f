#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tests of the SVG flame graph (output/flamegraph_svg.c) and of lua-perf's output options.

    flamegraph_svg_test.py profile --lua-perf BIN --app examples/app.lua
    flamegraph_svg_test.py cli --lua-perf BIN
    flamegraph_svg_test.py hostile --harness test_flamegraph_svg

profile (root, BPF): lua5.4 runs examples/app.lua; one lua-perf run (-f 997 -d 3) writes
  `-o out.fold -o out.svg`. Checked:
  - every line of out.fold by a strict parser of flamegraph.pl's format (check_folded_format),
    and, when flamegraph.pl is on the PATH, that it renders the file without complaint;
  - out.svg parses as XML (xml.etree) with one script and only the elements the writer makes;
  - in headless Chromium (tests/pylib/headless_chromium.py, DevTools protocol over a pipe):
    the title names `lua5.4 (PID n)`, 997 Hz, the duration and the fold's sample total; every
    drawn frame, identified by its rendered geometry (the frame below it whose box contains it
    is its caller), has the width samples / total * 1180 px of its stack prefix in the fold,
    exactly the prefixes of >= 0.1% of the samples are drawn and the footnote counts the rest;
    hovering a Lua frame shows its name, samples and share; clicking it makes it span the plot
    (its callees scale with it, its callers span it, every other frame is hidden) and Reset
    zoom restores everything; Ctrl-F opens a prompt, the search for `L:by_score@` reports
    exactly the share of the fold's samples with such a frame and highlights the drawn ones;
    a search for `^L:` (frames nested in one another) counts each sample once; Esc clears;
    the page throws no JavaScript error.
cli (root for the last parts): --format with a bad value, --format after the last -o and an
  output given twice are usage errors (exit 2, one line); an unwritable second output makes
  lua-perf exit 1 with one line naming it before any BPF work (no table-building line), leaves
  an existing first output untouched and no new one behind; `--format` applies to the -o after
  it (by content: folded lines or an SVG document); `--format svg` without -o writes perf.svg.
hostile (no root): folded lines with hostile names (markup, `</script>`, `]]>`, quotes,
  control bytes, every kind of malformed UTF-8), empty frames, duplicates, 30000 lines, and a
  30000-frame stack go through the C writer (test_flamegraph_svg, linked with the output layer).
  Each SVG parses as XML, contains one script and no element the writer does not make; each
  drawn frame shows its name with every byte that is not part of a printable UTF-8 character
  replaced by U+FFFD (computed here with Python's strict UTF-8 decoder), at the depth and
  width of the folded input's tree (computed here). The big inputs stay bounded (at most
  10000 frames drawn, the number left out in the footnote). In Chromium the hostile page runs
  no injected script, hovering writes names as text only, and a search counts exactly (names
  of undrawn frames listed) or, when that list would pass about 2 MiB, gives a range that holds
  the truth. The writer reports a full disk and sample counts overflowing 64 bits.

Exit status: 0 pass, 1 fail, 77 skipped (not root, for profile/cli). Python 3 standard library
and Debian's chromium.
"""
import argparse
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: pylib
from pylib import profiling  # noqa: E402
from pylib.profiling import check_exit, Child, Profiler  # noqa: E402
from pylib.report import fail, log  # noqa: E402
import pylib.headless_chromium as hc  # noqa: E402

SKIP = 77
FREQ = 997
DURATION = 3
PLOT_X = 10
PLOT_WIDTH = 1180          # the SVG is 1200 px wide with 10 px margins
ROW = 16                   # px per stack level
MIN_DIVISOR = 1000         # frames narrower than 1/1000 of the samples are not drawn
MAX_FRAMES = 10000
WIDTH_TOLERANCE = 0.011    # px: the writer prints 2 decimals
SVG_NS = "{http://www.w3.org/2000/svg}"
FG_NS = "{urn:lua-perf:flamegraph}"
SVG_TAGS = {SVG_NS + t for t in ("svg", "style", "rect", "text", "g", "title", "script",
                                 "metadata")} | {FG_NS + "u", FG_NS + "f"}
HIGHLIGHT = "rgb(230, 0, 230)"
FOLD_COUNT_RE = re.compile(r"[1-9][0-9]*")


# --------------------------------------------------------------------------------------------
# The folded format (flamegraph.pl's input)


def check_folded_format(path):
    """Every line `frame;...;frame COUNT\\n`: UTF-8, COUNT a positive decimal integer after the
    last space, frames non-empty (no ';' at either end, no ';;'), no tab, newline, carriage
    return or other control character anywhere, no surrounding whitespace, lines sorted (bytes)
    and unique. Returns [(frames tuple, count)]."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw and not raw.endswith(b"\n"):
        fail(f"{path}: last line has no newline")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8: {e}")
    stacks, previous = [], None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"{path}:{n}: {line[:160]!r}"
        if re.search(r"[\x00-\x1f\x7f]", line):
            fail(f"{where}: control character (tab, CR, ...) in the line")
        stack, sep, count = line.rpartition(" ")
        if not sep or not FOLD_COUNT_RE.fullmatch(count):
            fail(f"{where}: does not end in ' COUNT' (COUNT a positive integer)")
        if stack.startswith(";") or stack.endswith(";") or ";;" in stack or not stack:
            fail(f"{where}: empty frame (stray ';')")
        frames = tuple(stack.split(";"))
        for fr in frames:
            if fr.strip() != fr:
                fail(f"{where}: frame {fr!r} with surrounding whitespace")
        key = stack.encode()
        if previous is not None and key <= previous:
            fail(f"{where}: not after the previous line in byte order (unsorted or duplicate)")
        previous = key
        stacks.append((frames, int(count)))
    if not stacks:
        fail(f"{path}: no stacks")
    return stacks


def check_with_flamegraph_pl(path, tmp):
    """flamegraph.pl, when installed, must take every line (it says 'Ignored N lines')."""
    tool = shutil.which("flamegraph.pl")
    if not tool:
        log("flamegraph.pl not on the PATH: not run (the strict parser checked the format)")
        return
    out = os.path.join(tmp, "flamegraph-pl.svg")
    with open(out, "wb") as f:
        res = subprocess.run([tool, path], stdout=f, stderr=subprocess.PIPE, timeout=120)
    err = res.stderr.decode(errors="replace")
    if res.returncode != 0 or "Ignored" in err or os.path.getsize(out) == 0:
        fail(f"flamegraph.pl {path}: exit {res.returncode}, stderr {err!r}")
    log(f"flamegraph.pl rendered {path} ({os.path.getsize(out)} bytes)")


# --------------------------------------------------------------------------------------------
# The tree a flame graph draws, computed here from the folded lines


def tree_nodes(stacks):
    """{stack prefix (tuple of frames): samples} over all lines."""
    nodes = collections.Counter()
    for frames, count in stacks:
        for i in range(1, len(frames) + 1):
            nodes[frames[:i]] += count
    return nodes


def wide_enough(samples, total):
    return samples * MIN_DIVISOR >= total


def drawn_prefixes(nodes, total):
    drawn = {p for p, w in nodes.items() if wide_enough(w, total)}
    if len(drawn) + 1 > MAX_FRAMES:
        fail(f"test input has {len(drawn) + 1} frames >= 0.1%: beyond the cap, pick another")
    return drawn


def matching_samples(stacks, pattern, drawn=None):
    """Samples whose stack has a frame matching pattern (each sample once); with drawn, only
    frames whose prefix is drawn count."""
    regex = re.compile(pattern)
    n = 0
    for frames, count in stacks:
        for i, fr in enumerate(frames):
            if regex.search(fr) and (drawn is None or frames[:i + 1] in drawn):
                n += count
                break
    return n


def shown(raw):
    """A frame name as the SVG must show it: each byte that does not begin a well-formed (strict
    UTF-8: shortest form, no surrogates, <= U+10FFFF) printable character (not a C0/C1 control,
    DEL, U+FFFE or U+FFFF) becomes U+FFFD."""
    out, i = [], 0
    while i < len(raw):
        char = None
        for n in (1, 2, 3, 4):
            try:
                decoded = raw[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(decoded) == 1:
                char = decoded
                break
        cp = ord(char) if char else None
        if char is None or cp < 0x20 or 0x7f <= cp <= 0x9f or cp in (0xfffe, 0xffff):
            out.append("\ufffd")
            i += 1
        else:
            out.append(char)
            i += len(char.encode("utf-8"))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# The SVG document


def parse_svg(path):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        fail(f"{path} is not well-formed XML: {e}")
    tags = {el.tag for el in root.iter()}
    if not tags <= SVG_TAGS:
        fail(f"{path}: elements the writer does not make: {sorted(tags - SVG_TAGS)}")
    scripts = root.findall(f".//{SVG_NS}script")
    if len(scripts) != 1:
        fail(f"{path}: {len(scripts)} <script> elements, want 1")
    return root


def svg_text(root, element_id):
    for el in root.iter():
        if el.get("id") == element_id:
            return "".join(el.itertext())
    fail(f"SVG has no element #{element_id}")


def static_frames(root):
    """The drawn frames as the document states them: name, depth, x and width in samples."""
    group = next((g for g in root.iter(SVG_NS + "g") if g.get("id") == "fg-frames"), None)
    if group is None:
        fail("SVG has no #fg-frames group")
    frames = []
    for g in group:
        title = g.find(SVG_NS + "title")
        frames.append({"name": "".join(title.itertext()).split("\n")[0],
                       "depth": int(g.get("data-d")), "x": int(g.get("data-x")),
                       "w": int(g.get("data-w"))})
    return frames


def assign_paths(frames, eps):
    """Give each frame (dicts with name, depth, x, w) its stack prefix (tuple of names, root
    excluded): its caller is the frame one level down whose [x, x + w] holds it."""
    levels = collections.defaultdict(list)
    for f in frames:
        levels[f["depth"]].append(f)
    if len(levels.get(0, [])) != 1:
        fail(f"want exactly one root frame, found {len(levels.get(0, []))}")
    levels[0][0]["path"] = ()
    for depth in range(1, max(levels) + 1):
        callers = sorted(levels[depth - 1], key=lambda f: f["x"])
        starts = [c["x"] for c in callers]
        for f in levels[depth]:
            i = bisect.bisect_right(starts, f["x"] + eps) - 1
            if i < 0 or f["x"] + f["w"] > callers[i]["x"] + callers[i]["w"] + eps:
                fail(f"frame {f['name']!r} at depth {depth} (x {f['x']}, width {f['w']}) is "
                     "not inside any frame of the level below")
            f["path"] = callers[i]["path"] + (f["name"],)
    return frames


def check_static_tree(svg_path, root, stacks):
    """Drawn frames (by data-* attributes) against the tree of the folded lines."""
    nodes = tree_nodes(stacks)
    total = sum(c for _, c in stacks)
    frames = assign_paths(static_frames(root), eps=0)
    if int(root.get("data-total")) != total:
        fail(f"{svg_path}: data-total {root.get('data-total')}, the lines hold {total} samples")
    got = {f["path"]: f["w"] for f in frames}
    if len(got) != len(frames):
        fail(f"{svg_path}: some stack prefix is drawn twice")
    for path, w in got.items():
        want = total if path == () else nodes.get(path)
        if want != w:
            fail(f"{svg_path}: frame {path[-3:]!r}: width {w} samples, the lines give {want}")
    want_drawn = drawn_prefixes(nodes, total) | {()}
    if set(got) != want_drawn:
        missing = sorted(want_drawn - set(got))[:5]
        extra = sorted(set(got) - want_drawn)[:5]
        fail(f"{svg_path}: drawn frames differ from the prefixes of >= 0.1% of the samples: "
             f"missing {missing}, extra {extra}")
    omitted = len(nodes) + 1 - len(frames)
    if int(root.get("data-omitted")) != omitted:
        fail(f"{svg_path}: data-omitted {root.get('data-omitted')}, want {omitted}")
    footnote = svg_text(root, "fg-footnote")
    if omitted and not re.search(rf"\b{omitted} frames? .*not drawn", footnote):
        fail(f"{svg_path}: footnote {footnote!r} does not say {omitted} frames are not drawn")
    if not omitted and "All frames drawn" not in footnote:
        fail(f"{svg_path}: footnote {footnote!r}, want 'All frames drawn'")
    return frames, nodes, total


# --------------------------------------------------------------------------------------------
# In the browser

READ_FRAMES_JS = r"""
Array.prototype.map.call(document.getElementById('fg-frames').children, function (g, i) {
  var r = g.getElementsByTagName('rect')[0], b = r.getBoundingClientRect();
  return {index: i, name: g.getElementsByTagName('title')[0].textContent.split('\n')[0],
          x: b.x, y: b.y, w: b.width, h: b.height, dataX: Number(g.getAttribute('data-x')),
          visible: r.getClientRects().length > 0 && b.width > 0,
          fill: getComputedStyle(r).fill};
})
"""


def rendered_frames(page):
    """The frames as Chromium renders them; depth from the row (root at the bottom)."""
    frames = page.evaluate(READ_FRAMES_JS)
    if not frames:
        fail("the page shows no frames")
    root_y = max(f["y"] for f in frames if f["visible"])
    for f in frames:
        f["depth"] = round((root_y - f["y"]) / ROW) if f["visible"] else None
    return frames


def element_center(page, expression):
    box = page.evaluate(f"(function () {{ var b = ({expression}).getBoundingClientRect(); "
                        "return [b.x, b.y, b.width, b.height]; })()")
    if box[2] <= 0 or box[3] <= 0:
        fail(f"{expression} is not rendered (box {box})")
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def frame_rect_js(index):
    return (f"document.getElementById('fg-frames').children[{index}]"
            ".getElementsByTagName('rect')[0]")


def open_svg(browser, path):
    height = ET.parse(path).getroot().get("height")
    page = browser.open_page("file://" + os.path.abspath(path), 1300, int(height) + 20)
    page.wait_until("document.getElementById('fg-frames') !== null", "SVG loaded")
    return page


def matched_state(page):
    return page.evaluate("(function () { var m = document.getElementById('fg-matched'); return "
                         "{text: m.textContent, samples: m.getAttribute('data-samples'), "
                         "upper: m.getAttribute('data-upper')}; })()")


def search_with_ctrl_f(page, term):
    dialog = page.key_answering_prompt("f", "KeyF", 70, 2, term)
    if dialog.get("type") != "prompt":
        fail(f"Ctrl-F opened a {dialog.get('type')!r} dialog, want a prompt")
    page.wait_until(f"document.getElementById('fg-matched').getAttribute('data-term') === "
                    f"{term!r}", f"search for {term!r} done")
    return matched_state(page)


def search_with_button(page, term):
    x, y = element_center(page, "document.getElementById('fg-search')")
    page.mouse_move(x, y)
    down = page.browser.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x, "y": y,
                                                          "button": "left", "clickCount": 1},
                             page.session)
    page.browser.reply(down, "press on Search")
    up = page.browser.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x, "y": y,
                                                        "button": "left", "clickCount": 1},
                           page.session)
    dialog = page.browser.event("Page.javascriptDialogOpening", page.session)
    page.call("Page.handleJavaScriptDialog", {"accept": True, "promptText": term})
    page.browser.reply(up, "click on Search")
    if dialog.get("type") != "prompt":
        fail(f"the Search button opened a {dialog.get('type')!r} dialog, want a prompt")
    page.wait_until(f"document.getElementById('fg-matched').getAttribute('data-term') === "
                    f"{term!r}", f"search for {term!r} done")
    return matched_state(page)


def check_percent_text(text, samples, total, what):
    m = re.match(r"Matched: ([0-9.]+)% of samples", text)
    if not m:
        fail(f"{what}: matched text {text!r} does not start with 'Matched: P% of samples'")
    want = 100.0 * samples / total
    if abs(float(m.group(1)) - want) > 0.0051:
        fail(f"{what}: shows {m.group(1)}%, the folded file gives {want:.4f}%")


def check_no_page_errors(page):
    errors = page.errors
    if errors:
        fail(f"the page threw JavaScript errors: {errors}")


def check_title_block(page, pid, total):
    title = page.evaluate("document.getElementById('fg-title').textContent")
    want = f"lua-perf flame graph: lua5.4 (PID {pid})"
    if title != want:
        fail(f"title {title!r}, want {want!r}")
    sub = page.evaluate("document.getElementById('fg-subtitle').textContent")
    m = re.fullmatch(r"([0-9.]+) s at ([0-9]+) Hz, ([0-9]+) samples", sub)
    if not m:
        fail(f"subtitle {sub!r} is not 'D s at F Hz, N samples'")
    seconds, hz, samples = float(m.group(1)), int(m.group(2)), int(m.group(3))
    if hz != FREQ or samples != total or not DURATION - 0.1 <= seconds <= DURATION + 2:
        fail(f"subtitle {sub!r}: want {FREQ} Hz, {total} samples (the fold's sum), about "
             f"{DURATION} s")
    log(f"title {title!r}, subtitle {sub!r}")


def check_rendered_widths(page, stacks):
    nodes = tree_nodes(stacks)
    total = sum(c for _, c in stacks)
    frames = assign_paths(rendered_frames(page), eps=0.02)
    drawn = drawn_prefixes(nodes, total) | {()}
    paths = {f["path"] for f in frames}
    if paths != drawn or len(frames) != len(drawn):
        fail(f"rendered frames ({len(frames)}) differ from the fold's prefixes of >= 0.1% of the "
             f"samples ({len(drawn)}): missing {sorted(drawn - paths)[:3]}, "
             f"extra {sorted(paths - drawn)[:3]}")
    worst = 0.0
    for f in frames:
        samples = total if f["path"] == () else nodes[f["path"]]
        want = samples / total * PLOT_WIDTH
        worst = max(worst, abs(f["w"] - want))
        if abs(f["w"] - want) > WIDTH_TOLERANCE:
            fail(f"frame {f['path'][-2:]!r}: rendered {f['w']:.3f} px wide, {samples} of {total} "
                 f"samples give {want:.3f} px")
    log(f"{len(frames)} rendered frames: widths match the fold (worst {worst:.4f} px); "
        f"{len(nodes) + 1 - len(frames)} narrower than 0.1% not drawn")
    return frames, nodes, total


def check_hover(page, frame, samples, total):
    x, y = frame["x"] + frame["w"] / 2, frame["y"] + frame["h"] / 2
    page.mouse_move(x, y)
    text = page.wait_until(
        "(function () { var t = document.getElementById('fg-details').textContent; "
        f"return t.indexOf({frame['name']!r}) === 0 ? t : ''; }})()",
        f"details of {frame['name']!r} on hover")
    m = re.fullmatch(r"(.*) \u2014 ([0-9]+) samples? \(([0-9.]+)%\)", text)
    if not m or m.group(1) != frame["name"] or int(m.group(2)) != samples or \
            abs(float(m.group(3)) - 100.0 * samples / total) > 0.0051:
        fail(f"hover over {frame['name']!r}: details {text!r}, want the name, {samples} samples "
             f"and {100.0 * samples / total:.2f}%")
    log(f"hover: {text!r}")


def is_relative(a, b):
    """a is b, a caller of b or a callee of b (stack prefixes)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def check_zoom(page, frames, target, nodes, total):
    samples = nodes[target["path"]]
    cx, cy = target["x"] + target["w"] / 2, target["y"] + target["h"] / 2
    page.click(cx, cy)
    page.wait_until(f"Math.abs({frame_rect_js(target['index'])}.getBoundingClientRect().width - "
                    f"{PLOT_WIDTH}) < 0.02", f"{target['name']!r} spanning the plot after a click")
    after = {f["index"]: f for f in page.evaluate(READ_FRAMES_JS)}
    hidden = shown_count = 0
    for f in frames:
        now = after[f["index"]]
        related = is_relative(f["path"], target["path"])
        if now["visible"] != related:
            fail(f"after zooming into {target['path'][-1]!r}: frame {f['path'][-2:]!r} is "
                 f"{'shown' if now['visible'] else 'hidden'}, want "
                 f"{'shown (caller or callee)' if related else 'hidden (unrelated)'}")
        if not related:
            hidden += 1
            continue
        shown_count += 1
        if len(f["path"]) <= len(target["path"]):
            want_x, want_w = PLOT_X, PLOT_WIDTH   # the target and its callers span the plot
        else:  # callees: scaled by total / samples, from the target's left end
            want_w = nodes[f["path"]] / samples * PLOT_WIDTH
            want_x = PLOT_X + (f["dataX"] - target["dataX"]) / samples * PLOT_WIDTH
        if abs(now["w"] - want_w) > 0.02 or abs(now["x"] - want_x) > 0.02:
            fail(f"after zooming into {target['path'][-1]!r}: frame {f['path'][-2:]!r} at "
                 f"x {now['x']:.2f} width {now['w']:.2f}, want x {want_x:.2f} width {want_w:.2f}")
    if hidden == 0:
        fail("zoom test needs a target with unrelated frames (none hidden)")
    reset = page.evaluate("document.getElementById('fg-reset').getClientRects().length > 0")
    if not reset:
        fail("after a zoom the Reset zoom button is not shown")
    log(f"zoom into {target['name']!r} ({samples} samples): it spans the plot, {shown_count} "
        f"callers/callees shown and scaled, {hidden} unrelated frames hidden")
    x, y = element_center(page, "document.getElementById('fg-reset')")
    page.click(x, y)
    page.wait_until("document.getElementById('fg-reset').getClientRects().length === 0",
                    "Reset zoom hidden after a click on it")
    restored = {f["index"]: f for f in page.evaluate(READ_FRAMES_JS)}
    for f in frames:
        now = restored[f["index"]]
        if not now["visible"] or abs(now["w"] - f["w"]) > 0.02 or abs(now["x"] - f["x"]) > 0.02:
            fail(f"after Reset zoom frame {f['path'][-2:]!r} is at x {now['x']:.2f} width "
                 f"{now['w']:.2f} (shown {now['visible']}), was x {f['x']:.2f} width {f['w']:.2f}")
    log("Reset zoom restored every frame")


def highlighted(page):
    return [f for f in page.evaluate(READ_FRAMES_JS) if f["fill"] == HIGHLIGHT]


def check_search(page, stacks, drawn, term, how):
    total = sum(c for _, c in stacks)
    want = matching_samples(stacks, term)
    state = search_with_ctrl_f(page, term) if how == "ctrl-f" else search_with_button(page, term)
    if int(state["samples"]) != want:
        fail(f"search {term!r} ({how}): the page counts {state['samples']} samples, the folded "
             f"file has {want} with a matching frame")
    if state["upper"] is not None and int(state["upper"]) != want:
        fail(f"search {term!r}: range up to {state['upper']}, want exactly {want}")
    check_percent_text(state["text"], want, total, f"search {term!r}")
    regex = re.compile(term)
    want_lit = sorted(p for p in drawn if p and regex.search(p[-1]))
    lit = highlighted(page)
    if len(lit) != len(want_lit) or any(not regex.search(f["name"]) for f in lit):
        fail(f"search {term!r}: {len(lit)} frames highlighted, want the {len(want_lit)} drawn "
             "matching ones")
    log(f"search {term!r} ({how}): {state['text']!r}; the fold: {want}/{total} samples = "
        f"{100.0 * want / total:.2f}%; {len(lit)} frames highlighted")
    return want


# --------------------------------------------------------------------------------------------
# Cases


APP_READY = 'io.stdout:setvbuf("no") print("ready")'


def case_profile(args, tmp):
    if not os.path.exists("/usr/bin/lua5.4"):
        fail("/usr/bin/lua5.4 missing (Debian package lua5.4)")
    fold, svg = os.path.join(tmp, "out.fold"), os.path.join(tmp, "out.svg")
    child = Child(["/usr/bin/lua5.4", "-e", APP_READY, args.app, "120"])
    prof = None
    try:
        child.wait_for("ready")
        prof = Profiler(args, [child.pid], DURATION, fold, freq=FREQ, extra=["-o", svg])
        rc, _, err = prof.finish()
        check_exit(rc, err, args)
        if child.proc.poll() is not None:
            fail(f"lua5.4 exited during profiling with {child.proc.returncode}")
    finally:
        if prof:
            prof.kill()
        child.close()
    if not re.search(r"wrote .* to .*out\.svg", err):
        fail(f"stderr does not say the SVG was written: {err[-1000:]!r}")

    stacks = check_folded_format(fold)
    total = sum(c for _, c in stacks)
    log(f"{fold}: {len(stacks)} lines, {total} samples, all in the strict folded format")
    check_with_flamegraph_pl(fold, tmp)
    if matching_samples(stacks, r"^L:by_score@") == 0:
        fail("the profile has no L:by_score frame (app.lua's sort comparator)")

    root = parse_svg(svg)
    check_static_tree(svg, root, stacks)
    size = os.path.getsize(svg)
    log(f"{svg}: {size} bytes ({size / 1024:.0f} KiB) for {len(stacks)} stacks, well-formed XML")

    with hc.Browser() as browser:
        page = open_svg(browser, svg)
        check_title_block(page, child.pid, total)
        frames, nodes, total = check_rendered_widths(page, stacks)
        drawn = drawn_prefixes(nodes, total)
        lua = [f for f in frames if f["name"].startswith("L:")
               and 0.05 * total <= nodes[f["path"]] <= 0.7 * total
               and any(len(g["path"]) > len(f["path"]) and is_relative(g["path"], f["path"])
                       for g in frames)]
        if not lua:
            fail("no drawn Lua frame with 5% to 70% of the samples and drawn callees to zoom into")
        target = max(lua, key=lambda f: nodes[f["path"]])
        check_hover(page, target, nodes[target["path"]], total)
        check_zoom(page, frames, target, nodes, total)
        check_search(page, stacks, drawn, r"L:by_score@", "ctrl-f")
        nested = check_search(page, stacks, drawn, r"^L:", "button")
        naive = sum(nodes[p] for p in drawn if p[-1].startswith("L:"))
        if naive <= nested:
            fail(f"'^L:' should match nested frames (naive sum {naive} > samples {nested})")
        page.key("Escape", "Escape", 27)
        page.wait_until("document.getElementById('fg-matched').textContent === ''",
                        "search cleared by Esc")
        if highlighted(page):
            fail("Esc left frames highlighted")
        check_no_page_errors(page)
    log("browser checks passed")


def run_lua_perf(args, argv, cwd=None, timeout=30):
    start = time.monotonic()
    res = subprocess.run([args.lua_perf] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=cwd, timeout=timeout)
    err = res.stderr.decode(errors="replace")
    log(f"$ lua-perf {' '.join(argv)} -> exit {res.returncode} in "
        f"{time.monotonic() - start:.1f} s; stderr: {err.strip()!r}")
    return res.returncode, err, time.monotonic() - start


def expect_usage_error(args, argv, pattern):
    rc, err, _ = run_lua_perf(args, argv)
    lines = err.strip().split("\n")
    if rc != 2 or len(lines) != 1 or not re.search(pattern, lines[0]):
        fail(f"lua-perf {' '.join(argv)}: exit {rc}, stderr {err!r}; want exit 2 and one line "
             f"matching {pattern!r}")


def output_kind(path):
    with open(path, "rb") as f:
        head = f.read(5)
    if head == b"<?xml":
        parse_svg(path)
        return "svg"
    check_folded_format(path)
    return "folded"


def case_cli(args, tmp):
    expect_usage_error(args, ["-p", "1", "--format", "png"], r"format.*png")
    expect_usage_error(args, ["-p", "1", "-o", "a.svg", "--format", "svg"], r"--format")
    expect_usage_error(args, ["-p", "1", "-o", "x.fold", "-o", "x.fold"], r"x\.fold.*twice")
    if os.geteuid() != 0:
        log("SKIP: the rest profiles (root needed)")
        raise SystemExit(SKIP)

    busy = Child(["/usr/bin/lua5.4", "-e", APP_READY + " while true do end"])
    try:
        busy.wait_for("ready")
        pid = str(busy.pid)
        existing = os.path.join(tmp, "existing.fold")
        with open(existing, "w") as f:
            f.write("old;stack 1\n")
        fresh = os.path.join(tmp, "fresh.fold")
        bad = os.path.join(tmp, "no-such-dir", "out.svg")
        for first in (existing, fresh):
            rc, err, took = run_lua_perf(args, ["-p", pid, "-d", "5", "-o", first, "-o", bad])
            lines = err.strip().split("\n")
            if rc != 1 or len(lines) != 1 or bad not in lines[0] or took > 4:
                fail(f"unwritable second output: exit {rc} after {took:.1f} s, stderr {err!r}; "
                     "want exit 1 at once with one line naming it")
        with open(existing) as f:
            if f.read() != "old;stack 1\n":
                fail("a run that failed on its second output changed the first (existing) one")
        if os.path.exists(fresh):
            fail("a run that failed on its second output left its first output behind")

        outs = {name: os.path.join(tmp, name) for name in ("a.out", "b.out", "c.txt", "d.svg",
                                                           "e.SVG")}
        rc, err, _ = run_lua_perf(args, ["-p", pid, "-d", "1", "-f", str(FREQ),
                                         "-o", outs["a.out"], "-o", outs["e.SVG"],
                                         "--format", "svg", "-o", outs["b.out"],
                                         "-o", outs["c.txt"], "--format", "folded",
                                         "-o", outs["d.svg"]])
        if rc != 0:
            fail(f"run with five outputs: exit {rc}")
        want = {"a.out": "folded", "e.SVG": "svg", "b.out": "svg", "c.txt": "svg",
                "d.svg": "folded"}
        got = {name: output_kind(path) for name, path in outs.items()}
        if got != want:
            fail(f"output formats {got}, want {want} (--format applies to the -o after it)")
        log(f"formats by name and --format: {got}")

        rc, err, _ = run_lua_perf(args, ["-p", pid, "-d", "1", "--format", "svg"], cwd=tmp)
        if rc != 0 or output_kind(os.path.join(tmp, "perf.svg")) != "svg" or \
                os.path.exists(os.path.join(tmp, "perf.fold")):
            fail(f"--format svg without -o: exit {rc}; want perf.svg (an SVG), no perf.fold")
        rc, err, _ = run_lua_perf(args, ["-p", pid, "-d", "1"], cwd=tmp)
        if rc != 0 or output_kind(os.path.join(tmp, "perf.fold")) != "folded":
            fail(f"no -o: exit {rc}; want perf.fold (folded)")
    finally:
        busy.close()


def write_fold(path, lines):
    with open(path, "wb") as f:
        for frames, count in lines:
            f.write(b";".join(frames) + b" " + str(count).encode() + b"\n")


def run_harness(args, fold, svg, targets):
    res = subprocess.run([args.harness, "write", fold, svg, targets], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=120)
    out = res.stdout.decode()
    if res.returncode != 0:
        fail(f"test_flamegraph_svg write {fold}: exit {res.returncode}: "
             f"{res.stderr.decode(errors='replace')}")
    m = re.fullmatch(r"drawn (\d+) omitted (\d+) listed ([01]) samples (\d+)\n", out)
    if not m:
        fail(f"test_flamegraph_svg printed {out!r}")
    return {"drawn": int(m.group(1)), "omitted": int(m.group(2)), "listed": m.group(3) == "1",
            "samples": int(m.group(4))}


HOSTILE_NAMES = [
    b"<script>window.__injected=1</script>",
    b"</script><script>window.__injected=2</script>",
    b"]]><script>window.__injected=3</script><![CDATA[",
    b"\" onload=\"window.__injected=4\" x=\"",
    b"' onmouseover='window.__injected=5' '",
    b"L:<img src=x onerror=window.__injected=6>@a.lua:1",
    b"L:fn@</text></g><script>window.__injected=7</script>:3_[j]",
    b"&amp &lt &#0 &#x1 & < > \" '",  # no ';': it separates frames
    b"<!-- comment -->",
    b"<?xml-stylesheet href=\"x\"?>",
    b"tab\there cr\rthere esc\x1b[31m del\x7f",
    b"ctl\x01\x02\x1f",
    b"bad\xff\xfe lead",
    b"overlong \xc0\xaf \xe0\x80\xaf \xf0\x80\x80\xaf",
    b"surrogate \xed\xa0\x80 and \xed\xbf\xbf",
    b"beyond \xf4\x90\x80\x80 max \xf4\x8f\xbf\xbf",
    b"truncated \xe2\x82",
    b"lone continuation \x80\xbf",
    b"nonchar \xef\xbf\xbe \xef\xbf\xbf ok \xef\xbf\xbd",
    b"c1 \xc2\x85 \xc2\x9f ok \xc2\xa0",
    b"utf8 \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\xa5_[k]",
    b"a very long name " + b"x" * 3000,
    b"",
]


def hostile_lines():
    """Each hostile name drawn (wide) and, below it, undrawn (1 sample of ~10000)."""
    lines = []
    for i, name in enumerate(HOSTILE_NAMES):
        lines.append(([b"main", b"n%02d " % i + name, b"leaf"], 200 + i))
        lines.append(([b"main", b"n%02d " % i + name, b"rare " + name], 1))
    lines += [([b"", b"a", b""], 300), ([b"main", b"dup"], 250), ([b"main", b"dup"], 50),
              ([b"zero", b"count"], 0), ([b"main"], 400)]
    # Names that begin one another, with bytes below and above ';' after the common part: the
    # lines through one frame must still come together (else a frame is drawn twice).
    for tail in (b"", b"!", b"\x01", b"fix", b"~"):
        lines += [([b"main", b"pre" + tail], 90), ([b"main", b"pre" + tail, b"x"], 80),
                  ([b"main", b"pre" + tail, b"x", b"y"], 70)]
    lines += [([b"main", b"deep"] + [b"d%03d" % d for d in range(300)], 600)]
    return lines


def check_hostile_svg(args, tmp, name, lines, targets=b"target (PID 1)"):
    fold, svg = os.path.join(tmp, name + ".fold"), os.path.join(tmp, name + ".svg")
    write_fold(fold, lines)
    stats = run_harness(args, fold, svg, targets)
    root = parse_svg(svg)
    stacks = [(tuple(shown(fr) for fr in frames), c) for frames, c in lines if c > 0]
    title = svg_text(root, "fg-title")
    if title != "lua-perf flame graph: " + shown(targets):
        fail(f"{name}: title {title!r}, want the targets shown as {shown(targets)!r}")
    frames, nodes, total = check_static_tree(svg, root, stacks)
    if stats["drawn"] != len(frames) or stats["omitted"] != len(nodes) + 1 - len(frames):
        fail(f"{name}: writer says {stats}, the SVG draws {len(frames)} of {len(nodes) + 1}")
    size = os.path.getsize(svg)
    log(f"{name}: {len(lines)} lines, {total} samples -> {len(frames)} frames drawn, "
        f"{stats['omitted']} not drawn, names listed: {stats['listed']}, {size} bytes")
    return svg, stacks, stats, size


def check_injection_free(page, frames_xml):
    injected = page.evaluate("typeof window.__injected")
    scripts = page.evaluate("document.getElementsByTagName('script').length")
    if injected != "undefined" or scripts != 1:
        fail(f"hostile names ran script: window.__injected is {injected}, {scripts} scripts")
    frames = page.evaluate(READ_FRAMES_JS)
    if [f["name"] for f in frames] != [f["name"] for f in frames_xml]:
        fail("the page's frame names differ from the XML's")
    for want in (HOSTILE_NAMES[1], HOSTILE_NAMES[5], HOSTILE_NAMES[12]):
        label = "n%02d " % HOSTILE_NAMES.index(want) + shown(want)
        f = next((f for f in frames if f["name"] == label), None)
        if f is None:
            fail(f"no drawn frame named {label!r}")
        page.mouse_move(f["x"] + min(f["w"], 40) / 2, f["y"] + f["h"] / 2)
        page.wait_until("document.getElementById('fg-details').textContent.indexOf("
                        f"{label!r}) === 0", f"details of {label!r}")
        if page.evaluate("document.querySelectorAll('#fg-details *').length") != 0:
            fail(f"hovering {label!r} created elements in the details line")
    if page.evaluate("typeof window.__injected") != "undefined":
        fail("hovering hostile frames ran injected script")
    log("hostile page: no injected script ran, names written as text")


def check_deep(args, tmp, depth=30000):
    """One stack of 30000 frames, 1 sample: every frame is as wide as the root, the cap keeps
    the MAX_FRAMES shallowest (callers before callees). Checked level by level (the general
    tree check would hold 30000 prefixes of up to 30000 frames)."""
    fold, svg = os.path.join(tmp, "deep.fold"), os.path.join(tmp, "deep.svg")
    write_fold(fold, [([b"f%05d" % d for d in range(depth)], 1)])
    stats = run_harness(args, fold, svg, "deep")
    root = parse_svg(svg)
    frames = sorted(static_frames(root), key=lambda f: f["depth"])
    want = [(0, "all")] + [(d + 1, "f%05d" % d) for d in range(MAX_FRAMES - 1)]
    if [(f["depth"], f["name"]) for f in frames] != want or \
            any((f["x"], f["w"]) != (0, 1) for f in frames):
        fail(f"deep: want the {MAX_FRAMES} shallowest frames, each 1 sample wide: "
             f"{[(f['depth'], f['name'], f['w']) for f in frames[:3]]}...")
    omitted = depth + 1 - MAX_FRAMES
    if stats["drawn"] != MAX_FRAMES or stats["omitted"] != omitted or \
            int(root.get("data-omitted")) != omitted:
        fail(f"deep: want {MAX_FRAMES} drawn, {omitted} not: {stats}")
    footnote = svg_text(root, "fg-footnote")
    if f"{omitted} frames not drawn" not in footnote or \
            f"beyond the {MAX_FRAMES} widest" not in footnote:
        fail(f"deep: footnote {footnote!r} does not say {omitted} frames beyond the cap are "
             "left out")
    log(f"deep: {depth} frames -> {stats['drawn']} drawn, {omitted} not drawn, "
        f"{os.path.getsize(svg)} bytes")


def case_hostile(args, tmp):
    res = subprocess.run([args.harness, "errors"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=60)
    log(res.stdout.decode(errors="replace").rstrip())
    if res.returncode != 0:
        fail("test_flamegraph_svg errors failed")

    targets = b"</text><script>window.__injected=8</script> \xff & \"q\" (PID 1)"
    hostile_svg, hostile_stacks, stats, _ = check_hostile_svg(args, tmp, "hostile",
                                                              hostile_lines(), targets)
    if not stats["listed"] or stats["omitted"] == 0:
        fail(f"hostile: want undrawn frames, listed: {stats}")

    many = [([b"main", b"w%05d" % i, b"leaf%d" % (i % 7)], 1) for i in range(20000)]
    many.append(([b"main", b"hot"], 70000))
    many_svg, many_stacks, stats, size = check_hostile_svg(args, tmp, "many", many)
    if not stats["listed"] or stats["omitted"] != 40000 or size > 3 << 20:
        fail(f"many: want 40000 frames not drawn but listed, under 3 MiB: {stats}, {size} bytes")

    long_names = [([b"main", b"w%05d_" % i + b"y" * 40, b"leaf%d" % (i % 7)], 1)
                  for i in range(30000)]
    long_names.append(([b"main", b"hot"], 70000))
    long_svg, long_stacks, stats, size = check_hostile_svg(args, tmp, "many_long", long_names)
    if stats["listed"] or size > 1 << 20:
        fail(f"many_long: the list of undrawn frames would pass 2 MiB: want it left out, a small "
             f"SVG: {stats}, {size} bytes")
    if "search gives a range" not in svg_text(parse_svg(long_svg), "fg-footnote"):
        fail("many_long: the footnote does not say search gives a range")

    check_deep(args, tmp)

    with hc.Browser() as browser:
        page = open_svg(browser, hostile_svg)
        check_injection_free(page, static_frames(parse_svg(hostile_svg)))
        nodes = tree_nodes(hostile_stacks)
        total = sum(c for _, c in hostile_stacks)
        drawn = drawn_prefixes(nodes, total)
        check_search(page, hostile_stacks, drawn, "<script>", "ctrl-f")
        check_search(page, hostile_stacks, drawn, "^rare ", "button")
        check_no_page_errors(page)

        page = open_svg(browser, many_svg)
        drawn = drawn_prefixes(tree_nodes(many_stacks), sum(c for _, c in many_stacks))
        check_search(page, many_stacks, drawn, "^leaf3$", "ctrl-f")
        check_no_page_errors(page)

        page = open_svg(browser, long_svg)
        total = sum(c for _, c in long_stacks)
        truth = matching_samples(long_stacks, "^leaf3$")
        state = search_with_ctrl_f(page, "^leaf3$")
        low, high = int(state["samples"]), int(state["upper"])
        if not low <= truth <= high or high != 30000 or "up to" not in state["text"]:
            fail(f"many_long: search range {low}..{high} ({state['text']!r}), want one that "
                 f"holds the truth {truth} and ends at the 30000 undrawn samples")
        log(f"many_long: search gives {state['text']!r}; truth {truth}/{total}")
        check_no_page_errors(page)


CASES = {"profile": case_profile, "cli": case_cli, "hostile": case_hostile}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--lua-perf", help="path of the lua-perf binary")
    ap.add_argument("--app", help="examples/app.lua")
    ap.add_argument("--harness", help="test_flamegraph_svg")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.use_perf = False  # pylib.profiling.Profiler option
    if args.case == "profile" and os.geteuid() != 0:
        log("SKIP: profiling needs root (BPF, perf events)")
        return SKIP
    if args.case == "hostile" and not args.harness:
        ap.error("hostile needs --harness")
    if args.case in ("profile", "cli") and not (args.lua_perf and os.access(args.lua_perf,
                                                                           os.X_OK)):
        log(f"FAIL: lua-perf binary not found or not executable: {args.lua_perf!r}")
        return 1
    if args.case != "cli" and not hc.find_chromium():
        log("FAIL: chromium not installed (scripts/install-deps.sh installs Debian's chromium)")
        return 1
    try:
        return profiling.run_case(CASES[args.case], args, f"lua-perf-svg-{args.case}-")
    except hc.BrowserError as e:
        log(f"FAIL: browser: {e}")
        return 1
    except SystemExit as e:
        return e.code


if __name__ == "__main__":
    sys.exit(main())
