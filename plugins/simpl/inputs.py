"""Checks of the arrays a lab hands to SIMPL: each violation is one line naming the array, the
first bad index and the rule (a `ConfigError`, exit status 2 on the command line).

- counts (T, N): finite, non-negative integers (spike counts per bin and cell);
- behaviour (T,) or (T, D): finite, except at samples the user marks `missing` (there NaN is
  allowed, and the samples are interpolated linearly in time - along the circle for an angle - and
  a warning says how many);
- time (T,): finite and strictly increasing (bin start times, s); dt > 0 (the bin width, s; by
  default the median step of time, and within a factor GAP of it where given);
- truth (optional, shape of behaviour): finite; missing (optional, (T,)): booleans;
- every array has one row per time bin.
"""
import warnings
from dataclasses import dataclass

import numpy as np

from tcnet.validate import ConfigError, positive

GAP = 1.5
"""A step of time longer than GAP * dt is a gap between segments (estep.segment_starts); a given dt
must lie within this factor of time's median step."""


class InterpolatedWarning(UserWarning):
    """Behaviour samples marked missing were interpolated."""


@dataclass(frozen=True)
class Inputs:
    counts: np.ndarray  # (T, N) integers (as given, or int64 from floats)
    behaviour: np.ndarray  # (T, D) float
    time: np.ndarray  # (T,)
    dt: float
    truth: np.ndarray | None
    interpolated: int  # number of behaviour samples filled in


def _index(a, flat):
    idx = np.unravel_index(flat, a.shape)
    return ", ".join(str(int(i)) for i in idx)


def _numeric(name, value, ndims):
    a = np.asarray(value)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ConfigError(f"simpl: {name} must be a numeric array, got dtype {a.dtype}")
    if a.ndim not in ndims:
        raise ConfigError(f"simpl: {name} must have {' or '.join(map(str, ndims))} dimension(s), got shape {a.shape}")
    return a


def _first(name, a, bad, rule):
    flat = int(np.flatnonzero(bad.ravel())[0])
    raise ConfigError(f"simpl: {name}[{_index(a, flat)}] = {a.ravel()[flat].item()!r}: {rule}")


def check_counts(counts) -> np.ndarray:
    y = _numeric("counts", counts, (2,))
    if not np.all(np.isfinite(y)):
        _first("counts", y, ~np.isfinite(y), "counts must be finite")
    if np.any(y < 0):
        _first("counts", y, y < 0, "counts must be non-negative")
    if np.issubdtype(y.dtype, np.floating) and np.any(y != np.round(y)):
        _first("counts", y, y != np.round(y), "counts must be integers (spikes per bin)")
    return y if y.dtype.kind in "iu" else y.astype(np.int64)  # integers keep their dtype (no copy)


def check_time(time, dt=None) -> tuple[np.ndarray, float]:
    t = _numeric("time", time, (1,)).astype(float)
    if not np.all(np.isfinite(t)):
        _first("time", t, ~np.isfinite(t), "time must be finite")
    if t.size < 2:
        raise ConfigError(f"simpl: time must have at least 2 bins, got {t.size}")
    steps = np.diff(t)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ConfigError(f"simpl: time[{i}] = {t[i].item()!r} <= time[{i - 1}] = {t[i - 1].item()!r}: "
                          "time must be strictly increasing")
    median = float(np.median(steps))
    if dt is None:
        return t, median
    dt = positive("simpl", "dt", dt)
    if not median / GAP <= dt <= median * GAP:
        raise ConfigError(f"simpl: dt must be within a factor {GAP:g} of time's median step {median:.4g} s (bins of "
                          f"width dt start at time; a step beyond {GAP:g} dt is a gap, so with a smaller dt every bin "
                          f"would be a segment of its own), got {dt:g}")
    return t, dt


def check_behaviour(behaviour, time, missing=None, angular=False, name="behaviour") -> tuple[np.ndarray, int]:
    """Behaviour as (T, D) with missing samples interpolated; the number interpolated."""
    b = _numeric(name, behaviour, (1, 2)).astype(float)
    b = b[:, None] if b.ndim == 1 else b
    if missing is None:
        marked = np.zeros(b.shape[0], dtype=bool)
    else:
        marked = np.asarray(missing)
        if marked.dtype != bool or marked.shape != (b.shape[0],):
            raise ConfigError(f"simpl: missing must be booleans of shape ({b.shape[0]},) (one per time bin), "
                              f"got {marked.dtype} {marked.shape}")
    bad = ~np.isfinite(b) & ~marked[:, None]
    if bad.any():
        rule = f"{name} must be finite" + (" outside the samples marked missing" if missing is not None else
                                            " (mark tracking losses with `missing` to interpolate them)")
        _first(name, b, bad, rule)
    if not marked.any():
        return b, 0
    if marked.all():
        raise ConfigError(f"simpl: missing marks every sample of {name}; at least one must be measured")
    keep = ~marked
    filled = b.copy()
    for i in range(b.shape[1]):
        values = np.unwrap(b[keep, i]) if angular else b[keep, i]
        filled[marked, i] = np.interp(time[marked], time[keep], values)
    if angular:
        filled = np.mod(filled, 2 * np.pi)
    n = int(marked.sum())
    warnings.warn(f"simpl: {name}: interpolated {n} sample(s) marked missing, linearly in time"
                  f"{' along the circle' if angular else ''}", InterpolatedWarning, stacklevel=3)
    return filled, n


def _same_length(arrays):
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k} {n}" for k, n in lengths.items())
        raise ConfigError(f"simpl: counts, behaviour, time (and truth, missing) must have one row per time "
                          f"bin, got lengths {listed}")


def check_inputs(counts, behaviour, time, *, dt=None, missing=None, truth=None, angular=False) -> Inputs:
    """The checked arrays (module docstring); ConfigError names the first violation."""
    y = check_counts(counts)
    _same_length({"counts": y, "behaviour": np.atleast_1d(behaviour), "time": np.atleast_1d(time),
                  "truth": None if truth is None else np.atleast_1d(truth),
                  "missing": None if missing is None else np.atleast_1d(missing)})
    t, dt = check_time(time, dt)
    b, n = check_behaviour(behaviour, t, missing, angular)
    if truth is not None:
        truth, _ = check_behaviour(truth, t, None, angular, name="truth")
        if truth.shape != b.shape:
            raise ConfigError(f"simpl: truth must have the shape of behaviour {b.shape}, got {truth.shape}")
    return Inputs(y, b, t, dt, truth, n)
