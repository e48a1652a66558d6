"""Rows the speed benchmarks append and tests/benchmarks/conftest.py prints at the session's end."""

RATIOS = []
"""(path, N, min, median of the per-round ratios): cost relative to numpy.linalg.eig of the same J."""

NOTES = []
"""Free-text lines (fitted exponents, end-to-end runs)."""


def ratio_table(ratios) -> list[str]:
    """One line per N, one column per path (in the order first seen): 'median (min)' ratios."""
    paths = list(dict.fromkeys(path for path, *_ in ratios))
    cells = {(path, N): f"{r_med:.2f} ({r_min:.2f})" for path, N, r_min, r_med in ratios}
    sizes = sorted({N for _, N, *_ in ratios})
    width = max(13, *(len(p) + 2 for p in paths))
    lines = [f"{'N':>6}" + "".join(f"{p:>{width}}" for p in paths)]
    lines += [f"{N:>6}" + "".join(f"{cells.get((p, N), '-'):>{width}}" for p in paths) for N in sizes]
    return lines
