"""Reading an NWB recording for SIMPL as the file means it (docs/SIMPL.md, "NWB").

- Values: a series' stored data times its `conversion` plus its `offset` is in its `unit`; the unit
  maps to SI (`UNITS`: metres or radians), and an unknown unit is refused in one line.
- Space: a CompassDirection's series, or a series in an angle unit, is an angle (space 'angular');
  any other SpatialSeries, with 1 or 2 columns, is a position on a line or a plane ('linear'). The
  user's `space` overrides it, but a length is never read as an angle.
- Bins of width dt (default: the series' median sampling step) start at the series' first
  timestamp; there are as many as there are bin starts up to the last timestamp, within SNAP dt
  (so that the last sample's bin is not lost to the rounding of an estimated dt); a bin start
  within SNAP dt of a sample starts at that sample. Behaviour is the series interpolated at each
  bin start, an angle along the circle (unwrapped, interpolated, wrapped). Bins inside a gap of the
  series (two samples more than GAP dt apart) are dropped, so the time axis keeps the gap; NaN
  samples are marked missing. Counts are the spikes in [start, start + dt).
- Every bin or spike that is not used is counted, by reason, in the reading's report (files.py).
"""
import numpy as np

from tcnet.resources import FLOAT, require
from tcnet.validate import ConfigError, positive
from tcnet_plugins.simpl.inputs import GAP
from tcnet_plugins.simpl.space import TURN

SNAP = 1e-3
"""A bin start within SNAP dt of a sample is that sample; a last bin start within SNAP dt after the
last sample is kept. An estimated dt (a median of differences of float timestamps) is off by about
1e-15 relative, and over 18 000 bins that put the last bin start a hair past the last sample."""

METRE, RADIAN = "m", "rad"
UNITS = {
    **dict.fromkeys(("m", "meter", "meters", "metre", "metres"), (METRE, 1.0)),
    **dict.fromkeys(("cm", "centimeter", "centimeters", "centimetre", "centimetres"), (METRE, 0.01)),
    **dict.fromkeys(("mm", "millimeter", "millimeters", "millimetre", "millimetres"), (METRE, 0.001)),
    **dict.fromkeys(("rad", "radian", "radians"), (RADIAN, 1.0)),
    **dict.fromkeys(("deg", "degree", "degrees"), (RADIAN, np.pi / 180)),
}
"""A series' unit (lower case) -> (SI unit, factor to it)."""


def si_unit(unit, name, path) -> tuple[str, float]:
    """(SI unit, factor) of a series' `unit` (UNITS); one line naming the series if unknown."""
    key = str(unit).strip().lower()
    if key not in UNITS:
        raise ConfigError(f"simpl: SpatialSeries {name!r} in {str(path)!r} has unit {unit!r}; SIMPL reads "
                          f"lengths in m, cm or mm and angles in radians or degrees (write the series' unit and "
                          f"conversion as NWB defines them)")
    return UNITS[key]


def space_of(series, si, path, space=None) -> str:
    """The latent space of `series` in SI unit `si`: the user's `space`, else 'angular' for a
    CompassDirection's series or an angle, else 'linear'; an angle needs one column."""
    compass = type(series.parent).__name__ == "CompassDirection"
    inferred = "angular" if compass or si == RADIAN else "linear"
    chosen = space or inferred
    if chosen == "angular" and si != RADIAN:
        fix = "give space 'linear' to fit it as a position" if space is None else "leave space out to fit it as a position"
        raise ConfigError(f"simpl: space 'angular' needs an angle, but {'CompassDirection ' if compass else ''}"
                          f"SpatialSeries {series.name!r} in {str(path)!r} is a length (unit {series.unit!r}); {fix}")
    return chosen


def open_series(nwb, path, series=None):
    """The behavioural SpatialSeries of an open NWB file: the one named `series`, or its only one."""
    from pynwb.behavior import SpatialSeries

    found = {obj.name: obj for obj in nwb.objects.values() if isinstance(obj, SpatialSeries)}
    if series is not None:
        if series not in found:
            raise ConfigError(f"simpl: {str(path)!r} has no SpatialSeries {series!r} "
                              f"(found: {', '.join(sorted(found)) or 'none'})")
        return found[series]
    if len(found) != 1:
        raise ConfigError(f"simpl: {str(path)!r} must hold one behavioural SpatialSeries, or name one with "
                          f"series (found: {', '.join(sorted(found)) or 'none'})")
    return next(iter(found.values()))


def series_values(s, path) -> tuple[np.ndarray, np.ndarray, dict]:
    """The samples (T, D) in SI units and their timestamps (T,) of SpatialSeries `s`, and what was
    applied: {series, container, unit, conversion, offset, si_unit}."""
    si, factor = si_unit(s.unit, s.name, path)
    conversion, offset = float(s.conversion), float(getattr(s, "offset", 0.0) or 0.0)
    raw = np.asarray(s.data[()], dtype=float)
    if raw.ndim not in (1, 2):
        raise ConfigError(f"simpl: SpatialSeries {s.name!r} in {str(path)!r} must have 1 or 2 dimensions "
                          f"(time, columns), got shape {raw.shape}")
    samples = (raw * conversion + offset) * factor
    samples = samples[:, None] if samples.ndim == 1 else samples
    stamps = np.asarray(s.timestamps[()] if s.timestamps is not None else
                        s.starting_time + np.arange(len(raw)) / s.rate, dtype=float)
    if stamps.size < 2 or stamps.shape[0] != samples.shape[0] or np.any(np.diff(stamps) <= 0):
        raise ConfigError(f"simpl: SpatialSeries {s.name!r} in {str(path)!r} needs at least 2 strictly "
                          "increasing timestamps, one per sample")
    applied = {"series": s.name, "container": type(s.parent).__name__, "unit": str(s.unit),
               "conversion": conversion, "offset": offset, "si_unit": si}
    return samples, stamps, applied


def resample(stamps, samples, time, angular) -> np.ndarray:
    """samples (T, D) at `stamps` linearly interpolated at `time`: an angle along the circle (its
    finite samples unwrapped, interpolated, wrapped into [0, 2 pi)); NaN where a neighbour is NaN."""
    out = np.empty((time.size, samples.shape[1]))
    for i in range(samples.shape[1]):
        x = samples[:, i]
        if angular:
            x = x.copy()
            ok = np.isfinite(x)
            x[ok] = np.unwrap(x[ok])
        out[:, i] = np.interp(time, stamps, x)
    return np.mod(out, TURN) if angular else out


def bin_starts(stamps, dt) -> tuple[np.ndarray, np.ndarray]:
    """The kept bins' indices k and start times (each a sample's own time within SNAP dt), and
    the number of bins in all (module docstring)."""
    total = int(np.floor((stamps[-1] - stamps[0]) / dt + SNAP)) + 1
    k = np.arange(total)
    time = stamps[0] + k * dt
    after = np.searchsorted(stamps, time, side="right")  # stamps[after - 1] <= time < stamps[after]
    lo, hi = stamps[after - 1], stamps[np.minimum(after, stamps.size - 1)]
    on_sample = np.minimum(np.abs(time - lo), np.abs(hi - time)) <= SNAP * dt
    inside = on_sample | ((after < stamps.size) & (hi - lo <= GAP * dt))
    time = np.where(on_sample, np.where(np.abs(hi - time) < np.abs(time - lo), hi, lo), time)
    return k[inside], time[inside], total


def bin_spikes(spikes, t0, dt, k, total) -> tuple[np.ndarray, dict]:
    """Counts (len(k), N) of each cell's spike times in the kept bins [t0 + k dt, + dt), and the
    spikes dropped by reason."""
    row = np.full(total, -1)
    row[k] = np.arange(k.size)
    counts = np.zeros((k.size, len(spikes)), dtype=np.int64)
    dropped = {"before the first bin": 0, "after the last bin": 0, "in gaps of the series": 0}
    for n, st in enumerate(spikes):
        b = np.floor((st - t0) / dt).astype(np.int64)
        early, late = b < 0, b >= total
        dropped["before the first bin"] += int(early.sum())
        dropped["after the last bin"] += int(late.sum())
        r = row[b[~early & ~late]]
        dropped["in gaps of the series"] += int((r < 0).sum())
        counts[:, n] = np.bincount(r[r >= 0], minlength=k.size)
    return counts, dropped


def read_nwb(path, *, dt=None, series=None, space=None) -> dict:
    """Counts, behaviour (SI units), time, missing, dt, space, and the reading's `report` (its
    units, bins and what was dropped) from an NWB file (module docstring)."""
    from pynwb import NWBHDF5IO

    try:
        io = NWBHDF5IO(str(path), "r")
        nwb = io.read()
    except Exception as err:  # pynwb raises many types for a foreign or broken file
        raise ConfigError(f"simpl: {str(path)!r} is not a readable NWB file ({type(err).__name__}: {err})") from None
    with io:
        s = open_series(nwb, path, series)
        samples, stamps, applied = series_values(s, path)
        chosen = space_of(s, applied["si_unit"], path, space)
        if nwb.units is None or len(nwb.units) == 0:
            raise ConfigError(f"simpl: {str(path)!r} has no Units table with spike times")
        spikes = [np.asarray(nwb.units.get_unit_spike_times(i), dtype=float) for i in range(len(nwb.units))]
    if chosen == "angular" and samples.shape[1] != 1:
        raise ConfigError(f"simpl: an angle has one column, but SpatialSeries {s.name!r} in {str(path)!r} "
                          f"has {samples.shape[1]}")
    estimated = dt is None
    dt = float(np.median(np.diff(stamps))) if estimated else positive("simpl", "dt", dt)
    span = stamps[-1] - stamps[0]
    require("simpl", f"dt {dt:g} s over the series' {span:g} s ({span / dt + 1:.3g} bins) x {len(spikes)} "
            "cells", FLOAT * (span / dt + 1) * (8 + samples.shape[1] + len(spikes)))  # indices, times, masks, data
    k, time, total = bin_starts(stamps, dt)
    behaviour = resample(stamps, samples, time, chosen == "angular")
    counts, dropped = bin_spikes(spikes, stamps[0], dt, k, total)
    missing = np.isnan(behaviour).any(axis=1)
    report = {"file": str(path), "format": "NWB", **applied, "space": chosen, "columns": samples.shape[1],
              "samples": int(stamps.size), "dt": dt, "dt_from": "the series' median step" if estimated else "given",
              "bins": int(k.size), "span": [float(stamps[0]), float(stamps[0] + (total - 1) * dt + dt)],
              "cells": len(spikes), "spikes": int(sum(st.size for st in spikes)), "spikes_binned": int(counts.sum()),
              "dropped_spikes": dropped, "dropped_bins": {"in gaps of the series": int(total - k.size)},
              "missing_bins": int(missing.sum())}
    return {"counts": counts, "behaviour": behaviour, "time": time, "missing": missing, "dt": dt,
            "space": chosen, "report": report}
