"""Rows the speed benchmarks append and tests/benchmarks/conftest.py prints at the session's end."""

RATIOS = []
"""(what, N, ratio of minima, ratio of medians): cost relative to numpy.linalg.eig of the same J."""

NOTES = []
"""Free-text lines (fitted exponents, end-to-end runs)."""
