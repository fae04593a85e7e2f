# SPDX-License-Identifier: MIT
"""What the end-to-end drivers of tests/e2e/ share. A driver puts tests/ on sys.path and imports
`from pylib.<module> import ...`; drivers never import each other."""
