"""Reading a lab's recording for SIMPL (layout: docs/SIMPL.md).

- `.npz` (numpy, read without pickle) or HDF5 (`.h5`, `.hdf5`): arrays `counts` (T, N), `behaviour`
  (T,) or (T, D), `time` (T,), optionally `truth` (shape of behaviour) and `missing` (T,) booleans;
  an optional scalar `dt` (npz array, or HDF5 root attribute) is the bin width in seconds.
- `.nwb` (Neurodata Without Borders, read with pynwb): spike times of every unit of the Units table,
  and one behavioural SpatialSeries (position, or a CompassDirection's angle; name it with `series`
  when the file has several). Bins of width dt start at the series' first timestamp; behaviour is
  the series linearly interpolated at each bin start (a bin starting within 1e-6 dt of a sample
  starts at that sample); counts are the spikes in [start, start + dt).
  Bins that fall in a gap of the series (two samples more than 1.5 dt apart) are dropped, so the
  time axis keeps the gap and the smoother is split there. NaN samples (tracking lost) are marked
  missing. dt defaults to the series' median sampling step.

Every problem is one line (ConfigError) naming the file and what is expected.
"""
from pathlib import Path

import h5py
import numpy as np

from tcnet.resources import FLOAT, require
from tcnet.validate import ConfigError, positive
from tcnet_plugins.simpl.inputs import GAP  # a step longer than GAP * dt between samples is a gap

ARRAYS = ("counts", "behaviour", "time", "truth", "missing")
REQUIRED = ARRAYS[:3]


def read(path, *, dt=None, series=None) -> dict:
    """The arrays of a recording (module docstring), with 'dt' when the file states it or dt is given."""
    if not str(path):
        raise ConfigError("simpl: data file '': not a file name (expected a .npz, HDF5 or NWB file)")
    path = Path(path)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        raise ConfigError(f"simpl: data file {str(path)!r} {problem}")
    suffix = path.suffix.lower()
    if suffix == ".nwb":
        return read_nwb(path, dt=dt, series=series)
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
    return out


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


def read_nwb(path, *, dt=None, series=None) -> dict:
    """Counts, behaviour and time binned from an NWB file (module docstring)."""
    from pynwb import NWBHDF5IO
    from pynwb.behavior import SpatialSeries

    try:
        io = NWBHDF5IO(str(path), "r")
        nwb = io.read()
    except Exception as err:  # pynwb raises many types for a foreign or broken file
        raise ConfigError(f"simpl: {str(path)!r} is not a readable NWB file ({type(err).__name__}: {err})") from None
    with io:
        found = {obj.name: obj for obj in nwb.objects.values() if isinstance(obj, SpatialSeries)}
        if series is not None:
            if series not in found:
                raise ConfigError(f"simpl: {str(path)!r} has no SpatialSeries {series!r} "
                                  f"(found: {', '.join(sorted(found)) or 'none'})")
            s = found[series]
        elif len(found) != 1:
            raise ConfigError(f"simpl: {str(path)!r} must hold one behavioural SpatialSeries, or name one with "
                              f"series (found: {', '.join(sorted(found)) or 'none'})")
        else:
            s = next(iter(found.values()))
        samples = np.asarray(s.data[()], dtype=float)
        stamps = np.asarray(s.timestamps[()] if s.timestamps is not None else
                            s.starting_time + np.arange(len(samples)) / s.rate, dtype=float)
        if nwb.units is None or len(nwb.units) == 0:
            raise ConfigError(f"simpl: {str(path)!r} has no Units table with spike times")
        spikes = [np.asarray(nwb.units.get_unit_spike_times(i), dtype=float) for i in range(len(nwb.units))]
    if stamps.size < 2 or np.any(np.diff(stamps) <= 0):
        raise ConfigError(f"simpl: SpatialSeries {s.name!r} in {str(path)!r} needs at least 2 strictly "
                          "increasing timestamps")
    dt = float(np.median(np.diff(stamps))) if dt is None else positive("simpl", "dt", dt)
    bins = np.floor((stamps[-1] - stamps[0]) / dt + 1e-9) + 1
    dims = 1 if samples.ndim == 1 else samples.shape[1]
    require("simpl", f"dt {dt:g} s over the series' {stamps[-1] - stamps[0]:g} s ({bins:.3g} bins) x {len(spikes)} "
            "cells", FLOAT * bins * (8 + dims + len(spikes)))  # the bins' indices, times, masks, behaviour, counts
    k = np.arange(int(bins))
    time = stamps[0] + k * dt
    after = np.searchsorted(stamps, time, side="right")  # stamps[after - 1] <= time < stamps[after]
    lo, hi = stamps[after - 1], stamps[np.minimum(after, stamps.size - 1)]
    on_sample = np.minimum(time - lo, np.abs(hi - time)) <= 1e-6 * dt
    inside = on_sample | ((after < stamps.size) & (hi - lo <= GAP * dt))
    time = np.where(on_sample, np.where(np.abs(hi - time) < time - lo, hi, lo), time)  # a sample's own time
    time, k = time[inside], k[inside]
    samples = samples[:, None] if samples.ndim == 1 else samples
    behaviour = np.stack([np.interp(time, stamps, samples[:, i]) for i in range(samples.shape[1])], axis=1)
    counts = np.zeros((time.size, len(spikes)), dtype=np.int64)
    row = np.full(k[-1] + 1, -1)
    row[k] = np.arange(k.size)
    for n, st in enumerate(spikes):
        b = np.floor((st - stamps[0]) / dt).astype(int)
        b = b[(b >= 0) & (b <= k[-1])]
        b = row[b][row[b] >= 0]
        counts[:, n] = np.bincount(b, minlength=time.size)
    return {"counts": counts, "behaviour": behaviour, "time": time, "missing": np.isnan(behaviour).any(axis=1),
            "dt": dt}
