"""Tasks: the conditions a trajectory is simulated on and what it should produce.

A task is a file (.npz, or HDF5 with the arrays as root datasets) of

- t (T,): strictly increasing times of the grid;
- u (C, T, m): each condition's inputs on the grid (m may be 0), linearly interpolated between
  grid points by the integrator (tcnet.integrate);
- target (C, T, outputs): the readout each condition should produce;
- x0 (C, N), optional: each condition's initial state (else the network's own);
- mask (C, T) or (C, T, outputs), optional, >= 0: where (and how much) the readout error counts.

Arrays are condition-major as written; `Task` also gives them time-major (`inputs`, `targets`,
`weights`: time first, as trajectories are). A bad array is one ConfigError naming it and the
shape it must have.
"""
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tcnet.validate import ConfigError

ARRAYS = ("t", "u", "target", "x0", "mask")


@dataclass(frozen=True)
class Task:
    """The arrays of a task (module docstring), checked."""

    t: np.ndarray
    u: np.ndarray
    target: np.ndarray
    x0: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __post_init__(self):
        t = _floats("t", self.t, "(T,): the time grid, strictly increasing", 1)
        if t.size < 2 or not np.all(np.diff(t) > 0):
            raise ConfigError(f"task: t must have shape (T,) with T >= 2 strictly increasing times, got {t.tolist()[:5]}"
                              f"{' ...' if t.size > 5 else ''}")
        u = _floats("u", self.u, "(conditions, T, inputs)", 3)
        C, T = u.shape[:2]
        if T != t.size:
            raise ConfigError(f"task: u must have shape (conditions, T = {t.size}, inputs), got {u.shape}")
        if C < 1:
            raise ConfigError(f"task: u must have shape (conditions >= 1, T, inputs), got {u.shape}")
        target = _floats("target", self.target, "(conditions, T, outputs)", 3)
        if target.shape[:2] != (C, T):
            raise ConfigError(f"task: target must have shape (conditions = {C}, T = {T}, outputs), got {target.shape}")
        x0 = None if self.x0 is None else _floats("x0", self.x0, f"({C}, N): one initial state per condition", 2)
        if x0 is not None and x0.shape[0] != C:
            raise ConfigError(f"task: x0 must have shape (conditions = {C}, N), got {x0.shape}")
        mask = None
        if self.mask is not None:
            mask = _floats("mask", self.mask, f"({C}, {T}) or ({C}, {T}, {target.shape[2]})", None)
            if mask.shape not in ((C, T), target.shape):
                raise ConfigError(f"task: mask must have shape ({C}, {T}) or {target.shape}, got {mask.shape}")
            if np.any(mask < 0) or not np.any(mask > 0):
                raise ConfigError("task: mask must hold weights >= 0, not all 0")
        for name, value in (("t", t), ("u", u), ("target", target), ("x0", x0), ("mask", mask)):
            object.__setattr__(self, name, value)

    @classmethod
    def read(cls, path) -> "Task":
        """The task in a .npz or HDF5 file (module docstring)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"task: file {str(path)!r} does not exist")
        try:
            if path.suffix.lower() == ".npz":
                with np.load(path, allow_pickle=False) as f:
                    arrays = {k: f[k] for k in f.files}
            elif path.suffix.lower() in (".h5", ".hdf5"):
                with h5py.File(path, "r") as f:
                    arrays = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
            else:
                raise ConfigError(f"task: file must end in .npz, .h5 or .hdf5, got {str(path)!r}")
        except (OSError, ValueError) as err:
            raise ConfigError(f"task: {str(path)!r} is not a readable task file ({err})") from None
        return cls.from_arrays(arrays, str(path))

    @classmethod
    def from_arrays(cls, arrays: dict, where: str = "task") -> "Task":
        """The task of a dict of arrays: t, u, target required, x0 and mask optional, nothing else."""
        missing = [k for k in ("t", "u", "target") if k not in arrays]
        extra = sorted(set(arrays) - set(ARRAYS))
        if missing or extra:
            what = f"has no {', '.join(missing)}" if missing else f"has unknown array(s) {', '.join(extra)}"
            raise ConfigError(f"task: {where} {what} (a task holds t, u, target; optional x0, mask)")
        return cls(**{k: arrays.get(k) for k in ARRAYS})

    def arrays(self) -> dict:
        """The arrays given, by name (as a file holds them)."""
        return {k: getattr(self, k) for k in ARRAYS if getattr(self, k) is not None}

    def save(self, path) -> None:
        """Write the task as .npz (HDF5 for a .h5 / .hdf5 path)."""
        path = Path(path)
        if path.suffix.lower() in (".h5", ".hdf5"):
            with h5py.File(path, "w") as f:
                for k, a in self.arrays().items():
                    f.create_dataset(k, data=a)
        else:
            np.savez(path, **self.arrays())

    @property
    def conditions(self) -> int:
        return self.u.shape[0]

    @property
    def n_inputs(self) -> int:
        return self.u.shape[2]

    @property
    def n_outputs(self) -> int:
        return self.target.shape[2]

    @property
    def inputs(self) -> np.ndarray | None:
        """u time-major (T, C, m); None where m = 0."""
        return np.ascontiguousarray(self.u.transpose(1, 0, 2)) if self.n_inputs else None

    @property
    def targets(self) -> np.ndarray:
        """target time-major (T, C, outputs)."""
        return np.ascontiguousarray(self.target.transpose(1, 0, 2))

    @property
    def weights(self) -> np.ndarray:
        """The mask time-major, broadcast to (T, C, outputs); ones without a mask."""
        if self.mask is None:
            return np.ones(self.targets.shape)
        m = self.mask if self.mask.ndim == 3 else self.mask[:, :, None]
        return np.ascontiguousarray(np.broadcast_to(m, self.target.shape).transpose(1, 0, 2))


def _floats(name, value, shape: str, ndim) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "biuf" or (ndim is not None and a.ndim != ndim):
        raise ConfigError(f"task: {name} must be a real array of shape {shape}, got "
                          f"{'dtype ' + str(a.dtype) if a.dtype.kind not in 'biuf' else 'shape ' + str(a.shape)}")
    a = a.astype(float)
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"task: {name} must be finite, found {np.count_nonzero(~np.isfinite(a))} non-finite entries")
    return a
