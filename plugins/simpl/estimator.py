"""`SIMPL`: the scikit-learn-shaped entry point for a lab's own arrays.

    model = SIMPL(space="angular", iterations=10).fit(counts, behaviour, time)
    model.latent_          # (T, D) the fitted latent
    model.fields_          # (N, *grid) tuning curves (Hz) on model.axes_
    model.predict(new_counts)   # decode held-out spikes with the fitted tuning curves

Settings are given at construction (those of the `simpl_latent` dynamics and of the `simpl`
optimizer, core.py) and not changed by `fit`. `fit` checks the arrays (inputs.py), runs the EM as a
tcnet run, and, with `store=PATH`, records it in that HDF5 run store (tcnet.store.RunWriter) like
every other run: per iteration the validation and training log-likelihood, bits per spike (and
latent error, with `truth`) in the run's history, the latent at its checkpoint, and the initial
and final networks (data and latent; the tuning curves follow from them deterministically, see
`SimplLatent`). In memory, `history_` holds every iteration's latent and metrics.
"""
import numpy as np

from tcnet import run
from tcnet.validate import ConfigError
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.core import CONFIG, Simpl, SimplLatent
from tcnet_plugins.simpl.estep import segment_starts
from tcnet_plugins.simpl.files import read
from tcnet_plugins.simpl.inputs import check_counts, check_time


class SIMPL:
    """SIMPL on arrays (module doc). Keyword settings: the dynamics' (space, extent, dt,
    bandwidth, grid_spacing, grid_margin, rate_floor, val_fraction, val_block), the optimizer's
    (iterations, speed, align_degree, tol, anneal, temper, accelerate, accelerate_timescale),
    `seed` (the validation mask), `store` (a run-store path or None) and `progress` (a progress
    bar)."""

    def __init__(self, *, space=CONFIG["space"], extent=CONFIG["extent"], dt=CONFIG["dt"],
                 bandwidth=CONFIG["bandwidth"], grid_spacing=CONFIG["grid_spacing"],
                 grid_margin=CONFIG["grid_margin"], rate_floor=CONFIG["rate_floor"],
                 val_fraction=CONFIG["val_fraction"], val_block=CONFIG["val_block"],
                 iterations=Simpl.SETTINGS.defaults["steps"], speed=Simpl.SETTINGS.defaults["speed"],
                 align_degree=Simpl.SETTINGS.defaults["align_degree"], tol=Simpl.SETTINGS.defaults["tol"],
                 anneal=Simpl.SETTINGS.defaults["anneal"], temper=Simpl.SETTINGS.defaults["temper"],
                 accelerate=Simpl.SETTINGS.defaults["accelerate"],
                 accelerate_timescale=Simpl.SETTINGS.defaults["accelerate_timescale"],
                 seed=0, store=None, progress=False):
        self.space, self.extent, self.dt = space, extent, dt
        self.bandwidth, self.grid_spacing, self.grid_margin = bandwidth, grid_spacing, grid_margin
        self.rate_floor, self.val_fraction, self.val_block = rate_floor, val_fraction, val_block
        self.iterations, self.speed, self.align_degree, self.tol = iterations, speed, align_degree, tol
        self.anneal, self.temper = anneal, temper
        self.accelerate, self.accelerate_timescale = accelerate, accelerate_timescale
        self.seed, self.store, self.progress = seed, store, progress
        self._optimizer()  # bad optimizer settings fail here, at construction

    def _config(self) -> dict:
        return {k: getattr(self, k) for k in CONFIG}

    def _settings(self) -> dict:
        """The `simpl` optimizer's settings (its `steps` are the iterations)."""
        return {"steps": self.iterations, "speed": self.speed, "align_degree": self.align_degree, "tol": self.tol,
                "anneal": self.anneal, "temper": self.temper, "accelerate": self.accelerate,
                "accelerate_timescale": self.accelerate_timescale}

    def _optimizer(self) -> dict:
        Simpl(**self._settings())
        return {"name": Simpl.name, **self._settings()}

    def fit(self, counts, behaviour, time, *, missing=None, truth=None) -> "SIMPL":
        """Fit to counts (T, N), behaviour (T,) or (T, D) and time (T,) (bin starts, s); `missing`
        marks behaviour samples to interpolate, `truth` (if known) adds the latent error per
        iteration. Returns self."""
        net = SimplLatent.from_arrays(counts, behaviour, time, truth=truth, missing=missing, seed=self.seed,
                                      **self._config())
        spec = {"dynamics": {"name": SimplLatent.name, "seed": self.seed, **net.config},
                "loss": [{"name": "simpl_nll"}], "optimizer": self._optimizer()}
        recorders = []
        if self.store is not None:
            from tcnet.store import RunWriter

            recorders.append(RunWriter(self.store))
        result = run(spec, dynamics=net, recorders=recorders, progress=self.progress)
        final = result.final.state()
        self.result_ = result
        self.network_ = result.final
        self.latent_ = result.final.arrays["latent"]
        self.fields_ = final.fields
        self.axes_ = final.axes
        self.log_occupancy_ = final.log_occupancy
        self.speed_ = Simpl(**self._settings()).speed(result.final)  # the random walk's (given or measured)
        self.history_ = [{"latent": s.x.reshape(self.latent_.shape), **s.extra} for s in result.history.steps]
        self.run_id_ = recorders[0].run_id if recorders else None
        return self

    def predict(self, counts, time=None) -> np.ndarray:
        """The latent (T', D) decoded from new counts (T', N) with the fitted tuning curves (every
        entry used, the same random-walk prior, split at gaps of `time`; default: contiguous bins).
        It lives in the fitted latent's coordinates: no alignment to behaviour."""
        if not hasattr(self, "fields_"):
            raise ConfigError("SIMPL: predict needs a fitted model; call fit first")
        net = self.network_
        y = check_counts(counts)
        if y.shape[1] != net.counts.shape[1]:
            raise ConfigError(f"simpl: counts must have {net.counts.shape[1]} columns (the fitted cells), "
                              f"got {y.shape[1]}")
        t = np.arange(y.shape[0]) * net.dt if time is None else check_time(time, net.dt)[0]
        if t.shape[0] != y.shape[0]:
            raise ConfigError(f"simpl: time must have one entry per row of counts ({y.shape[0]}), got {t.shape[0]}")
        return net.decode(self.fields_, self.axes_, self.log_occupancy_, y, np.ones(y.shape, dtype=bool),
                          segment_starts(t, net.dt), self.speed_)


def fit(data, *, data_seed=0, **settings) -> "SIMPL":
    """SIMPL(**settings) fitted to a recording file (a path: files.read) or to the synthetic
    benchmark (a dict of data.generate settings, drawn from `data_seed`; its space and truth are
    filled in)."""
    if isinstance(data, dict):
        arrays = simdata.generate(data_seed, **data)
        settings = {"space": simdata.space_of(data), **settings}
    else:
        arrays = read(data, dt=settings.get("dt"))
        settings = {"dt": arrays.get("dt"), **settings}
    return SIMPL(**settings).fit(arrays["counts"], arrays["behaviour"], arrays["time"],
                                 missing=arrays.get("missing"), truth=arrays.get("truth"))
