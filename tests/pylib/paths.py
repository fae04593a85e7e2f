# SPDX-License-Identifier: MIT
"""Where the test tree's parts are, for the drivers of tests/e2e/ and the benchmarks."""
import os

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(TESTS, "fixtures")
SOURCE_ROOT = os.path.dirname(TESTS)


def fixture(*parts):
    """A file of tests/fixtures/: fixture("lua", "coroutines.lua")."""
    return os.path.join(FIXTURES, *parts)
