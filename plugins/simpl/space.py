"""The latent space of a SIMPL fit: a line, the circle (an angle), or the plane.

- `linear` with 1 or 2 axes: positions in metres (a linear track, an open field);
- `angular`: one axis, an angle in radians on the circle [0, 2 pi) (head direction).

The environment's extent is either given (the tuning-curve grid then covers exactly it) or
inferred at every M-step from the latent's range plus a margin; either way the grid is sized, and
refused beyond GRID_POINTS points or the memory available, before it is allocated (`check_grid`). On the circle the grid always covers
the whole turn, differences are taken on the circle (wrapped into [-pi, pi)), and a trajectory is
*unwrapped* (2 pi jumps removed) before anything linear, like the Kalman smoother, touches it.
"""
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from tcnet.resources import FLOAT, require
from tcnet.validate import ConfigError

TURN = 2 * np.pi
GRID_POINTS = 10**6
"""The most points a tuning-curve grid may have: 1000 x 1000, a 20 m arena at the default 2 cm
spacing (the published 1 m box has 51 x 51). A grid is sized from the latent's range, the extent
and grid_spacing, so behaviour in centimetres, a 1000 m extent or a 10 micrometre spacing would
ask for 1e7 to 1e10 points: refused with the settings named before anything is allocated."""


def wrap(x):
    """Angles mapped into [-pi, pi)."""
    return (np.asarray(x) + np.pi) % TURN - np.pi


@dataclass(frozen=True)
class Space:
    """`kind` 'linear' (dim 1 or 2) or 'angular' (dim 1); `extent` None (inferred) or one
    (low, high) pair per axis (linear only)."""

    kind: str
    dim: int
    extent: tuple | None = None

    def __post_init__(self):
        if self.kind not in ("linear", "angular"):
            raise ConfigError(f"simpl: space must be one of 'linear', 'angular', got {self.kind!r}")
        if self.dim not in (1, 2) or (self.kind == "angular" and self.dim != 1):
            allowed = "1" if self.kind == "angular" else "1 or 2"
            raise ConfigError(f"simpl: a {self.kind} latent has {allowed} dimension(s), behaviour has {self.dim}")
        if self.extent is not None:
            if self.kind == "angular":
                raise ConfigError("simpl: extent is fixed on the circle ([0, 2 pi)); give it only for a linear space")
            ext = np.asarray(self.extent, dtype=float)
            if ext.shape != (self.dim, 2) or not np.all(np.isfinite(ext)) or np.any(ext[:, 1] <= ext[:, 0]):
                raise ConfigError(f"simpl: extent must be {self.dim} (low, high) pair(s) with low < high, "
                                  f"got {self.extent!r}")

    @property
    def angular(self) -> bool:
        return self.kind == "angular"

    @property
    def unit(self) -> str:
        return "rad" if self.angular else "m"

    def span(self, latent, margin) -> tuple[np.ndarray, np.ndarray]:
        """The low and high ends (D,) the grid covers along each axis: the whole turn, the given
        extent, or the latent's range plus `margin`."""
        if self.angular:
            return np.zeros(1), np.full(1, TURN)
        if self.extent is not None:
            return tuple(np.asarray(self.extent, dtype=float).T)
        return latent.min(axis=0) - margin, latent.max(axis=0) + margin

    def grid_shape(self, latent, spacing, margin) -> tuple[float, ...]:
        """The number of grid points along each axis (`axes`), as floats: computed before anything
        is allocated, so that a grid too large to hold can be refused (`check_grid`)."""
        lo, hi = self.span(latent, margin)
        if self.angular:
            return (max(4.0, float(np.round(TURN / spacing))),)
        return tuple(max(2.0, float(np.ceil((h - l) / spacing)) + 1) for l, h in zip(lo, hi))

    def check_grid(self, latent, spacing, margin, n_cells, n_bins) -> tuple[int, ...]:
        """The grid shape, refused in one line naming the settings if it has more than GRID_POINTS
        points or its arrays (the tuning curves, N x G float64, their KDE sums and the E-step's
        likelihood rows, about as many again, and the kernels, T x n float32 per axis) need more
        memory than is available (tcnet.resources.require)."""
        shape = self.grid_shape(latent, spacing, margin)
        points = float(np.prod(shape))
        lo, hi = self.span(latent, margin)
        where = ("the whole turn" if self.angular else "extent " + " x ".join(f"[{l:.4g}, {h:.4g}]" for l, h in zip(lo, hi))
                 + ("" if self.extent is not None else f" (the latent's range plus grid_margin {margin:g} {self.unit})"))
        grid = f"the tuning-curve grid ({' x '.join(f'{n:.3g}' for n in shape)} = {points:.3g} points: {where} at " \
               f"grid_spacing {spacing:g} {self.unit})"
        if points > GRID_POINTS:
            hint = "" if self.angular else "; is behaviour in metres? (else a coarser grid_spacing or a smaller extent)"
            raise ConfigError(f"simpl: {grid} has more than {GRID_POINTS:.0e} points (simpl.space.GRID_POINTS){hint}")
        require("simpl", f"{grid} for {n_cells} cells and {n_bins} bins",
                FLOAT * points * (2 * n_cells + 2) + 4.0 * n_bins * sum(shape))
        return tuple(int(n) for n in shape)

    def axes(self, latent, spacing, margin) -> tuple:
        """Grid points along each axis, `spacing` apart: the whole circle, the given extent, or the
        latent's range plus `margin` (`span`)."""
        shape = self.grid_shape(latent, spacing, margin)
        if self.angular:
            return (np.arange(int(shape[0])) * (TURN / shape[0]),)
        lo, _ = self.span(latent, margin)
        return tuple(lo[i] + spacing * np.arange(int(shape[i])) for i in range(self.dim))

    def difference(self, a, b) -> np.ndarray:
        """a - b, on the circle for an angle."""
        d = np.asarray(a) - np.asarray(b)
        return wrap(d) if self.angular else d

    def error(self, latent, truth) -> float:
        """Mean distance |latent - truth| (m, or rad along the circle)."""
        return float(np.linalg.norm(self.difference(latent, truth), axis=1).mean())

    def canonical(self, x) -> np.ndarray:
        """Points in their canonical range ([0, 2 pi) for an angle)."""
        return np.mod(x, TURN) if self.angular else np.asarray(x)

    def unwrap(self, x, starts) -> np.ndarray:
        """A trajectory without 2 pi jumps inside each segment (segments begin at `starts`)."""
        if not self.angular:
            return np.asarray(x, dtype=float)
        return np.concatenate([np.unwrap(seg, axis=0) for seg in np.split(x, starts[1:])])

    def near(self, z, reference) -> np.ndarray:
        """z moved by whole turns to lie within pi of `reference` (unchanged in a linear space)."""
        return reference + wrap(z - reference) if self.angular else z

    def circular_reference(self, z, R, starts, width=5.0) -> np.ndarray:
        """A smooth unwrapped companion of observations z (T, 1) on the circle with variances R
        (T, 1, 1): per segment, the angle of the precision-weighted mean of exp(i z) over a Gaussian
        window of `width` bins, unwrapped. Moving z within pi of it (`near`) unwraps z without the
        2 pi slips that unwrapping noisy observations one after another would make."""
        w = 1.0 / R[:, 0, 0]
        phasor = w * np.exp(1j * z[:, 0])
        out = [np.unwrap(np.angle(gaussian_filter1d(seg.real, width, mode="nearest")
                                  + 1j * gaussian_filter1d(seg.imag, width, mode="nearest")))
               for seg in np.split(phasor, starts[1:])]
        return np.concatenate(out)[:, None]
