# SPDX-License-Identifier: MIT
"""What the detection test drivers (lua_detect_test.py, luajit_detect_test.py) share: a list of
failed checks that ends the test with its verdict, and running a command for its output."""
import subprocess
import sys


class Failures:
    """Checks that may fail without ending the test; exit() gives the verdict."""

    def __init__(self):
        self.messages = []

    def check(self, cond, message):
        if not cond:
            self.messages.append(message)
            print(f"FAIL {message}")
        return cond

    def exit(self):
        if self.messages:
            print(f"{len(self.messages)} failure(s)")
            sys.exit(1)
        print("PASS")
        sys.exit(0)


def run(cmd, cwd=None):
    """cmd's stdout; RuntimeError with its output when it exits non-zero."""
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc.stdout
