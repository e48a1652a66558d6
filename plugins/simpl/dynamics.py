"""The dynamics `simpl_latent`: the latent trajectory of a SIMPL fit, the data it explains, and
the state that caches the M-step at one latent.

The trainable array is `latent` (T, D), i.e. the flat parameter vector theta *is* the current
latent trajectory; the data are the network's fixed data (`Dynamics.data`: `counts` (T, N) int32,
`behaviour` (T, D), `time` (T,), optionally `truth` (T, D)), checked once, so a stored network
rebuilds the fit exactly. The seed draws the validation mask. The state (`SimplState`) computes, lazily and once, the M-step for
its latent: the grid, the tuning curves, the occupancy prior, the rates at the latent and the
metrics. Initial latent: the behaviour. `create` builds one from a data file or the synthetic
generator.

The settings of a SIMPL fit are declared once, on the classes that take them: the network's in
`SimplLatent.SETTINGS`, the EM's in the optimizer's `SimplEM.SETTINGS`, and the defaults that depend
on the space in `SPACE_DEFAULTS` below (estimator.py and cli.py are made from these).
"""
import functools

import numpy as np
from scipy.special import gammaln

from tcnet import ConfigError, Dynamics, State
from tcnet.labels import Labels, Quantity
from tcnet.settings import Array, Choice, Integer, Real, Setting, Settings, Text

from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.estep import segment_starts
from tcnet_plugins.simpl.inputs import check_inputs
from tcnet_plugins.simpl.metrics import held_out_blocks, metrics, validation_mask
from tcnet_plugins.simpl.mstep import interpolate, kde_fields, latent_kernels, log_occupancy, random_walk_speed
from tcnet_plugins.simpl.space import TURN, Space

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
BANDWIDTH_SPACING = 0.25
"""The narrowest KDE bandwidth, in grid spacings: a Gaussian kernel narrower than a quarter of the
spacing (exp(-2) at the midpoint between grid points) is nearly zero at every grid point for most
latent positions, and the tuning curves and the occupancy vanish (NaN, singular fits)."""
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
    """The M-step at one latent (mstep.py), computed lazily and once, and the metrics of the fit it
    gives (metrics.py): the state the `simpl_nll` loss reads and the `simpl` optimizer's E-step
    starts from."""

    @functools.cached_property
    def latent(self) -> np.ndarray:
        x = self.params["latent"]
        if not isinstance(x, np.ndarray):
            raise ConfigError("simpl: the SIMPL losses are not differentiable; optimize simpl_latent "
                              "with the optimizer 'simpl' (EM), not a gradient method")
        return x

    @functools.cached_property
    def axes(self) -> tuple:
        """The tuning-curve grid, one axis per latent dimension (space.Space.axes)."""
        d = self.dynamics
        d.check_grid(self.latent)  # the latent moves: its grid is sized again before it is made
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
        """log density (G,) of this latent over the grid: the E-step's occupancy prior
        (mstep.log_occupancy; uniform on the circle)."""
        return log_occupancy(self.kernels, self.dynamics.space.angular)

    @functools.cached_property
    def metrics(self) -> dict:
        """Per-iteration scalars (metrics.metrics) of the rates interpolated at this latent."""
        d = self.dynamics
        rates = interpolate(self.fields, self.axes, self.latent, d.space.angular)
        return metrics(d.counts, rates, d.dt, d.validation, self.latent, d.data.get("truth"), d.space,
                       d.log_factorial)



class SimplLatent(Dynamics):
    """The latent trajectory of a SIMPL fit and the data it explains: the data and the
    configuration, checked once, and the validation split drawn from the seed."""

    name = "simpl_latent"
    trainable = ("latent",)
    data_names = (*DATA, "truth")
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
        """A fit of the given arrays, checked once (inputs.check_inputs, `missing` behaviour samples
        interpolated), starting at the behaviour; `config` holds settings of SETTINGS that are kept
        (not data, generator, data_seed)."""
        config = cls.complete(cls.SETTINGS.kept().resolve(cls.name, config))
        data = cls.checked(config, counts, behaviour, time, truth=truth, missing=missing)
        return cls({"latent": data["behaviour"]}, config, seed, data=data)

    @staticmethod
    def complete(config: dict) -> dict:
        """The configuration with the space (None: linear) and its defaults of bandwidth and
        grid_spacing resolved, so that a saved network keeps the numbers it was fitted with
        whatever the defaults become."""
        config = {**config, "space": config["space"] or "linear"}
        return {**config, **{key: setting(config, key) for key in ("bandwidth", "grid_spacing")}}

    @staticmethod
    def checked(config, counts, behaviour, time, *, truth=None, missing=None) -> dict:
        """The data of a fit, checked against the (completed) configuration (inputs.check_inputs):
        counts as int32 (T, N), behaviour and truth as (T, D), time (T,)."""
        inputs = check_inputs(counts, behaviour, time, dt=config["dt"], missing=missing, truth=truth,
                              angular=config["space"] == "angular")
        if inputs.counts.size and inputs.counts.max() > np.iinfo(np.int32).max:
            raise ConfigError(f"simpl_latent: counts must be below 2**31 (spikes per bin), got "
                              f"{inputs.counts.max()}")
        data = {"counts": inputs.counts.astype(np.int32, copy=False), "behaviour": inputs.behaviour,
                "time": inputs.time}
        return data if inputs.truth is None else {**data, "truth": inputs.truth}

    def prepare_data(self, data):
        """The recording checked once (`checked`), the configuration completed first (`complete`);
        files written before the data was stored apart hold the counts as floats, read back here
        as the integers they are."""
        self.config = self.complete(self.config)
        missing = [k for k in DATA if k not in data]
        if missing:
            raise ConfigError(f"simpl_latent: missing data array(s) {', '.join(missing)}")
        return self.checked(self.config, **data)

    def check(self):
        """The latent against the data: one row per time bin, one column per behaviour column, and
        spikes on both sides of the validation split; behaviour moving along every axis (its
        spread is the smoother's prior at a segment's start, and the alignment's scale); a KDE
        bandwidth of at least BANDWIDTH_SPACING grid spacings; and the grid at this latent of a
        size that can be held (`check_grid`)."""
        behaviour, latent = self.data["behaviour"], self.arrays["latent"]
        if latent.shape != behaviour.shape:
            raise ConfigError(f"simpl_latent: latent must have the shape of behaviour {behaviour.shape}, "
                              f"got {latent.shape}")
        still = [i for i in range(behaviour.shape[1]) if np.ptp(behaviour[:, i]) == 0]
        if still:
            raise ConfigError(f"simpl_latent: behaviour must move along every axis, but column {still[0]} is "
                              f"{behaviour[0, still[0]]:g} in every bin; SIMPL starts from behaviour and aligns to it")
        bandwidth, spacing = (setting(self.config, k) for k in ("bandwidth", "grid_spacing"))
        if bandwidth < BANDWIDTH_SPACING * spacing:
            raise ConfigError(f"simpl_latent: bandwidth must be at least {BANDWIDTH_SPACING:g} x grid_spacing "
                              f"({BANDWIDTH_SPACING * spacing:.3g} {self.space.unit}: a narrower kernel falls between "
                              f"the grid points and the tuning curves vanish), got {bandwidth:g}")
        self.check_grid(latent)
        self._check_split()

    def check_grid(self, latent) -> None:
        """Refuse the tuning-curve grid at `latent` if it cannot be held (space.Space.check_grid)."""
        c = self.config
        self.space.check_grid(latent, setting(c, "grid_spacing"), c["grid_margin"], self.counts.shape[1],
                              self.counts.shape[0])

    def _check_split(self):
        """Both sides of the validation split need spikes: the M-step fits to the training entries,
        the metrics (and the stopping rule) are per spike of each side."""
        c = self.config
        held, blocks = held_out_blocks(len(self.data["time"]), self.block, c["val_fraction"])
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

    @property
    def counts(self) -> np.ndarray:
        """Spike counts (T, N), int32."""
        return self.data["counts"]

    @functools.cached_property
    def dt(self) -> float:
        """The bin width (s): the configuration's, or the median step of time."""
        return self.config["dt"] or float(np.median(np.diff(self.data["time"])))

    @functools.cached_property
    def space(self) -> Space:
        """The latent space, with as many dimensions as behaviour has columns."""
        extent = self.config["extent"]
        return Space(self.config["space"], self.data["behaviour"].shape[1],
                     None if extent is None else tuple(map(tuple, extent)))

    @functools.cached_property
    def log_factorial(self) -> np.ndarray:
        """log y! of the counts (every iteration's metrics need it)."""
        return gammaln(self.counts + 1.0)

    @functools.cached_property
    def starts(self) -> np.ndarray:
        """First bin of each segment between time gaps (estep.segment_starts)."""
        return segment_starts(self.data["time"], self.dt)

    @functools.cached_property
    def behaviour_speed(self) -> float:
        """The random-walk speed scale (units/s) of behaviour's own steps (mstep.random_walk_speed):
        the `simpl` optimizer's default speed on a line or plane."""
        return random_walk_speed(self.data["behaviour"], self.starts, self.dt, self.space)

    @property
    def block(self) -> int:
        """Bins per held-out block (val_block / dt, at least 1)."""
        return max(1, int(round(self.config["val_block"] / self.dt)))

    @functools.cached_property
    def validation(self) -> np.ndarray:
        """The held-out mask (T, N), drawn from this network's seed."""
        return validation_mask(*self.counts.shape, self.block, self.config["val_fraction"], self.seed or 0)

    def make_state(self, params):
        return SimplState(self, params)

    def summary(self):
        T, N = self.counts.shape
        out = {"cells": float(N), "bins": float(T), "duration_s": float(T * self.dt)}
        if "truth" in self.data:
            out["latent_error"] = self.space.error(self.arrays["latent"], self.data["truth"])
        return out
