"""Synthetic grid-cell benchmark for SIMPL: a smooth random walk in a box, grid cells, Poisson counts.

The agent's velocity is a 2-D Ornstein-Uhlenbeck process with coherence time `coherence` (s); its
stationary per-axis standard deviation s is set so that the mean speed is `speed` (the speed of an
isotropic 2-D Gaussian velocity is Rayleigh distributed with mean s sqrt(pi/2)). Walls reflect:
a coordinate that leaves [0, box] is mirrored back and that velocity component changes sign.

Grid cells: `modules` are grid scales lambda (m) in the convention of RatInABox, the simulator behind
the published SIMPL benchmark: lambda is the wavelength of each of the three plane waves, so
|k_i| = 2 pi / lambda and the firing peaks sit on a triangular lattice of spacing 2 lambda / sqrt(3).
Each module has one random orientation, each cell a phase phi uniform over a unit cell of its
lattice. A cell's field is the rectified sum of three plane waves 60 degrees apart,
    f(x) = max_rate * max(0, sum_i cos(k_i . (x - phi))) / 3,
which equals max_rate at every lattice point phi + n a_1 + m a_2. Counts are Poisson(f(x_t) dt).

"Behaviour" is the true position plus slow, smooth noise: per axis, white noise convolved with a
Gaussian kernel of standard deviation `noise_timescale` (s) (circularly, by FFT), scaled to the
standard deviation noise_sd = noise_mean / sqrt(pi/2), so that the mean Euclidean error
|Xb - Xt| is `noise_mean` (Rayleigh mean again). Unlike an OU process, its paths are smooth.

Files are HDF5 (h5py, no pickle); see `save` for the layout.
"""
import h5py
import numpy as np

from tcnet.validate import ConfigError, integer, positive, real

DEFAULTS = {
    "n_cells": 200, "duration": 3600.0, "dt": 0.1, "box": 1.0, "speed": 0.08, "coherence": 0.7,
    "modules": [0.3, 0.5, 0.8], "max_rate": 10.0, "noise_mean": 0.2, "noise_timescale": 3.0,
    "field_bins": 100,
}

FORMAT = "tcnet-simpl-benchmark/1"


def check_settings(settings: dict) -> dict:
    """The generator settings completed with DEFAULTS; ConfigError names any bad one."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"simpl data: unknown setting(s) {', '.join(unknown)}; "
                          f"accepted: {', '.join(sorted(DEFAULTS))}")
    s = {**DEFAULTS, **settings}
    integer("simpl data", "n_cells", s["n_cells"], low=1)
    integer("simpl data", "field_bins", s["field_bins"], low=2)
    for key in ("duration", "dt", "box", "speed", "coherence", "max_rate", "noise_timescale"):
        positive("simpl data", key, s[key])
    real("simpl data", "noise_mean", s["noise_mean"], low=0)
    if not isinstance(s["modules"], (list, tuple)) or not s["modules"]:
        raise ConfigError(f"simpl data: modules must be a non-empty list of grid scales (m), got {s['modules']!r}")
    for lam in s["modules"]:
        positive("simpl data", "modules entry", lam)
    if s["duration"] < 2 * s["dt"]:
        raise ConfigError(f"simpl data: duration must be at least 2 dt = {2 * s['dt']}, got {s['duration']!r}")
    s["modules"] = [float(m) for m in s["modules"]]
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


def random_walk(rng, n_steps, dt, box, speed, coherence):
    """Positions (n_steps, 2) of the reflecting OU-velocity walk described in the module docstring."""
    v = ou_process(rng, n_steps, dt, coherence, speed / np.sqrt(np.pi / 2)) * dt
    x = np.empty((n_steps, 2))
    pos = list(rng.uniform(0, box, size=2))
    sign = [1.0, 1.0]  # a reflection mirrors the rest of that velocity component
    for t, (dx, dy) in enumerate(v.tolist()):
        x[t] = pos
        for i, d in ((0, dx), (1, dy)):
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


def generate(seed=0, **settings) -> dict:
    """A benchmark data set: dict with Y (T, N) counts, Xt, Xb (T, 2), time (T,), fields (N, B, B)
    true rates on the grid `field_x` x `field_y` (bin centres), module_of (N,), and `settings`."""
    s = check_settings(settings)
    rng = np.random.default_rng(seed)
    n_steps = int(round(s["duration"] / s["dt"]))
    xt = random_walk(rng, n_steps, s["dt"], s["box"], s["speed"], s["coherence"])
    k, phase, module_of = grid_parameters(rng, s["n_cells"], s["modules"])
    y = rng.poisson(grid_rates(xt, k, phase, s["max_rate"]) * s["dt"]).astype(np.int32)
    noise = smooth_noise(rng, n_steps, s["dt"], s["noise_timescale"], s["noise_mean"] / np.sqrt(np.pi / 2))
    centres = (np.arange(s["field_bins"]) + 0.5) * s["box"] / s["field_bins"]
    gx, gy = np.meshgrid(centres, centres, indexing="ij")
    fields = grid_rates(np.stack([gx, gy], -1), k, phase, s["max_rate"]).T.reshape(s["n_cells"], *gx.shape)
    return {"Y": y, "Xt": xt, "Xb": xt + noise, "time": np.arange(n_steps) * s["dt"], "fields": fields,
            "field_x": centres, "field_y": centres, "module_of": module_of, "settings": s, "seed": int(seed)}


def save(path, data: dict, force: bool = False) -> None:
    """Write a data set to HDF5 (a new file; an existing one is replaced only with `force`, see
    tcnet.store.new_file). Layout (all SI units):
    Y (T, N) int32 spike counts per bin; Xt (T, 2) true position (m); Xb (T, 2) behaviour (m);
    time (T,) bin start (s); fields (N, B, B) true rate (Hz) at (field_x[i], field_y[j]);
    field_x, field_y (B,) bin centres (m); module_of (N,) module index of each cell.
    Root attrs: format, format_version, tcnet_version, dt (s), seed, and every generator setting
    (modules as an array)."""
    from tcnet.store import new_h5

    with new_h5(path, FORMAT, force) as f:
        f.attrs["seed"] = data["seed"]
        for key, value in data["settings"].items():
            f.attrs[key] = np.asarray(value) if isinstance(value, list) else value
        for key in ("Y", "Xt", "Xb", "time", "fields", "field_x", "field_y", "module_of"):
            f.create_dataset(key, data=data[key], compression="gzip", compression_opts=1)
        f["Y"].attrs["description"] = "spike counts per time bin (rows) and cell (columns)"
        f["Xt"].attrs["description"] = "true position of the agent (m)"
        f["Xb"].attrs["description"] = "behaviour: true position plus slow smooth Gaussian noise (m)"
        f["fields"].attrs["description"] = "true rate maps (Hz) on field_x x field_y"


def load(path) -> dict:
    """Read a data set written by `save` (same dict as `generate`)."""
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as err:
        raise ConfigError(f"simpl: data must be a readable HDF5 benchmark file, got {str(path)!r} ({err})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise ConfigError(f"simpl: data file {str(path)!r} is not a {FORMAT} file")
        out = {key: f[key][()] for key in ("Y", "Xt", "Xb", "time", "fields", "field_x", "field_y", "module_of")}
        settings = {key: f.attrs[key] for key in DEFAULTS}
        out["seed"] = int(f.attrs["seed"])
    settings["modules"] = [float(m) for m in settings["modules"]]
    out["settings"] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in settings.items()}
    return out
