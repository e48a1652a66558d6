"""Analysis of preparatory networks: relative activity norm over time and decay times.

For x0 ~ N(0, I) the mean squared norm of x(t) = expm(A t) x0, relative to its initial value N, is

    h(t) = (1/N) ||expm(A t)||_F^2 = (1/N) Re Tr(R (M o E(t)) R^H),  E_ij = exp((gamma_i + conj gamma_j) t)

(DESIGN.md), i.e. h(t) = (1/N) Re e^T K conj(e) with e = exp(gamma t) and K = M o (R^H R)^T from the
network's state: O(N^2) per time once the eigendecomposition is known. The decay time t_f to a
fraction f of the initial norm solves h(t) = f^2. For one simulated trajectory, `crossing_time`
finds when its norm first falls to a fraction of its start.
"""
import numpy as np
from scipy.optimize import brentq


def relative_sq_norm(dynamics, t) -> np.ndarray:
    """h(t) = E||x(t)||^2 / E||x(0)||^2 for x0 ~ N(0, I), at each time in t."""
    s = dynamics.current
    e = np.exp(np.outer(np.atleast_1d(t), s.gamma))  # (T, N)
    return np.real(np.einsum("ti,ij,tj->t", e, s.K, np.conj(e))) / dynamics.N


def decay_time(dynamics, f, max_doublings=60) -> float:
    """The time t_f at which h(t_f) = f^2 (rms activity down to a fraction f of its start).

    The bracket [T/2, T] is found by doubling T from tau until h(T) < f^2; brentq solves within it.
    Returns inf when the network is not stable (the activity does not decay).
    """
    if not 0 < f < 1:
        raise ValueError(f"decay_time: f must be in (0, 1), got {f!r}")
    s = dynamics.current
    if np.max(np.real(s.gamma)) >= 0:
        return float("inf")
    target = f * f
    g = lambda t: relative_sq_norm(dynamics, t)[0] - target  # noqa: E731
    lo, hi = 0.0, float(dynamics.config["tau"])
    for _ in range(max_doublings):
        if g(hi) < 0:
            return float(brentq(g, lo, hi, xtol=1e-14 * hi, rtol=1e-12))
        lo, hi = hi, 2 * hi
    return float("inf")


def crossing_time(t, ratio, f) -> float:
    """First time ratio(t) falls to f, interpolated linearly in log(ratio) between grid points
    (exact for exponential decay); nan if it never does on the grid."""
    below = np.flatnonzero(ratio <= f)
    if below.size == 0:
        return float("nan")
    i = below[0]
    if i == 0:
        return float(t[0])
    la, lb = np.log(ratio[i - 1]), np.log(max(ratio[i], 1e-300))
    return float(t[i - 1] + (np.log(f) - la) / (lb - la) * (t[i] - t[i - 1]))
