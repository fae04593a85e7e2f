# SPDX-License-Identifier: MIT
"""How a driver reports: log lines, a failure that ends the case, the skip status."""


SKIP = 77


class TestFailure(Exception):
    pass


def log(msg=""):
    print(msg, flush=True)


def fail(msg):
    raise TestFailure(msg)
