"""Reading a lab's recording for SIMPL (layout: docs/SIMPL.md).

- `.npz` (numpy, read without pickle) or HDF5 (`.h5`, `.hdf5`): arrays `counts` (T, N), `behaviour`
  (T,) or (T, D), `time` (T,), optionally `truth` (shape of behaviour) and `missing` (T,) booleans;
  an optional scalar `dt` (npz array, or HDF5 root attribute) is the bin width in seconds.
- `.nwb` (Neurodata Without Borders, read with pynwb): spike times of every unit of the Units table,
  and one behavioural SpatialSeries (position, or a CompassDirection's angle; name it with `series`
  when the file has several), in SI units after its conversion, offset and unit, binned at dt, an
  angle resampled along the circle (nwb.py).

Every reading comes with its `report` (what was read: units, space, bins, dt, span, cells, spikes,
and what was dropped and why), which `describe` puts in words. Every problem is one line
(ConfigError) naming the file and what is expected.
"""
from pathlib import Path

import h5py
import numpy as np

from tcnet.validate import ConfigError, positive
from tcnet_plugins.simpl.nwb import read_nwb

ARRAYS = ("counts", "behaviour", "time", "truth", "missing")
REQUIRED = ARRAYS[:3]


def read(path, *, dt=None, series=None, space=None) -> dict:
    """The arrays of a recording (module docstring), with 'dt' when the file states it or dt is
    given, 'space' when the file says it (NWB; `space` overrides it) and the reading's 'report'."""
    if not str(path):
        raise ConfigError("simpl: data file '': not a file name (expected a .npz, HDF5 or NWB file)")
    path = Path(path)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        raise ConfigError(f"simpl: data file {str(path)!r} {problem}")
    suffix = path.suffix.lower()
    if suffix == ".nwb":
        return read_nwb(path, dt=dt, series=series, space=space)
    if series is not None:
        raise ConfigError(f"simpl: series names a SpatialSeries of an NWB file; {str(path)!r} is not .nwb")
    if suffix == ".npz":
        out = _read_npz(path)
    elif suffix in (".h5", ".hdf5"):
        out = _read_hdf5(path)
    else:
        raise ConfigError(f"simpl: data file must end in .npz, .h5, .hdf5 or .nwb, got {str(path)!r}")
    missing = [k for k in REQUIRED if k not in out]
    if missing:
        raise ConfigError(f"simpl: {str(path)!r} has no {', '.join(missing)} (expected arrays counts, behaviour, "
                          f"time; optional truth, missing, dt)")
    if dt is not None:
        out["dt"] = positive("simpl", "dt", dt)
    out["report"] = array_report(path, out, "given" if dt is not None else "the file's" if "dt" in out else None)
    return out


def array_report(path, arrays, dt_from) -> dict:
    """The report of a file of arrays: they are taken as they are (metres, or radians on the
    circle; bins as given), so nothing is converted or dropped; shapes as read (checked later)."""
    counts, behaviour, time = (np.asarray(arrays[k]) for k in REQUIRED)
    report = {"file": str(path), "format": path.suffix.lower().lstrip("."), "unit": "as given (m, or rad on the circle)",
              "columns": 1 if behaviour.ndim == 1 else int(behaviour.shape[-1]), "bins": int(time.size),
              "cells": int(counts.shape[1]) if counts.ndim == 2 else 0,
              "spikes": int(counts.sum()) if counts.size and np.issubdtype(counts.dtype, np.number) else 0}
    if time.ndim == 1 and time.size >= 2 and np.issubdtype(time.dtype, np.number):
        dt = arrays.get("dt", float(np.median(np.diff(time))))
        report.update(dt=float(dt), dt_from=dt_from or "the median step of time",
                      span=[float(time[0]), float(time[-1] + dt)])
    if "missing" in arrays:
        report["missing_bins"] = int(np.count_nonzero(arrays["missing"]))
    return report


def describe(report) -> list[str]:
    """The report of a reading in words: what was read, in which units, how it was binned, and
    every bin or spike that was dropped, with the reason."""
    r = report
    if r["format"] == "NWB":
        scale = f" x conversion {r['conversion']:g}" + (f" + offset {r['offset']:g}" if r["offset"] else "")
        lines = [f"read {r['file']}: NWB {r['container']} series {r['series']!r}, {r['samples']} samples, "
                 f"unit {r['unit']!r}{scale} -> {r['si_unit']}; space {r['space']} ({r['columns']} column(s))"]
    else:
        lines = [f"read {r['file']}: arrays ({r['format']}), behaviour {r['unit']}, {r['columns']} column(s)"]
    if "dt" in r:
        lines.append(f"{r['bins']} bins of dt {r['dt']:.6g} s ({r['dt_from']}) over [{r['span'][0]:.6g}, "
                     f"{r['span'][1]:.6g}] s; {r['cells']} cells, {r['spikes']} spikes")
    drops = [f"{n} spikes {why}" for why, n in r.get("dropped_spikes", {}).items()]
    drops += [f"{n} bins {why}" for why, n in r.get("dropped_bins", {}).items()]
    if drops:
        lines.append(f"dropped: {', '.join(drops)} ({r['spikes_binned']} spikes binned)")
    if "missing_bins" in r:
        lines.append(f"{r['missing_bins']} bins without behaviour (NaN, marked missing: interpolated)")
    return lines


def _read_npz(path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: f[k] for k in f.files if k in ARRAYS or k == "dt"}
    except (OSError, ValueError) as err:
        raise ConfigError(f"simpl: {str(path)!r} is not a readable .npz file ({err})") from None
    if "dt" in out:
        out["dt"] = float(out["dt"])
    return out


def _read_hdf5(path) -> dict:
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ConfigError(f"simpl: {str(path)!r} is not a readable HDF5 file ({err})") from None
    with f:
        out = {k: f[k][()] for k in ARRAYS if k in f and isinstance(f[k], h5py.Dataset)}
        if "dt" in f.attrs:
            out["dt"] = float(f.attrs["dt"])
    return out
