"""Synthetic benchmarks for SIMPL: an animal moving smoothly, cells tuned to where it is, Poisson
counts, and "behaviour" = the truth seen through slow smooth noise. Three kinds:

- `grid`: a 2-D random walk in a square box, grid cells (the project's benchmark);
- `linear_track`: a 1-D random walk on a track, place cells with Gaussian fields;
- `head_direction`: an angle on the circle, head-direction cells with von Mises tuning.

Movement: the velocity (or angular velocity) is an Ornstein-Uhlenbeck process with coherence time
`coherence` (s); its stationary standard deviation s per axis is set so that the mean speed is
`speed` (2-D: Rayleigh mean s sqrt(pi/2); 1-D: half-normal mean s sqrt(2/pi)). Walls reflect: a
coordinate that leaves [0, box] is mirrored back and that velocity component changes sign. An
angle simply wraps.

Grid cells: `modules` are grid scales lambda (m) in the convention of RatInABox, the simulator behind
the published SIMPL benchmark: lambda is the wavelength of each of the three plane waves, so
|k_i| = 2 pi / lambda and the firing peaks sit on a triangular lattice of spacing 2 lambda / sqrt(3).
Each module has one random orientation, each cell a phase phi uniform over a unit cell of its
lattice. A cell's field is the rectified sum of three plane waves 60 degrees apart,
    f(x) = max_rate * max(0, sum_i cos(k_i . (x - phi))) / 3,
which equals max_rate at every lattice point phi + n a_1 + m a_2.
Place cells: f(x) = max_rate exp(-(x - c)^2 / (2 width^2)), centres c uniform on the track.
Head-direction cells: f(x) = max_rate exp(concentration (cos(x - c) - 1)), c uniform on the circle.
Counts are Poisson(f(x_t) dt).

Behaviour is the truth plus, per axis, white noise convolved with a Gaussian kernel of standard
deviation `noise_timescale` (s) (circularly, by FFT), scaled so that the mean error |Xb - Xt| is
`noise_mean` (Rayleigh or half-normal mean again). Unlike an OU process, its paths are smooth.

Files are HDF5 (h5py, no pickle) in the layout every SIMPL input uses (docs/SIMPL.md), plus the
true fields; see `save`.
"""
import json

import numpy as np

from tcnet import store
from tcnet.resources import FLOAT, require
from tcnet.validate import ConfigError, integer, positive, real

COMMON = {"n_cells": 200, "duration": 3600.0, "dt": 0.1, "coherence": 0.7, "max_rate": 10.0,
          "noise_timescale": 3.0, "field_bins": 100}
KINDS = {
    "grid": {**COMMON, "box": 1.0, "speed": 0.08, "modules": [0.3, 0.5, 0.8], "noise_mean": 0.2},
    "linear_track": {**COMMON, "box": 2.0, "speed": 0.15, "width": 0.1, "noise_mean": 0.2},
    "head_direction": {**COMMON, "speed": 1.5, "coherence": 0.5, "concentration": 4.0, "max_rate": 15.0,
                       "noise_mean": 0.35, "field_bins": 360},
}
DEFAULTS = KINDS["grid"]
SPACES = {"grid": "linear", "linear_track": "linear", "head_direction": "angular"}

FORMAT = "tcnet-simpl-benchmark/2"


def space_of(settings: dict) -> str:
    """The latent space ('linear' or 'angular') of a generator's settings."""
    return SPACES.get(settings.get("kind", "grid"), "linear")


def check_settings(settings: dict) -> dict:
    """The generator settings completed with the defaults of their `kind` (default 'grid');
    ConfigError names any bad one."""
    kind = settings.get("kind", "grid")
    if kind not in KINDS:
        raise ConfigError(f"simpl data: kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    defaults = KINDS[kind]
    unknown = sorted(set(settings) - set(defaults) - {"kind"})
    if unknown:
        raise ConfigError(f"simpl data: unknown setting(s) {', '.join(unknown)} for kind {kind!r}; "
                          f"accepted: {', '.join(sorted(defaults))}")
    s = {**defaults, **settings, "kind": kind}
    integer("simpl data", "n_cells", s["n_cells"], low=1)
    integer("simpl data", "field_bins", s["field_bins"], low=2)
    for key in ("duration", "dt", "box", "speed", "coherence", "max_rate", "noise_timescale", "width",
                "concentration"):
        if key in s:
            positive("simpl data", key, s[key])
    real("simpl data", "noise_mean", s["noise_mean"], low=0)
    if kind == "grid":
        if not isinstance(s["modules"], (list, tuple)) or not s["modules"]:
            raise ConfigError(f"simpl data: modules must be a non-empty list of grid scales (m), got {s['modules']!r}")
        for lam in s["modules"]:
            positive("simpl data", "modules entry", lam)
        s["modules"] = [float(m) for m in s["modules"]]
    if s["duration"] < 2 * s["dt"]:
        raise ConfigError(f"simpl data: duration must be at least 2 dt = {2 * s['dt']}, got {s['duration']!r}")
    return s


def ou_process(rng, n_steps, dt, tau, sd, dim=2):
    """Exact discretization of dx = -x/tau dt + sd sqrt(2/tau) dW, started stationary."""
    a = np.exp(-dt / tau)
    noise = rng.normal(size=(n_steps, dim)) * sd * np.sqrt(1 - a * a)
    x = np.empty((n_steps, dim))
    x[0] = rng.normal(size=dim) * sd
    for t in range(1, n_steps):  # a linear recursion; n_steps * 2 flops, fast enough in numpy slices
        x[t] = a * x[t - 1] + noise[t]
    return x


def smooth_noise(rng, n_steps, dt, timescale, sd, dim=2):
    """Stationary Gaussian noise (n_steps, dim) with covariance sd^2 exp(-tau^2 / (4 timescale^2)):
    white noise circularly convolved with a normalized Gaussian kernel of width `timescale`."""
    lag = np.minimum(np.arange(n_steps), n_steps - np.arange(n_steps)) * dt
    kernel = np.exp(-0.5 * (lag / timescale) ** 2)
    kernel /= np.sqrt((kernel**2).sum())  # unit variance output for unit white noise
    white = rng.normal(size=(n_steps, dim))
    out = np.fft.irfft(np.fft.rfft(white, axis=0) * np.fft.rfft(kernel)[:, None], n=n_steps, axis=0)
    return sd * out


def random_walk(rng, n_steps, dt, box, speed, coherence, dim=2):
    """Positions (n_steps, dim) of the reflecting OU-velocity walk described in the module docstring."""
    mean_abs = np.sqrt(np.pi / 2) if dim == 2 else np.sqrt(2 / np.pi)
    v = ou_process(rng, n_steps, dt, coherence, speed / mean_abs, dim) * dt
    x = np.empty((n_steps, dim))
    pos = list(rng.uniform(0, box, size=dim))
    sign = [1.0] * dim  # a reflection mirrors the rest of that velocity component
    for t, step in enumerate(v.tolist()):
        x[t] = pos
        for i, d in enumerate(step):
            p = pos[i] + sign[i] * d
            if p < 0 or p > box:
                p = -p if p < 0 else 2 * box - p
                sign[i] = -sign[i]
            pos[i] = p
    return x


def grid_parameters(rng, n_cells, modules):
    """Per-cell wave vectors (n_cells, 3, 2) and phases (n_cells, 2); cells split evenly by module.
    Wave vectors k_1, k_2 = k_1 + k_3, k_3 at angles theta, theta + 60, theta + 120 degrees with
    |k| = 2 pi / lambda; the phase is u_1 a_1 + u_2 a_2, u uniform on [0, 1)^2, for the lattice vectors
    a_1 (k_1.a_1 = 2 pi, k_3.a_1 = 0) and a_2 (k_1.a_2 = 0, k_3.a_2 = 2 pi)."""
    module_of = np.arange(n_cells) * len(modules) // n_cells
    k = np.empty((n_cells, 3, 2))
    lattice = np.empty((n_cells, 2, 2))
    for m, lam in enumerate(modules):
        theta = rng.uniform(0, np.pi / 3) + np.array([0, np.pi / 3, 2 * np.pi / 3])
        k_m = 2 * np.pi / lam * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        k[module_of == m] = k_m
        lattice[module_of == m] = 2 * np.pi * np.linalg.inv(k_m[[0, 2]]).T  # rows a_1, a_2
    u = rng.uniform(0, 1, size=(n_cells, 2))
    phase = np.einsum("ni,nid->nd", u, lattice)
    return k, phase, module_of


def grid_rates(x, k, phase, max_rate):
    """Rates (len(x), n_cells) in Hz at positions x (..., 2)."""
    x = np.asarray(x).reshape(-1, 2)
    arg = np.einsum("td,nkd->tnk", x, k) - np.einsum("nd,nkd->nk", phase, k)[None]
    return max_rate * np.maximum(0.0, np.cos(arg).sum(axis=2)) / 3


def _grid(rng, s, n_steps):
    xt = random_walk(rng, n_steps, s["dt"], s["box"], s["speed"], s["coherence"])
    k, phase, module_of = grid_parameters(rng, s["n_cells"], s["modules"])
    centres = (np.arange(s["field_bins"]) + 0.5) * s["box"] / s["field_bins"]
    gx, gy = np.meshgrid(centres, centres, indexing="ij")
    fields = grid_rates(np.stack([gx, gy], -1), k, phase, s["max_rate"]).T.reshape(s["n_cells"], *gx.shape)
    return xt, grid_rates(xt, k, phase, s["max_rate"]), fields, [centres, centres], {"module_of": module_of}


def _linear_track(rng, s, n_steps):
    xt = random_walk(rng, n_steps, s["dt"], s["box"], s["speed"], s["coherence"], dim=1)
    c = rng.uniform(0, s["box"], size=s["n_cells"])
    rates = lambda x: s["max_rate"] * np.exp(-0.5 * ((x[:, None] - c) / s["width"]) ** 2)  # noqa: E731
    centres = (np.arange(s["field_bins"]) + 0.5) * s["box"] / s["field_bins"]
    return xt, rates(xt[:, 0]), rates(centres).T, [centres], {"centres": c}


def _head_direction(rng, s, n_steps):
    omega = ou_process(rng, n_steps, s["dt"], s["coherence"], s["speed"] / np.sqrt(2 / np.pi), dim=1)
    xt = np.mod(rng.uniform(0, 2 * np.pi) + np.cumsum(omega * s["dt"], axis=0), 2 * np.pi)
    c = rng.uniform(0, 2 * np.pi, size=s["n_cells"])
    rates = lambda x: s["max_rate"] * np.exp(s["concentration"] * (np.cos(x[:, None] - c) - 1))  # noqa: E731
    centres = (np.arange(s["field_bins"]) + 0.5) * 2 * np.pi / s["field_bins"]
    return xt, rates(xt[:, 0]), rates(centres).T, [centres], {"centres": c}


def memory(s: dict) -> float:
    """Bytes `generate` holds for checked settings `s`: about 5 float64 per cell and time bin (rates,
    counts, the waves they are summed from) and per cell and field bin (tracemalloc: 24 bytes per
    cell and bin for the 1-D kinds, 32 for grid cells, 37 per cell and field bin)."""
    field_bins = float(s["field_bins"]) ** (2 if s["kind"] == "grid" else 1)
    return 5 * FLOAT * s["n_cells"] * (s["duration"] / s["dt"] + field_bins)


def generate(seed=0, **settings) -> dict:
    """A benchmark data set: dict with counts (T, N), truth and behaviour (T, D), time (T,),
    fields (N, *B) true rates on the grid `field_axes` (bin centres), `settings` (with kind),
    `seed`, and per kind module_of (N,) or centres (N,)."""
    s = check_settings(settings)
    require("simpl data", f"duration {s['duration']:g} s ({s['duration'] / s['dt']:.3g} bins of {s['dt']:g} s) x "
            f"n_cells {s['n_cells']}", memory(s))
    rng = np.random.default_rng(seed)
    n_steps = int(round(s["duration"] / s["dt"]))
    make = {"grid": _grid, "linear_track": _linear_track, "head_direction": _head_direction}[s["kind"]]
    xt, rates, fields, field_axes, extra = make(rng, s, n_steps)
    counts = rng.poisson(rates * s["dt"]).astype(np.int32)
    dim = xt.shape[1]
    mean_abs = np.sqrt(np.pi / 2) if dim == 2 else np.sqrt(2 / np.pi)
    noise = smooth_noise(rng, n_steps, s["dt"], s["noise_timescale"], s["noise_mean"] / mean_abs, dim)
    behaviour = np.mod(xt + noise, 2 * np.pi) if s["kind"] == "head_direction" else xt + noise
    return {"counts": counts, "truth": xt, "behaviour": behaviour, "time": np.arange(n_steps) * s["dt"],
            "fields": fields, "field_axes": field_axes, "settings": s, "seed": int(seed), **extra}


def save(path, data: dict, force: bool = False) -> None:
    """Write a data set to a new HDF5 file (an existing one is replaced only with `force`, see
    tcnet.store.new_file): the SIMPL input layout of docs/SIMPL.md (counts (T, N) int32,
    behaviour and truth (T, D), time (T,) bin starts, root attribute dt) plus fields (N, *B) true
    rates (Hz) on the bin centres field_axis_0, field_axis_1, ... Root attrs: format,
    format_version, tcnet_version, seed, and the generator settings as JSON."""
    descriptions = {"counts": "spike counts per time bin (rows) and cell (columns)",
                    "truth": "true latent (m, or rad for head direction)",
                    "behaviour": "behaviour: the truth plus slow smooth Gaussian noise",
                    "fields": "true rate maps (Hz) on the field axes"}
    with store.new_h5(path, FORMAT, force) as f:
        store.set_attrs(f, seed=data["seed"], dt=data["settings"]["dt"],
                        settings=json.dumps(data["settings"], sort_keys=True))
        for key in ("counts", "behaviour", "truth", "time", "fields"):
            store.create_dataset(f, key, data[key], compression="gzip")
            if key in descriptions:
                store.set_attrs(f[key], description=descriptions[key])
        for i, axis in enumerate(data["field_axes"]):
            store.create_dataset(f, f"field_axis_{i}", axis)


def load(path) -> dict:
    """Read a data set written by `save` (same dict as `generate`, without per-kind extras); a
    missing, foreign or damaged file is refused in one line (tcnet.store.read_h5)."""
    with store.read_h5(path, FORMAT) as f:
        out = {key: f[key][()] for key in ("counts", "behaviour", "truth", "time", "fields")}
        out["field_axes"] = [f[f"field_axis_{i}"][()] for i in range(out["fields"].ndim - 1)]
        out["settings"] = json.loads(f.attrs["settings"])
        out["seed"] = int(f.attrs["seed"])
    return out
