"""SIMPL (George et al., ICLR 2025): latent trajectories and tuning curves from spike counts, as a
tcnet plugin, in numpy/scipy.

SIMPL starts from measured behaviour and alternates two steps: fit every neuron's tuning curve to
its spikes given the current latent, and the latent's occupancy density (M-step: Gaussian KDEs on
a grid), then decode the latent from the spikes given those curves (E-step: per-bin Poisson
likelihood maps times the occupancy, moment-matched to Gaussians, smoothed under a random-walk
prior that restarts at time gaps; in the first `anneal` E-steps the likelihood is tempered, raised
to a power rising to 1; from the second E-step on, the move's smooth part is over-relaxed where
the validation log-likelihood rises with it), and align the decoded latent to behaviour
(affinely, as published; by a rotation on the circle; or by a low-degree polynomial:
`align_degree`). The latent is free to
leave behaviour where the population says so. Held-out (time, neuron) entries of a speckled
validation mask (blocks of `val_block` s, `val_fraction` of each neuron's time) are used by neither
step; their log-likelihood decides when to stop. The latent space is a line, the plane or the
circle (`tcnet_plugins.simpl.space`).

How it sits in tcnet (EM is not gradient descent, but its iterations are a run like any other):

- Dynamics `simpl_latent`: the trainable array is `latent` (T, D), i.e. the flat parameter vector
  theta *is* the current latent trajectory; the data are fixed arrays of the same network (`counts`
  (T, N), `behaviour` (T, D), `time` (T,), optionally `truth` (T, D)), so a stored network rebuilds
  the fit exactly. The seed draws the validation mask. The state computes, lazily and once, the
  M-step for its latent: the grid, the tuning curves, the rates at the latent and the metrics.
  Initial latent: the behaviour. `create` builds one from a data file or the synthetic generator.
- Loss `simpl_nll`: minus the mean Poisson log-likelihood per spike (nats) of the validation
  entries (`split="val"`, default) or of the training entries, under the tuning curves fitted to
  the training entries at the state's latent. It is a plain numpy function and NOT differentiable
  (the KDE through a 36000-bin latent would be a huge autograd tape): gradient optimizers reject it
  with a ConfigError; the `simpl` optimizer evaluates it directly.
- Optimizer `simpl`: an update rule of tcnet's one iterative loop (tcnet.optim.Iterative): each
  point is evaluated without a gradient (so the recorded grad_norm is NaN: there is none), the
  `simpl_nll` term hands the M-step and the metrics over as side results, the history columns are
  {train_ll, val_ll, bits_per_spike, and latent_error when the truth is known}, and the step is one
  E-step (over-relaxed where that raises the validation log-likelihood) and the alignment. Step 0
  is the behaviour itself. It stops after `steps` E-steps or at the first iterate whose validation
  log-likelihood rose by no more than `tol`.

The scikit-learn-shaped entry point for a lab's arrays is `tcnet_plugins.simpl.SIMPL`
(estimator.py); `tcnet simpl fit FILE` reads them from .npz, HDF5 or NWB (files.py, docs/SIMPL.md).
"""
import functools

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import gammaln

from tcnet import ConfigError, Dynamics, Loss, State
from tcnet.optim import Iterative
from tcnet.settings import Array, Choice, Integer, Real, Setting, Settings, Text
from tcnet.labels import Labels, Quantity

from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.estep import SILENT_VARIANCE, likelihood_moments, segment_starts, smooth
from tcnet_plugins.simpl.inputs import check_inputs
from tcnet_plugins.simpl.metrics import align, held_out_blocks, metrics, validation_mask
from tcnet_plugins.simpl.mstep import interpolate, kde_fields, latent_kernels, log_occupancy
from tcnet_plugins.simpl.space import TURN, Space, wrap

# Settings whose default depends on the space: a 1 m box or track in metres, the circle in radians.
# On a line or plane: the random-walk speed of behaviour's own steps (BEHAVIOUR), annealing over
# every E-step but the last (ALL) and the smoothed over-relaxation; none of the three on the circle,
# which has no walls for the first curves' warp to pile up against (there: 1 rad/s, plain EM). The
# bandwidth is 2 cm as published (docs/SIMPL.md, "Accuracy", for what each choice does).
ALL = "all"
BEHAVIOUR = "behaviour"
SPACE_DEFAULTS = {
    "linear": {"bandwidth": 0.02, "grid_spacing": 0.02, "speed": BEHAVIOUR, "anneal": ALL, "accelerate": 1.0},
    "angular": {"bandwidth": 0.15, "grid_spacing": TURN / 120, "speed": 1.0, "anneal": 0, "accelerate": 0.0},
}

SPACES = tuple(SPACE_DEFAULTS)
LATENT_UNIT = "m, or rad on the circle"
SMALL_GENERATOR = {"n_cells": 60, "duration": 600.0}  # neither data nor generator: 60 grid cells, 10 minutes
DATA = ("counts", "behaviour", "time")


def space_default(key, unit=None) -> str:
    """What None stands for in setting `key`, read out of SPACE_DEFAULTS (the one place the
    space-dependent defaults are written), for the setting's doc: the value on a line or plane and
    on the circle, with `unit` where it has one, a template of the space's unit ("{}/s": m/s, rad/s)."""
    words = {BEHAVIOUR: "behaviour's own", ALL: "all E-steps but the last"}
    parts = []
    for space, where in (("linear", "on a line or plane"), ("angular", "on the circle")):
        value = SPACE_DEFAULTS[space][key]
        unit_text = "" if unit is None else " " + unit.format(Space(space, 1).unit)
        parts.append(f"{words[value] if value in words else f'{value:g}{unit_text}'} {where}")
    return "None: " + ", ".join(parts)


def setting(config, key):
    """A setting's value, SPACE_DEFAULTS filling in None (`config` of a built network, whose space is set)."""
    value = config.get(key)
    return SPACE_DEFAULTS[config["space"]][key] if value is None else value


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
    def axes(self) -> tuple:
        d = self.dynamics
        return d.space.axes(self.latent, setting(d.config, "grid_spacing"), d.config["grid_margin"])

    @functools.cached_property
    def kernels(self) -> list:
        """The latent's 1-D KDE kernels on each grid axis (mstep.latent_kernels)."""
        d = self.dynamics
        return latent_kernels(self.latent, self.axes, setting(d.config, "bandwidth"), d.space.angular)

    @functools.cached_property
    def fields(self) -> np.ndarray:
        """Tuning curves (N, *grid) in Hz fitted to the training entries at this latent."""
        d = self.dynamics
        return kde_fields(self.kernels, d.counts, ~d.validation, d.dt, d.config["rate_floor"])

    @functools.cached_property
    def log_occupancy(self) -> np.ndarray:
        """log density (G,) of this latent over the grid: the E-step's occupancy prior. Uniform on
        the circle: the prior keeps bins from being decoded beyond the walls of a track or an arena
        (docs/SIMPL.md, "Accuracy"); a circle has none, and there it measurably does not help."""
        if self.dynamics.space.angular:
            return np.full(self.axes[0].size, -np.log(self.axes[0].size))
        return log_occupancy(self.kernels)

    @functools.cached_property
    def metrics(self) -> dict:
        d = self.dynamics
        rates = interpolate(self.fields, self.axes, self.latent, d.space.angular)
        return metrics(d.counts, rates, d.dt, d.validation, self.latent, d.arrays.get("truth"), d.space,
                       d.log_factorial)


class SimplLatent(Dynamics):
    """The latent trajectory of a SIMPL fit and the data it explains (see module doc)."""

    name = "simpl_latent"
    trainable = ("latent",)
    labels = Labels(summary={"cells": Quantity("cells"), "bins": Quantity("time bins"),
                             "duration_s": Quantity("duration", "s"),
                             "latent_error": Quantity("latent error", "m, or rad on the circle")},
                    headline=("latent_error",))

    SETTINGS = Settings(
        Choice("space", None, "the latent space: 'linear', behaviour in metres with 1 column (a track) or 2 (an "
               "arena), or 'angular', one column, an angle in radians (head direction); None: the generator's "
               "space for synthetic data, else 'linear'", options=SPACES),
        Array("extent", None, "the environment, one [low, high] per axis (linear only: the circle is [0, 2 pi)); "
              "None: the latent's range plus grid_margin, inferred again at every M-step", shape=(None, 2),
              unit="m"),
        Real("dt", None, "bin width; None: the data file's, else the median step of time", low=0, low_open=True,
             unit="s"),
        Real("bandwidth", None, "KDE bandwidth of the tuning curves (kept as a number once built); "
             + space_default("bandwidth", "{}"), low=0, low_open=True, unit=LATENT_UNIT),
        Real("grid_spacing", None, "spacing of the tuning-curve grid (kept as a number once built); "
             + space_default("grid_spacing", "{}"), low=0, low_open=True, unit=LATENT_UNIT),
        Real("grid_margin", 0.05, "how far the grid extends beyond the latent's range (linear, no extent)", low=0,
             unit="m"),
        Real("rate_floor", 0.01, "smallest tuning-curve rate", low=0, low_open=True, unit="Hz"),
        Real("val_fraction", 0.1, "held-out fraction of each neuron's time (the validation entries)", low=0, high=1,
             low_open=True, high_open=True),
        Real("val_block", 1.0, "length of the held-out blocks", low=0, low_open=True, unit="s"),
        Text("data", None, "a recording file to start from (.npz, HDF5 or NWB: docs/SIMPL.md)", stored=False),
        Setting("generator", None, "settings of the synthetic benchmark to start from (a table: kind, n_cells, "
                f"duration, ...; data.generate); None without data: {SMALL_GENERATOR['n_cells']} grid cells over "
                f"{SMALL_GENERATOR['duration']:g} s", stored=False),
        Integer("data_seed", 0, "seed of the synthetic benchmark", low=0, stored=False),
    )

    @classmethod
    def relate(cls, settings):
        """One source of data at most; the generator's settings checked before anything is drawn."""
        if settings["data"] is not None and settings["generator"] is not None:
            raise ConfigError("simpl_latent: give one of data (a file) or generator (settings), not both")
        if settings["generator"] is not None:
            if not isinstance(settings["generator"], dict):
                raise ConfigError(f"simpl_latent: generator must be a table of generator settings, "
                                  f"got {settings['generator']!r}")
            simdata.check_settings(settings["generator"])

    @classmethod
    def build(cls, seed, *, data, generator, data_seed, **config):
        """A fit starting at the behaviour of a data file (`data`: .npz, HDF5 or NWB, see
        files.read; its dt unless `dt` is given) or of the synthetic benchmark (`generator`: settings
        of data.generate, drawn from `data_seed`, in its own space unless `space` is given;
        neither: SMALL_GENERATOR)."""
        if data is not None:
            from tcnet_plugins.simpl.files import read

            arrays = read(data, dt=config["dt"])
            config["dt"] = arrays.get("dt")
        else:
            generator = SMALL_GENERATOR if generator is None else generator
            arrays = simdata.generate(data_seed, **generator)
            config["space"] = config["space"] or simdata.space_of(generator)
        return cls.from_arrays(arrays["counts"], arrays["behaviour"], arrays["time"], truth=arrays.get("truth"),
                               missing=arrays.get("missing"), seed=seed, **config)

    @classmethod
    def from_arrays(cls, counts, behaviour, time, *, truth=None, missing=None, seed=0, **config):
        """A fit of checked arrays (inputs.check_inputs), starting at the behaviour; `config` holds
        settings of SETTINGS that are kept (not data, generator, data_seed)."""
        config = cls.SETTINGS.kept().resolve(cls.name, config)
        inputs = check_inputs(counts, behaviour, time, dt=config["dt"], missing=missing, truth=truth,
                              angular=config["space"] == "angular")
        arrays = {"latent": inputs.behaviour, "counts": inputs.counts, "behaviour": inputs.behaviour,
                  "time": inputs.time}
        if inputs.truth is not None:
            arrays["truth"] = inputs.truth
        return cls(arrays, config, seed)

    def check(self):
        """The arrays against the (declared and checked) configuration; the space (None: linear) and
        its defaults of bandwidth and grid_spacing are resolved here, so that a saved network keeps
        the numbers it was fitted with whatever the defaults become."""
        c = self.config
        c["space"] = c["space"] or "linear"
        for key in ("bandwidth", "grid_spacing"):
            c[key] = setting(c, key)
        missing = [k for k in DATA if k not in self.arrays]
        if missing:
            raise ConfigError(f"simpl_latent: missing data array(s) {', '.join(missing)}")
        a = self.arrays
        checked = check_inputs(a["counts"], a["behaviour"], a["time"], dt=c["dt"], truth=a.get("truth"))
        self.dt = checked.dt
        self.space = Space(c["space"], checked.behaviour.shape[1],
                           None if c["extent"] is None else tuple(map(tuple, c["extent"])))
        a["behaviour"] = checked.behaviour  # (T, D) also for one column given as (T,)
        if checked.truth is not None:
            a["truth"] = checked.truth
        if a["latent"].ndim == 1:
            a["latent"] = a["latent"][:, None]
        if a["latent"].shape != a["behaviour"].shape:
            raise ConfigError(f"simpl_latent: latent must have the shape of behaviour {a['behaviour'].shape}, "
                              f"got {a['latent'].shape}")
        self._check_split()

    def _check_split(self):
        """Both sides of the validation split need spikes: the M-step fits to the training entries,
        the metrics (and the stopping rule) are per spike of each side."""
        c = self.config
        held, blocks = held_out_blocks(len(self.arrays["time"]), self.block, c["val_fraction"])
        if not 0 < held < blocks:
            raise ConfigError(f"simpl_latent: val_fraction {c['val_fraction']:g} of the recording's {blocks} "
                              f"block(s) of val_block {c['val_block']:g} s holds out {held}; it must hold out at "
                              "least one block per cell and leave at least one (a longer recording, a shorter "
                              "val_block or another val_fraction)")
        for side, entries in (("validation", self.validation), ("training", ~self.validation)):
            if not np.any(self.counts, where=entries):
                raise ConfigError(f"simpl_latent: the {side} entries hold no spike (counts has "
                                  f"{int(self.counts.sum())} in all); SIMPL needs spikes on both sides of the "
                                  "validation split (more data, or another val_fraction or seed)")

    @functools.cached_property
    def counts(self) -> np.ndarray:
        return self.arrays["counts"].astype(np.int32)

    @functools.cached_property
    def log_factorial(self) -> np.ndarray:
        """log y! of the counts (every iteration's metrics need it)."""
        return gammaln(self.counts + 1.0)

    @functools.cached_property
    def starts(self) -> np.ndarray:
        """First bin of each segment between time gaps (estep.segment_starts)."""
        return segment_starts(self.arrays["time"], self.dt)

    @functools.cached_property
    def behaviour_speed(self) -> float:
        """The random-walk speed scale sigma (units/s) of behaviour's own steps: the root mean
        squared step per axis within segments, over dt (the M-step of q = (sigma dt)^2 at the
        latent = behaviour). Measured, not assumed: a track animal at 15 cm/s and an arena animal at
        8 cm/s need different priors (docs/SIMPL.md, "Accuracy"). Tracking jitter from bin to bin
        would inflate it; give `speed` for such behaviour."""
        steps = np.diff(self.space.unwrap(self.arrays["behaviour"], self.starts), axis=0)
        linked = np.ones(len(steps), dtype=bool)
        linked[self.starts[1:] - 1] = False  # the step across a gap is not a step
        if not linked.any():
            raise ConfigError("simpl: behaviour has no two consecutive bins to measure its speed from; give speed")
        speed = float(np.sqrt(np.mean(steps[linked] ** 2)) / self.dt)
        if speed == 0:
            raise ConfigError("simpl: behaviour does not move, so it gives no random-walk speed; give speed")
        return speed

    @property
    def block(self) -> int:
        """Bins per held-out block (val_block / dt, at least 1)."""
        return max(1, int(round(self.config["val_block"] / self.dt)))

    @functools.cached_property
    def validation(self) -> np.ndarray:
        """The held-out mask (T, N), drawn from this network's seed."""
        return validation_mask(*self.counts.shape, self.block, self.config["val_fraction"], self.seed or 0)

    def prior(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the latent at a segment's first bin: behaviour's, on a line or
        plane; uninformative on the circle (no single mean fits every unwrapped segment)."""
        if self.space.angular:
            return np.zeros(1), np.array([[SILENT_VARIANCE]])
        b = self.arrays["behaviour"]
        return b.mean(axis=0), np.atleast_2d(np.cov(b.T))

    def decode(self, fields, axes, log_prior, counts, mask, starts, speed, reference=None,
               beta=1.0) -> np.ndarray:
        """The random-walk-smoothed latent (T, D) of the `mask`ed `counts` under `fields`, the
        Poisson likelihood raised to the power `beta` (tempering; the maps are linear in the mask's
        entries, so a mask of beta instead of 1 gives beta times each map), and the occupancy prior
        `log_prior` (G,); on the circle the observations are first moved within pi of `reference`
        (unwrapped), or of a smoothed circular mean of themselves (see space.circular_reference)."""
        sp = self.space
        weights = mask if beta == 1 else beta * mask
        z, R = likelihood_moments(counts, weights, fields, axes, self.dt, sp.angular, log_prior)
        if sp.angular:
            ref = sp.unwrap(reference, starts) if reference is not None else sp.circular_reference(z, R, starts)
            z = sp.near(z, ref)
        m0, P0 = self.prior()
        return sp.canonical(smooth(z, R, (speed * self.dt) ** 2, m0, P0, starts))

    def make_state(self, params):
        return SimplState(self, params)

    def summary(self):
        T, N = self.counts.shape
        out = {"cells": float(N), "bins": float(T), "duration_s": float(T * self.dt)}
        if "truth" in self.arrays:
            out["latent_error"] = self.space.error(self.arrays["latent"], self.arrays["truth"])
        return out


class SimplNLL(Loss):
    """Minus the Poisson log-likelihood per spike (nats) of the `split` entries (see module doc).
    Side results (aux): the state's metrics and its M-step, `fields` and the grid `axis_<i>`,
    which the `simpl` optimizer's E-step starts from."""

    name = "simpl_nll"
    SETTINGS = Settings(Choice("split", "val", "whose log-likelihood: the held-out entries ('val', which stopping "
                               "reads) or the training entries ('train', which the M-step fits)",
                               options=("val", "train")))

    def __call__(self, state):
        if not isinstance(state, SimplState):
            raise ConfigError("simpl_nll: needs the dynamics simpl_latent")
        aux = {**state.metrics, "fields": state.fields, "log_occupancy": state.log_occupancy,
               **{f"axis_{i}": a for i, a in enumerate(state.axes)}}
        return -state.metrics[f"{self.config['split']}_ll"], aux


class Simpl(Iterative):
    """SIMPL's EM iterations (module doc) as an update rule of tcnet's one iterative loop: at each
    point the `simpl_nll` term's evaluation carries the M-step (tuning curves) and the metrics
    (history columns); the step is the E-step (decode with those tuning curves, smooth with a
    random-walk prior of speed scale `speed`, align to behaviour by a polynomial map of degree
    `align_degree`). `steps` E-steps at most; the run ends ("converged") at the first iterate whose
    validation log-likelihood rose by no more than `tol` over the previous one, and returns it.

    Annealing: E-step t (0 first) raises the Poisson likelihood to the power beta_t =
    temper^(1 - t / anneal) while t < anneal (at most all steps but the last), then 1. The first
    tuning curves are fitted to behaviour, tens of cm off, and their maps are sharp but wrong;
    tempered, the random walk and the occupancy weigh more, and the smooth warp those maps would
    imprint (which the likelihood cannot see afterwards, so it decays only through the prior) is
    smaller. Over-relaxation (`overrelax`) then speeds up that decay (docs/SIMPL.md, "Accuracy").

    Resuming continues from the checkpoint's latent with the remaining budget; the M-step is
    deterministic, the exponent depends on the iteration count only and whether over-relaxation is
    still on is in the checkpoint's opt_state, so the resumed iterations equal the uninterrupted
    ones."""

    name = "simpl"
    SETTINGS = Iterative.SETTINGS + Settings(
        Integer("steps", 10, "EM iterations (E-steps) at most", low=0),
        Real("speed", None, "random-walk speed scale of the latent; " + space_default("speed", "{}/s"), low=0,
             low_open=True, unit="m/s, or rad/s on the circle"),
        Integer("align_degree", 1, "alignment to behaviour: 1 affine (published; a rotation on the circle), "
                "0 none, > 1 polynomial", low=0),
        Real("tol", 0.0, "stop once the validation log-likelihood rises by no more than this", low=0,
             unit="nats/spike"),
        Integer("anneal", None, "E-steps with a tempered likelihood (exponent rising from `temper` to 1), at most "
                "all steps but the last; 0: none, the published EM; " + space_default("anneal"), low=0),
        Real("temper", 0.25, "exponent of the likelihood in the first E-step when anneal > 0", low=0, high=1,
             low_open=True),
        Real("accelerate", None, "over-relaxation: each E-step's move, smoothed over accelerate_timescale, is "
             "taken 1 + this many times when the validation log-likelihood rises with it; 0: plain EM; "
             + space_default("accelerate"), low=0),
        Real("accelerate_timescale", 2.0, "width of the Gaussian smoothing of the over-relaxed move",
             low=0, low_open=True, unit="s"),
    )

    def for_dynamics(self, dynamics):
        """This optimizer with speed, anneal and accelerate that are None filled in with what the fit
        of `dynamics` uses (the speed measured from its behaviour, the annealed E-steps, the gain),
        so that the run's stored spec holds them and a resumed run uses them, whatever the defaults
        become."""
        if not isinstance(dynamics, SimplLatent):
            return self  # refused in setup, with the reason
        used = {"speed": self.speed(dynamics), "anneal": self.annealed(dynamics), "accelerate": self.gain(dynamics)}
        return type(self)(**{k: used[k] if k in used and v is None else v for k, v in self.settings.items()})

    def space_setting(self, dynamics, key):
        """This optimizer's setting `key`, the space's default (SPACE_DEFAULTS) where it is None."""
        return setting({**dynamics.config, key: self.settings[key]}, key)

    def speed(self, dynamics) -> float:
        speed = self.space_setting(dynamics, "speed")
        return dynamics.behaviour_speed if speed == BEHAVIOUR else speed

    def gain(self, dynamics) -> float:
        """The over-relaxation factor gamma of the smoothed move (`accelerate`)."""
        return float(self.space_setting(dynamics, "accelerate"))

    def annealed(self, dynamics) -> int:
        """The number n of E-steps with a tempered likelihood: `anneal`, but at most all steps but
        the last, so that a fit ends with an untempered one (docs/SIMPL.md, "Accuracy": annealing)."""
        anneal = self.space_setting(dynamics, "anneal")
        last = max(self.settings["steps"] - 1, 0)
        return last if anneal == ALL else min(anneal, last)

    def exponent(self, dynamics, t) -> float:
        """The likelihood's exponent beta in E-step t (0 first): temper^(1 - t / n) while t < n
        (n: `annealed`), then 1."""
        n = self.annealed(dynamics)
        return self.settings["temper"] ** (1 - t / n) if t < n else 1.0

    def setup(self, objective):
        if not isinstance(objective.dynamics, SimplLatent):
            raise ConfigError(f"simpl: the optimizer needs the dynamics simpl_latent, got {objective.dynamics.name!r}")
        labels = [t.label for t in objective.terms if isinstance(t.loss, SimplNLL)]
        if not labels:
            raise ConfigError("simpl: the objective needs a simpl_nll term (its evaluation carries the M-step)")
        self.label = labels[0]
        return objective

    def evaluate(self, x, opt_state):
        return self.monitor.evaluate(self.objective, x, gradient=False)

    def columns(self, ev, opt_state):
        return {k: float(v) for k, v in ev.aux[self.label].items() if np.ndim(v) == 0}

    def stop(self, ev, opt_state):
        if "val_ll" not in opt_state:  # the starting point
            return None
        rise = float(ev.aux[self.label]["val_ll"]) - opt_state["val_ll"]
        if rise <= self.settings["tol"]:
            return "converged", f"validation log-likelihood rose by {rise:.3g} <= tol at iteration {opt_state['t']}"
        return None

    def step(self, x, ev, opt_state):
        """One E-step and the alignment; from the second on, the over-relaxed point first, kept
        when its validation log-likelihood is above the current one's (its evaluation is then the
        next iterate's, not repeated: tcnet.optim.Monitor); otherwise the plain E-step's point, and
        plain EM from then on (gamma 0 in the opt_state)."""
        aux = ev.aux[self.label]
        dynamics = self.objective.dynamics
        axes = tuple(aux[f"axis_{i}"] for i in range(dynamics.space.dim))
        latent = x.reshape(dynamics.arrays["latent"].shape)
        mu = self.estep(dynamics, latent, aux["fields"], axes, aux["log_occupancy"],
                        self.exponent(dynamics, opt_state["t"]))
        gamma = opt_state.get("gamma", self.gain(dynamics))
        new = {"val_ll": float(aux["val_ll"]), "gamma": gamma}
        if opt_state["t"] >= 1 and gamma > 0:
            bold = self.align(dynamics, overrelax(dynamics.space, latent, mu, gamma,
                                                  self.settings["accelerate_timescale"] / dynamics.dt,
                                                  dynamics.starts)).ravel()
            if float(self.evaluate(bold, opt_state).aux[self.label]["val_ll"]) > new["val_ll"]:
                return bold, new
            new["gamma"] = 0.0
        return self.align(dynamics, mu).ravel(), new

    def estep(self, dynamics, latent, fields, axes, log_prior, beta=1.0) -> np.ndarray:
        """The decoded latent (T, D), before the alignment: decode with the tuning curves
        (likelihood to the power beta) and the occupancy prior, smooth."""
        return dynamics.decode(fields, axes, log_prior, dynamics.counts, ~dynamics.validation, dynamics.starts,
                               self.speed(dynamics), reference=latent, beta=beta)

    def align(self, dynamics, mu) -> np.ndarray:
        """mu (T, D) aligned to behaviour by the polynomial of degree `align_degree` (0: as it is)."""
        degree = self.settings["align_degree"]
        if dynamics.space.angular and degree > 1:
            raise ConfigError(f"simpl: align_degree on the circle must be 0 or 1 (a rotation), got {degree}")
        if not degree:
            return mu
        return align(mu, dynamics.arrays["behaviour"], degree, dynamics.space.angular)[0]


def overrelax(space, x, mu, gamma, width, starts) -> np.ndarray:
    """The over-relaxed E-step: mu + gamma S(mu - x), S a Gaussian smoothing in time of standard
    deviation `width` bins within each segment (segments begin at `starts`; on the circle the move
    is the wrapped difference).

    Why: the likelihood cannot see a smooth warp of the latent, so the warp made in the first
    E-steps decays only through the prior, a slow mode of EM: each E-step moves the latent a
    fraction of the way, smoothly in time, while the rest of its move (each bin's own decoding noise)
    is done in one step. Over-relaxing the smoothed move alone speeds up the slow mode without
    amplifying the noise, which over-relaxing the whole move does (docs/SIMPL.md, "Accuracy")."""
    move = mu - x
    if space.angular:
        move = wrap(move)
    bounds = np.r_[starts, len(x)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        move[a:b] = gaussian_filter1d(move[a:b], width, axis=0, mode="nearest")
    return space.canonical(mu + gamma * move)
