# SPDX-License-Identifier: MIT
"""Drive a real headless Chromium (Debian's `chromium` package) over the DevTools protocol, through
the pipe transport (`--remote-debugging-pipe`: the browser reads JSON commands on fd 3 and writes
replies and events on fd 4, each message ended by a NUL byte), so no client library is needed.

    with Browser() as browser:
        page = browser.open_page("file:///tmp/graph.svg", width=1300, height=900)
        page.evaluate("document.title")
        page.click(x, y)

Every wait has a deadline (no fixed sleeps): a command waits for its reply, an event for its
arrival. JavaScript exceptions thrown by the page are collected in page.errors.
Python 3 standard library only."""
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

DEFAULT_TIMEOUT = 30.0


class BrowserError(Exception):
    pass


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, binary=None, timeout=DEFAULT_TIMEOUT):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError("no chromium on the PATH (Debian package chromium: "
                               "scripts/install-deps.sh installs it)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="lua-perf-chromium-")
        self.stderr_path = os.path.join(self.profile, "stderr.txt")
        self.next_id = 0
        self.buffer = b""
        self.backlog = []       # messages read while waiting for something else
        cmd_read, self.cmd_write = os.pipe()
        self.reply_read, reply_write = os.pipe()
        # Above 10, so that moving them to 3 and 4 in the child cannot clobber one another.
        child_in = fcntl.fcntl(cmd_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(reply_write, fcntl.F_DUPFD_CLOEXEC, 10)

        def setup_child():
            os.dup2(child_in, 3)   # dup2 clears close-on-exec: the browser keeps 3 and 4
            os.dup2(child_out, 4)
            try:  # die with the test (PR_SET_PDEATHSIG = 1), e.g. on a ctest timeout
                import ctypes
                ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)
            except (OSError, AttributeError):
                pass

        argv = [self.binary, "--headless", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--hide-scrollbars", "--mute-audio", "about:blank"]
        env = dict(os.environ, HOME=self.profile)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         close_fds=False, preexec_fn=setup_child, env=env,
                                         start_new_session=True)
        # Closed only now: while open they keep subprocess's own pipe off fds 3 and 4.
        for fd in (cmd_read, reply_write, child_in, child_out):
            os.close(fd)
        os.set_blocking(self.reply_read, False)

    # ---- transport

    def _stderr_tail(self):
        try:
            with open(self.stderr_path, "rb") as f:
                lines = f.read().decode(errors="replace").strip().split("\n")
        except OSError:
            return ""
        return "\n".join(lines[-15:])

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.reply_read], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.reply_read, 1 << 16)
            if not chunk:
                raise BrowserError("chromium closed its DevTools pipe (exited with "
                                   f"{self.proc.poll()}); its stderr:\n{self._stderr_tail()}")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method, params=None, session=None):
        """Send a command; returns its id (see reply())."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            written = os.write(self.cmd_write, data)
            data = data[written:]
        return self.next_id

    def _wait(self, matches, what, timeout):
        deadline = time.monotonic() + (timeout or self.timeout)
        for i, msg in enumerate(self.backlog):
            if matches(msg):
                return self.backlog.pop(i)
        while True:
            msg = self._read_message(deadline)
            if msg is None:
                raise BrowserError(f"no {what} within {timeout or self.timeout} s")
            if matches(msg):
                return msg
            self.backlog.append(msg)

    def reply(self, command_id, what="reply", timeout=None):
        msg = self._wait(lambda m: m.get("id") == command_id, f"{what} (command {command_id})",
                         timeout)
        if "error" in msg:
            raise BrowserError(f"{what}: {msg['error']}")
        return msg.get("result", {})

    def call(self, method, params=None, session=None, timeout=None):
        return self.reply(self.send(method, params, session), method, timeout)

    def event(self, method, session=None, timeout=None):
        msg = self._wait(lambda m: m.get("method") == method and m.get("sessionId") == session,
                         f"event {method}", timeout)
        return msg.get("params", {})

    def take_events(self, method, session=None):
        """Remove and return the events of that kind received so far."""
        found = [m for m in self.backlog
                 if m.get("method") == method and m.get("sessionId") == session]
        self.backlog = [m for m in self.backlog if m not in found]
        return [m.get("params", {}) for m in found]

    # ---- pages

    def open_page(self, url, width, height):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        self.call("Page.enable", session=session)
        self.call("Runtime.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        page.navigate(url)
        return page

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=5)
            except BrowserError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for fd in (self.cmd_write, self.reply_read):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:
    def __init__(self, browser, session):
        self.browser = browser
        self.session = session

    def call(self, method, params=None, timeout=None):
        return self.browser.call(method, params, self.session, timeout)

    def navigate(self, url):
        self.browser.take_events("Page.loadEventFired", self.session)
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot load {url}: {result['errorText']}")
        self.browser.event("Page.loadEventFired", self.session)

    @property
    def errors(self):
        """JavaScript exceptions the page threw so far (descriptions)."""
        out = []
        for ev in self.browser.take_events("Runtime.exceptionThrown", self.session):
            details = ev.get("exceptionDetails", {})
            out.append(details.get("exception", {}).get("description") or details.get("text"))
        return out

    def evaluate(self, expression):
        """Value of a JavaScript expression (JSON-serializable); page exceptions are errors."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError("JavaScript error: " + str(
                details.get("exception", {}).get("description") or details.get("text")))
        return result.get("result", {}).get("value")

    def wait_until(self, expression, what, timeout=10.0):
        """Evaluate until the expression is truthy (polled; the page may update later)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise BrowserError(f"{what}: not true within {timeout} s: {expression}")
            # A round trip to the renderer: lets pending tasks run, no fixed sleep.
            self.evaluate("new Promise(function (r) { requestAnimationFrame(function () { r(0); }); })")

    def mouse_move(self, x, y):
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def click(self, x, y):
        self.mouse_move(x, y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                   "button": "left", "clickCount": 1})

    def key(self, key, code, key_code, modifiers=0):
        """Press and release a key (modifiers: 1 Alt, 2 Ctrl, 4 Meta, 8 Shift)."""
        for kind in ("rawKeyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code,
                                                 "windowsVirtualKeyCode": key_code,
                                                 "modifiers": modifiers})

    def key_answering_prompt(self, key, code, key_code, modifiers, answer):
        """Press a key that makes the page open a prompt(); answer it. Returns the dialog's
        parameters (type, message, defaultPrompt)."""
        down = self.browser.send("Input.dispatchKeyEvent",
                                 {"type": "rawKeyDown", "key": key, "code": code,
                                  "windowsVirtualKeyCode": key_code, "modifiers": modifiers},
                                 self.session)
        dialog = self.browser.event("Page.javascriptDialogOpening", self.session)
        self.call("Page.handleJavaScriptDialog", {"accept": True, "promptText": answer})
        self.browser.reply(down, "key press that opened the dialog")
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                             "windowsVirtualKeyCode": key_code,
                                             "modifiers": modifiers})
        return dialog
