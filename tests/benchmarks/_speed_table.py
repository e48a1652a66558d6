"""Rows the speed benchmarks append and tests/benchmarks/conftest.py prints at the session's end."""

RATIOS = []
"""(path, N, min, median of the per-round ratios): cost relative to numpy.linalg.eig of the same J."""

NOTES = []
"""Free-text lines (fitted exponents, other benchmarks)."""

RUNS = []
"""(backend, evaluations, paths, final loss, run seconds, eig seconds per evaluation with the user's
BLAS threads, eig seconds per evaluation timed inside the run): end-to-end runs."""


def ratio_table(ratios) -> list[str]:
    """One line per N, one column per path (in the order first seen): 'median (min)' ratios."""
    paths = list(dict.fromkeys(path for path, *_ in ratios))
    cells = {(path, N): f"{r_med:.2f} ({r_min:.2f})" for path, N, r_min, r_med in ratios}
    sizes = sorted({N for _, N, *_ in ratios})
    width = max(13, *(len(p) + 2 for p in paths))
    lines = [f"{'N':>6}" + "".join(f"{p:>{width}}" for p in paths)]
    lines += [f"{N:>6}" + "".join(f"{cells.get((p, N), '-'):>{width}}" for p in paths) for N in sizes]
    return lines


def run_table(runs) -> list[str]:
    """One line per backend: evaluations (and the paths that computed them), final loss, the run's
    time, one eig as a user has it (and, in parentheses, as timed inside the run), and the run's
    ratio to (evaluations x one numpy.linalg.eig), the faster of the two."""
    lines = [f"{'backend':>10} {'evaluations':>12} {'paths':>18} {'final loss':>12} {'run s':>8} {'eig s (in run)':>15} "
             f"{'run / (evaluations x eig)':>26}"]
    for backend, n, paths, final, seconds, eig, eig_in_run in runs:
        lines.append(f"{backend:>10} {n:>12} {paths:>18} {final:>12.8f} {seconds:>8.1f} "
                     f"{f'{eig:.3f} ({eig_in_run:.3f})':>15} {seconds / (n * min(eig, eig_in_run)):>26.2f}")
    return lines
