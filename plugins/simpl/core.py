"""SIMPL (George et al., ICLR 2025): latent trajectories and tuning curves from spike counts, as a
tcnet plugin, in numpy/scipy.

SIMPL starts from measured behaviour (position) and alternates two steps: fit every neuron's tuning
curve to its spikes given the current latent (M-step: Gaussian KDE on a spatial grid), then decode
the latent from the spikes given those curves (E-step: per-bin Poisson likelihood maps,
moment-matched to Gaussians, smoothed by a Kalman filter/RTS smoother under a random-walk prior),
and align the decoded latent to behaviour (affinely, as published, or by a low-degree polynomial:
`align_degree`). The latent is free to leave behaviour where the population says so. Held-out
(time, neuron) entries of a speckled validation mask (1 s blocks, 10 % of each neuron's time) are
used by neither step; their log-likelihood decides when to stop.

How it sits in tcnet (EM is not gradient descent, but its iterations are a run like any other):

- Dynamics `simpl_latent`: the only array is `latent` (T, 2), trainable, i.e. the flat parameter
  vector theta *is* the current latent trajectory. The data are not arrays of the network: the
  config names them (`data`: an HDF5 benchmark file, or `generator` settings plus `data_seed` for
  the synthetic benchmark of `tcnet_plugins.simpl.data`), so a stored network (name + config + seed + latent)
  is rebuilt exactly without storing the spikes twice. The seed draws the validation mask. The
  state computes, lazily and once, the M-step for its latent: the grid, the tuning curves, the
  rates at the latent and the metrics. Initial latent: the behaviour Xb.
- Loss `simpl_nll`: minus the mean Poisson log-likelihood per spike (nats) of the validation
  entries (`split="val"`, default) or of the training entries, under the tuning curves fitted to
  the training entries at the state's latent. It is a plain numpy function and NOT differentiable
  (the KDE through a 36000-bin latent would be a huge autograd tape): gradient optimizers reject it
  with a ConfigError; the `simpl` optimizer evaluates it directly.
- Optimizer `simpl`: each iteration is one E-step from the current tuning curves, the alignment,
  and the M-step of the new latent; it reports every iterate through `monitor.report` with an
  Evaluation built directly (value and terms from the losses, an empty gradient, so the recorded
  grad_norm is NaN: there is none) and extra = {latent_error_cm, train_ll, val_ll, bits_per_spike}.
  Step 0 is the behaviour itself. It stops after `iterations` E-steps or as soon as the validation
  log-likelihood fails to rise by more than `tol`, returning the last iterate that raised it.
  The history therefore lands in the run store (RunWriter) like any other run, and studies can
  compare SIMPL runs by these columns.

Command: `tcnet simpl generate OUT.h5` writes the synthetic benchmark; `tcnet simpl fit DATA.h5`
runs the EM, prints the table per iteration, and optionally records the run (`--store`) and draws
figures (`--figures DIR`). See examples/simpl_gridcells.py.
"""
import functools
import json
import os

import numpy as np

from tcnet import ConfigError, Dynamics, Evaluation, Loss, Optimizer, Result, State
from tcnet.labels import Labels, Quantity
from tcnet.validate import choice, integer, positive, real

from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.estep import kalman_smoother, likelihood_moments
from tcnet_plugins.simpl.metrics import align, metrics, validation_mask
from tcnet_plugins.simpl.mstep import interpolate, kde_fields, make_grid

# A small sensible default (create() with no config): 60 cells, 10 minutes.
SMALL_GENERATOR = {"n_cells": 60, "duration": 600.0}

CONFIG = {
    "data": None,                     # path of an HDF5 benchmark file, or None to generate
    "generator": SMALL_GENERATOR,     # settings of data.generate (missing: benchmark defaults)
    "data_seed": 0,                   # seed of the generator
    "bandwidth": 0.025,               # KDE bandwidth h (m)
    "grid_spacing": 0.02,             # spatial grid spacing (m)
    "grid_margin": 0.05,              # grid extends this far beyond the latent's range (m)
    "rate_floor": 0.01,               # smallest tuning-curve rate (Hz)
    "val_fraction": 0.1,              # held-out fraction of each neuron's time
    "val_block": 1.0,                 # length of held-out blocks (s)
}

_DATA_CACHE: dict = {}


def _load_data(config) -> dict:
    """The data set a config names (cached: several networks of one run share it)."""
    if config["data"] is not None:
        path = os.path.abspath(str(config["data"]))
        key = ("file", path, os.path.getmtime(path) if os.path.exists(path) else None)
        make = lambda: simdata.load(path)  # noqa: E731
    else:
        key = ("gen", json.dumps(config["generator"], sort_keys=True), config["data_seed"])
        make = lambda: simdata.generate(config["data_seed"], **config["generator"])  # noqa: E731
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 2:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = make()
    return _DATA_CACHE[key]


class SimplState(State):
    """The M-step at one latent and everything computed from it."""

    @functools.cached_property
    def latent(self) -> np.ndarray:
        x = self.params["latent"]
        if not isinstance(x, np.ndarray):
            raise ConfigError("simpl: the SIMPL losses are not differentiable; optimize simpl_latent "
                              "with the optimizer 'simpl' (EM), not a gradient method")
        return x

    @functools.cached_property
    def grid(self):
        c = self.dynamics.config
        return make_grid(self.latent, c["grid_spacing"], c["grid_margin"])

    @functools.cached_property
    def fields(self) -> np.ndarray:
        """Tuning curves (N, Gx, Gy) in Hz fitted to the training entries at this latent."""
        d, c = self.dynamics.data, self.dynamics.config
        return kde_fields(self.latent, d["Y"], ~self.dynamics.validation, d["settings"]["dt"], self.grid,
                          c["bandwidth"], c["rate_floor"])

    @functools.cached_property
    def metrics(self) -> dict:
        d = self.dynamics.data
        rates = interpolate(self.fields, self.grid, self.latent)
        return metrics(d["Y"], rates, d["settings"]["dt"], self.dynamics.validation, self.latent, d["Xt"])


class SimplLatent(Dynamics):
    """The latent trajectory of a SIMPL fit; its data are named by the config (see module doc)."""

    name = "simpl_latent"
    trainable = ("latent",)
    labels = Labels(summary={"cells": Quantity("cells"), "bins": Quantity("time bins"),
                             "duration_s": Quantity("duration", "s"),
                             "latent_error_cm": Quantity("latent error", "cm")},
                    headline=("latent_error_cm",))

    @classmethod
    def create(cls, seed=0, **config):
        cfg = cls._complete(config)
        return cls({"latent": _load_data(cfg)["Xb"]}, cfg, seed)

    @staticmethod
    def _complete(config) -> dict:
        unknown = sorted(set(config) - set(CONFIG))
        if unknown:
            raise ConfigError(f"simpl_latent: unknown setting(s) {', '.join(unknown)}; "
                              f"accepted: {', '.join(sorted(CONFIG))}")
        return {**CONFIG, **config}

    def check(self):
        self.config = self._complete(self.config)
        c = self.config
        if c["data"] is None:
            if not isinstance(c["generator"], dict):
                raise ConfigError(f"simpl_latent: generator must be a table of generator settings, got {c['generator']!r}")
            simdata.check_settings(c["generator"])
            integer(self.name, "data_seed", c["data_seed"], low=0)
        elif not isinstance(c["data"], str):
            raise ConfigError(f"simpl_latent: data must be a path (string) or null, got {c['data']!r}")
        for key in ("bandwidth", "grid_spacing", "val_block"):
            positive(self.name, key, c[key])
        real(self.name, "grid_margin", c["grid_margin"], low=0)
        positive(self.name, "rate_floor", c["rate_floor"])
        real(self.name, "val_fraction", c["val_fraction"], low=0, high=1, low_open=True, high_open=True)
        T = self.data["Y"].shape[0]
        if self.arrays["latent"].shape != (T, 2):
            raise ConfigError(f"simpl_latent: latent must have shape ({T}, 2), got {self.arrays['latent'].shape}")

    @property
    def data(self) -> dict:
        return _load_data(self.config)

    @functools.cached_property
    def validation(self) -> np.ndarray:
        """The held-out mask (T, N), drawn from this network's seed."""
        d, c = self.data, self.config
        block = max(1, int(round(c["val_block"] / d["settings"]["dt"])))
        return validation_mask(*d["Y"].shape, block, c["val_fraction"], self.seed or 0)

    def make_state(self, params):
        return SimplState(self, params)

    def summary(self):
        d = self.data
        err = 100 * np.linalg.norm(self.arrays["latent"] - d["Xt"], axis=1).mean()
        return {"cells": float(d["Y"].shape[1]), "bins": float(d["Y"].shape[0]),
                "duration_s": float(d["Y"].shape[0] * d["settings"]["dt"]), "latent_error_cm": float(err)}


class SimplNLL(Loss):
    """Minus the Poisson log-likelihood per spike (nats) of the `split` entries (see module doc)."""

    name = "simpl_nll"

    def __init__(self, split="val"):
        choice(self.name, "split", split, ("val", "train"))
        super().__init__(split=split)

    def __call__(self, state):
        if not isinstance(state, SimplState):
            raise ConfigError("simpl_nll: needs the dynamics simpl_latent")
        return -state.metrics[f"{self.config['split']}_ll"]


def _evaluate(objective, x) -> tuple[Evaluation, SimplState]:
    """The objective at latent x without autograd (the SIMPL terms are not differentiated)."""
    state = objective.dynamics.state(x)
    terms = {t.label: float(t.loss(state)) for t in objective.terms}
    value = sum(t.weight * terms[t.label] for t in objective.terms)
    return Evaluation(float(value), np.zeros(0), terms), state


class Simpl(Optimizer):
    """SIMPL's EM iterations (module doc): `iterations` E-steps with a random-walk prior of speed
    scale `speed` (m/s, step covariance (speed dt)^2 I; 0.1 is the published default), alignment to
    behaviour by a polynomial map of degree `align_degree` (1: affine, as published; 0: none; higher:
    see metrics.align), early stop when the validation log-likelihood rises by no more than
    `tol` (nats per spike).

    Resuming continues from the checkpoint's latent with the remaining iteration budget; the
    M-step is deterministic, so the resumed iterations equal the uninterrupted ones."""

    name = "simpl"
    defaults = {"iterations": 10, "speed": 0.1, "align_degree": 1, "tol": 0.0}

    def check(self):
        integer(self.name, "iterations", self.settings["iterations"], low=0)
        positive(self.name, "speed", self.settings["speed"])
        integer(self.name, "align_degree", self.settings["align_degree"], low=0)
        real(self.name, "tol", self.settings["tol"], low=0)

    def estep(self, dynamics, state) -> np.ndarray:
        """The next latent (T, 2): decode with the state's tuning curves, smooth, align."""
        d = dynamics.data
        dt = d["settings"]["dt"]
        z, R = likelihood_moments(d["Y"], ~dynamics.validation, state.fields, state.grid, dt)
        xb = d["Xb"]
        mu, _ = kalman_smoother(z, R, (self.settings["speed"] * dt) ** 2, xb.mean(axis=0), np.cov(xb.T))
        degree = self.settings["align_degree"]
        return align(mu, xb, degree)[0] if degree else mu

    def iterate(self, objective, x0, monitor, opt_state):
        dynamics = objective.dynamics
        if not isinstance(dynamics, SimplLatent):
            raise ConfigError(f"simpl: the optimizer needs the dynamics simpl_latent, got {dynamics.name!r}")
        k = opt_state.get("iteration", 0)
        x = x0
        monitor.evaluations += 1
        ev, state = _evaluate(objective, x)
        if monitor.report(x, ev, opt_state={"iteration": k}, extra=state.metrics, initial=True):
            return Result(x, "stopped", "stopped by callback", 0, monitor.evaluations)
        taken = 0
        while k < self.settings["iterations"]:
            x_new = self.estep(dynamics, state).ravel()
            k += 1
            taken += 1
            monitor.evaluations += 1
            ev, new_state = _evaluate(objective, x_new)
            stop = monitor.report(x_new, ev, opt_state={"iteration": k}, extra=new_state.metrics)
            rise = new_state.metrics["val_ll"] - state.metrics["val_ll"]
            if rise <= self.settings["tol"]:
                return Result(x, "converged", f"validation log-likelihood rose by {rise:.3g} <= tol at "
                              f"iteration {k}; returning iteration {k - 1}", taken, monitor.evaluations)
            x, state = x_new, new_state
            if stop:
                return Result(x, "stopped", "stopped by callback", taken, monitor.evaluations)
        return Result(x, "max_steps", f"{k} iterations done", taken, monitor.evaluations)


# --- command line -----------------------------------------------------------------------------


def fit(data, *, seed=0, bandwidth=CONFIG["bandwidth"], recorders=(), progress=False, **settings):
    """Run SIMPL on a benchmark file (or generator settings dict) through tcnet.run; `settings` are
    those of the `simpl` optimizer (iterations, speed, align_degree, tol; defaults in Simpl.defaults)."""
    from tcnet import run

    source = {"data": str(data)} if not isinstance(data, dict) else {"generator": data}
    spec = {"dynamics": {"name": "simpl_latent", "seed": seed, "bandwidth": bandwidth, **source},
            "loss": [{"name": "simpl_nll"}],
            "optimizer": {"name": "simpl", **settings}}
    return run(spec, recorders=list(recorders), progress=progress)
