"""`SIMPL`: the scikit-learn-shaped entry point for a lab's own arrays.

    model = SIMPL(space="angular", iterations=10).fit(counts, behaviour, time)
    model.latent_          # (T, D) the fitted latent
    model.fields_          # (N, *grid) tuning curves (Hz) on model.axes_
    model.predict(new_counts)   # decode held-out spikes with the fitted tuning curves

Settings are given at construction and not changed by `fit`. They are the declared settings
(tcnet.settings) of the `simpl_latent` dynamics (those a network keeps, dynamics.py) and of the
`simpl` optimizer (optimizer.py), by their names but for `RENAMED` (`KEYWORDS`), and the estimator's
own (`OWN`: seed, store, progress); from them follow the signature, the docstring, the checks at
construction and the flags of `tcnet simpl fit`. `fit` checks the arrays (inputs.py), runs the EM as
a tcnet run, and, with `store=PATH`, records it in that HDF5 run store (tcnet.store.RunWriter) like
every other run: per iteration the validation and training log-likelihood, bits per spike (and
latent error, with `truth`) in the run's history, the latent at its checkpoint, and the initial and
final networks (data and latent; the tuning curves follow from them deterministically, see
`SimplLatent`). In memory, `history_` holds every iteration's latent and metrics.
"""
import inspect
from dataclasses import replace

import numpy as np

from tcnet import run
from tcnet.settings import Settings
from tcnet.validate import ConfigError, no_extra, seed as check_seed
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.dynamics import SimplLatent
from tcnet_plugins.simpl.estep import decode, segment_prior, segment_starts
from tcnet_plugins.simpl.files import read
from tcnet_plugins.simpl.inputs import check_counts, check_time
from tcnet_plugins.simpl.loss import SimplNLL
from tcnet_plugins.simpl.optimizer import SimplEM

RENAMED = {"steps": "iterations"}
"""The `simpl` optimizer's settings whose keyword here (and `tcnet simpl fit` flag) is named
otherwise: an EM fit's steps are its iterations."""

DYNAMICS = SimplLatent.SETTINGS.kept()
OPTIMIZER = Settings(*(replace(s, name=RENAMED.get(s.name, s.name)) for s in SimplEM.SETTINGS))
KEYWORDS = DYNAMICS + OPTIMIZER
"""The declared settings SIMPL takes as keywords: the network's, then the optimizer's (renamed)."""
OWN = {"seed": (0, "seed of the validation mask"),
       "store": (None, "a tcnet run store (HDF5 path) to record the fit in, or None"),
       "progress": (False, "show a progress bar")}
"""The estimator's own keywords: (default, doc)."""


def _signature() -> inspect.Signature:
    """`SIMPL.__init__(self, *, <KEYWORDS>, <OWN>)` with the declared defaults, for help() and
    the introspection of scikit-learn-style tools (get_params, clone)."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                              *(inspect.Parameter(s.name, keyword, default=s.default) for s in KEYWORDS),
                              *(inspect.Parameter(k, keyword, default=v) for k, (v, _) in OWN.items())])


class SIMPL:
    """SIMPL on arrays (module doc)."""

    def __init__(self, **settings):
        no_extra("SIMPL", settings, [*KEYWORDS.names, *OWN])
        for name, default in {**KEYWORDS.defaults, **{k: v for k, (v, _) in OWN.items()}}.items():
            setattr(self, name, settings.get(name, default))
        KEYWORDS.resolve("SIMPL", {k: getattr(self, k) for k in KEYWORDS.names})  # bad values fail here
        check_seed("SIMPL", "seed", self.seed)

    __init__.__signature__ = _signature()

    def get_params(self, deep=True) -> dict:
        """The keyword settings of this estimator (scikit-learn's convention; it nests none, so
        `deep` changes nothing)."""
        return {k: getattr(self, k) for k in [*KEYWORDS.names, *OWN]}

    def _config(self) -> dict:
        """The `simpl_latent` network's settings."""
        return {k: getattr(self, k) for k in DYNAMICS.names}

    def _optimizer(self) -> SimplEM:
        """The `simpl` optimizer of these settings."""
        return SimplEM(**{s.name: getattr(self, RENAMED.get(s.name, s.name)) for s in SimplEM.SETTINGS})

    def fit(self, counts, behaviour, time, *, missing=None, truth=None, source=None) -> "SIMPL":
        """Fit to counts (T, N), behaviour (T,) or (T, D) and time (T,) (bin starts, s); `missing`
        marks behaviour samples to interpolate, `truth` (if known) adds the latent error per
        iteration; `source`, what the arrays were read from (files.read's report), is recorded
        with the run in the store (its attribute `notes`, {"source": ...}). Returns self."""
        return self.fit_network(self.network(counts, behaviour, time, missing=missing, truth=truth), source=source)

    def fit_network(self, net: SimplLatent, *, source=None) -> "SIMPL":
        """Fit starting from `net` (`network`: the arrays checked with these settings); `source` as
        in `fit`. Returns self."""
        optimizer = self._optimizer().for_dynamics(net)
        spec = {"dynamics": {"name": SimplLatent.name, "seed": self.seed, **net.config},
                "loss": [{"name": "simpl_nll"}], "optimizer": optimizer.config}
        recorders = []
        if self.store is not None:
            from tcnet.store import RunWriter

            recorders.append(RunWriter(self.store))
            if source is not None:
                recorders[0].note(source=source)
        result = run(spec, dynamics=net, recorders=recorders, progress=self.progress)
        self.result_ = result
        self.network_ = result.final
        self.latent_ = result.final.arrays["latent"]
        self.fields_, self.axes_, self.log_occupancy_ = self._mstep(result)
        self.speed_ = optimizer.settings["speed"]  # the random walk's (given or measured)
        self.history_ = [{"latent": s.x.reshape(self.latent_.shape), **s.extra} for s in result.history.steps]
        self.run_id_ = recorders[0].run_id if recorders else None
        return self

    def network(self, counts, behaviour, time, *, missing=None, truth=None) -> SimplLatent:
        """The `simpl_latent` network `fit` starts from: the arrays and these settings checked
        (inputs, the validation split, the tuning-curve grid's size), nothing fitted."""
        return SimplLatent.from_arrays(counts, behaviour, time, truth=truth, missing=missing, seed=self.seed,
                                       **self._config())

    @staticmethod
    def _mstep(result) -> tuple:
        """The tuning curves, their grid axes and the occupancy prior at the final latent: the
        run's last evaluation carries them (loss.SimplNLL's side results); computed again only
        where the run evaluated elsewhere last (it ended on a non-finite iterate)."""
        if result.evaluation is None:
            final = result.final.state()
            return final.fields, final.axes, final.log_occupancy
        aux = result.evaluation.aux[SimplNLL.name]
        return aux["fields"], tuple(aux[f"axis_{i}"] for i in range(result.final.space.dim)), aux["log_occupancy"]

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
        return decode(y, np.ones(y.shape, dtype=bool), self.fields_, self.axes_, self.log_occupancy_, net.dt,
                      net.space, segment_starts(t, net.dt), self.speed_,
                      segment_prior(net.data["behaviour"], net.space))


def fit(data, *, data_seed=0, **settings) -> "SIMPL":
    """SIMPL(**settings) fitted to a recording file (a path: files.read) or to the synthetic
    benchmark (a dict of data.generate settings, drawn from `data_seed`; its space and truth are
    filled in)."""
    if isinstance(data, dict):
        arrays = simdata.generate(data_seed, **data)
        settings = {"space": simdata.space_of(data), **settings}
    else:
        arrays = read(data, dt=settings.get("dt"), space=settings.get("space"))
        settings = {**settings, "dt": arrays.get("dt"), "space": settings.get("space") or arrays.get("space")}
    return SIMPL(**settings).fit(arrays["counts"], arrays["behaviour"], arrays["time"],
                                 missing=arrays.get("missing"), truth=arrays.get("truth"), source=arrays.get("report"))



SIMPL.__doc__ += ("\n\nKeywords (declared in dynamics.py and optimizer.py: `tcnet plugins simpl_latent`, "
                  "`tcnet plugins simpl`):\n\n"
                  + "\n".join([f"- {line}" for line in KEYWORDS.help_lines()]
                               + [f"- {k}: {doc} (default {v!r})" for k, (v, doc) in OWN.items()]))
