"""The model a loss is evaluated on: named parameter arrays, fixed data, a traceable state, simulation.

A `Dynamics` owns its parameters as named numpy arrays; some of them are *trainable*. Apart from
them it may hold fixed *data* (a recording, a task): named arrays in their own dtype (integer spike
counts stay integers), validated once when the network is built, never trainable, never part of
theta, shared (not copied, not validated again) by every network `with_vector` makes of it, and
stored once per run. Optimizers
see the trainable ones as one flat vector theta (`vector` / `params`), losses see a `State` built
from theta. The state is where quantities shared by several loss terms (an eigendecomposition, a
fixed point, a Gramian) are computed once per evaluation: subclasses compute them lazily with
`functools.cached_property`, which autograd traces like any other Python code.

Subclasses (plugins) define:
- `name` (the plugin name), `trainable` (names of the trainable arrays) and `data_names` (names of
  the arrays that are data, not parameters);
- `SETTINGS` (tcnet.settings): every setting declared once (name, default, allowed values, one
  line of doc, unit); those with `stored=False` say how a new instance is built (its initial
  arrays, a data file) and are not kept in its `config`. `create(seed, **settings)` checks the
  given settings against it and fills in defaults, then calls `build`; the constructor checks
  `config` against the stored ones. A dynamics without settings declares ``SETTINGS =
  Settings()``; one that declares nothing (and overrides `create` itself) gets its keys unchecked,
  with a warning;
- `build(seed, **settings)`: a new instance from the checked settings (every declared one given),
  with its random parameters drawn from `seed`;
- `relate(settings)`: checks that relate several settings, run before anything is built;
- `prepare_data(data)`: the data arrays validated against the configuration and in the form the
  network keeps (raise `tcnet.validate.ConfigError`), run once when a network is built from them;
  by default they are kept as given, in their own dtype;
- `check()`: validation of the parameter arrays against the configuration and the data (raise
  `tcnet.validate.ConfigError`); it only checks, it builds nothing (what a dynamics derives from
  its data and configuration is a cached property, or made in `prepare_data`);
- `make_state(params)`: the `State` of a parameter dict (values may be autograd boxes);
- `rhs(x, u, params)`: the vector field dx/dt = f(x, u; params), once, traceable and batched over
  conditions (x (C, dim), u (C, m) or None); the state's `trajectory(x0, t, u)` (what trajectory
  losses read), `simulate` and `tcnet simulate` all integrate it with tcnet.integrate, by the
  scheme and step of `integration`. A dynamics with analytic Jacobian-vector products gives them
  through `vector_field`; a state with a closed form overrides `trajectory`. `sample_initial(n,
  seed)`: n random initial states. Models without time evolution leave them undefined;
- optionally `readout(x)`: the readouts of states x, and `task`: the task (tcnet.task.Task, fixed
  data) its trajectory losses and `tcnet.open(...).simulate_task` run on;
- optionally `summary()`: scalar facts about the network (e.g. its spectral abscissa) that
  `tcnet show`, `simulate` and `compare` print;
- optionally `labels` (a `tcnet.labels.Labels`): labels and units of time, state entries, config
  and summary keys, and the headline summary keys that tables and figures show by default; and
  `trajectory_metrics(t, x)`: per-trajectory numbers that `tcnet simulate` prints.
"""
from abc import ABC, abstractmethod
from typing import ClassVar, Mapping

import autograd.numpy as anp
import numpy as np

from tcnet.fixedpoints import FixedPoints, find
from tcnet.integrate import VectorField, solve
from tcnet.labels import Labels
from tcnet.settings import Settings, warn_unchecked
from tcnet.validate import ConfigError, seed as check_seed


def _read_only(a) -> np.ndarray:
    """`a` itself if it is a read-only array (data another network holds: shared, not copied),
    else a read-only copy (so that no caller's array is frozen, and no network's data changes)."""
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        return a
    a = np.array(a)
    a.flags.writeable = False
    return a


class State:
    """Quantities of one parameter setting that loss terms read; subclasses add cached properties."""

    def __init__(self, dynamics: "Dynamics", params: Mapping):
        self.dynamics = dynamics
        self.params = params

    def columns(self) -> dict:
        """Scalars saying how this state computed what the loss terms read (e.g. which numerical
        path), recorded per step in the run history as extra columns. Called after the terms, so
        it reports what they computed and computes nothing new; none by default."""
        return {}

    def trajectory(self, x0, t, u=None):
        """States (len(t), C, dim) at the times t from initial states x0 (C, dim) with inputs u
        (len(t), C, m) on the grid (or None), traceable: the dynamics' vector field integrated by
        tcnet.integrate with its `integration` settings (a state with a closed form overrides this)."""
        field, params = self.dynamics.vector_field(self.params)
        return solve(field, params, x0, t, u, **self.dynamics.integration)


class RhsField(VectorField):
    """The vector field of a dynamics' traced `rhs`, over the parameter arrays `names`."""

    def __init__(self, dynamics: "Dynamics", names: tuple):
        self.dynamics, self.names = dynamics, names

    def rhs(self, x, u, params):
        return self.dynamics.rhs(x, u, dict(zip(self.names, params)))


class Dynamics(ABC):
    """A dynamical model with named parameters, some of which an optimizer may change."""

    name: ClassVar[str] = ""
    trainable: ClassVar[tuple[str, ...]] = ()
    data_names: ClassVar[tuple[str, ...]] = ()  # the arrays that are fixed data, not parameters
    task = None  # the tcnet.task.Task its trajectory losses read, if any (fixed data)
    labels: ClassVar[Labels] = Labels()  # how tables, figures and labelled arrays show its numbers
    SETTINGS: ClassVar[Settings] = Settings()  # this object itself: declares nothing (see the module doc)

    def __init__(self, arrays: Mapping[str, np.ndarray], config: Mapping | None = None, seed=None, *,
                 data: Mapping[str, np.ndarray] | None = None):
        """A network of parameter `arrays` (as float64) and data: the entries of `arrays` named in
        `data_names`, validated here (`prepare_data`), or `data` already in the form a network of
        this class and configuration keeps it (`with_vector` shares its own this way, and a
        dynamics that validated its data before building, e.g. SIMPL's `from_arrays`), not
        validated again. The data is kept read-only (`_read_only`). `seed`, the one the network was
        drawn from (None: unknown), is a seed every generator takes (`tcnet.validate.seed`)."""
        self.config = dict(config or {})
        if self.declares_settings():
            self.config = self.SETTINGS.kept().resolve(self.name, self.config)
        self.seed = None if seed is None else check_seed(self.name, "seed", seed)
        self.arrays = {k: np.array(v, dtype=float) for k, v in arrays.items() if k not in self.data_names}
        missing = [k for k in self.trainable if k not in self.arrays]
        if missing:
            raise ConfigError(f"{self.name}: missing parameter array(s) {', '.join(missing)}")
        if data is None:
            data = self.prepare_data({k: v for k, v in arrays.items() if k in self.data_names})
        self.data = {k: _read_only(v) for k, v in data.items()}
        self.check()

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def declares_settings(cls) -> bool:
        return cls.SETTINGS is not Dynamics.SETTINGS

    @classmethod
    def resolve(cls, settings: Mapping) -> dict:
        """The given settings checked against SETTINGS, defaults filled in (unchecked, with a
        warning, for a dynamics that declares nothing)."""
        if not cls.declares_settings():
            warn_unchecked("dynamics", cls.name, settings)
            return dict(settings)
        values = cls.SETTINGS.resolve(cls.name, dict(settings))
        cls.relate(values)
        return values

    @classmethod
    def relate(cls, settings: dict) -> None:
        """Check what relates several settings (raise ConfigError), before anything is built."""

    @classmethod
    def create(cls, seed=0, **settings) -> "Dynamics":
        """A new instance with parameters drawn from `seed` and the given settings."""
        check_seed(cls.name, "seed", seed)
        return cls.build(seed, **cls.resolve(settings))

    @classmethod
    def build(cls, seed, **settings) -> "Dynamics":
        """A new instance from checked settings (every declared one present)."""
        raise NotImplementedError(f"dynamics {cls.name!r}: implement build(seed, **settings) (or create)")

    def prepare_data(self, data: dict) -> dict:
        """The data arrays (the entries of the constructor's arrays named in `data_names`) checked
        against the configuration and in the form the network keeps them; raise ConfigError naming
        the offending entry. Run once per data set: networks made by `with_vector` share the result.
        By default they are kept as given."""
        return data

    def check(self) -> None:
        """Validate the parameter arrays against the configuration and the data; raise ConfigError
        naming the offending entry. It only checks (module doc)."""

    # --- the flat parameter vector ------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of trainable scalars."""
        return sum(self.arrays[k].size for k in self.trainable)

    def vector(self) -> np.ndarray:
        """The trainable arrays, flattened and concatenated in `trainable` order."""
        if not self.trainable:
            return np.zeros(0)
        return np.concatenate([self.arrays[k].ravel() for k in self.trainable])

    def params(self, theta) -> dict:
        """All parameter arrays, with the trainable ones read from theta (traceable by autograd)."""
        if np.shape(theta) != (self.size,):
            raise ConfigError(f"{self.name}: theta must have shape ({self.size},), got {np.shape(theta)}")
        out = dict(self.arrays)
        start = 0
        for k in self.trainable:
            shape = self.arrays[k].shape
            n = self.arrays[k].size
            out[k] = anp.reshape(theta[start : start + n], shape)
            start += n
        return out

    def with_vector(self, theta) -> "Dynamics":
        """A copy of this network whose trainable arrays are taken from theta; it shares this
        network's data (read-only), which is not copied or validated again."""
        arrays = {k: np.array(v) for k, v in self.params(np.asarray(theta, dtype=float)).items()}
        return type(self)(arrays, self.config, self.seed, data=self.data)

    # --- what losses and users read -----------------------------------------------------------
    def state(self, theta=None) -> State:
        """The state at theta (default: the current arrays)."""
        return self.make_state(self.params(self.vector() if theta is None else theta))

    @abstractmethod
    def make_state(self, params: Mapping) -> State:
        """The state of a full parameter dict."""

    @property
    def integration(self) -> dict:
        """The keywords of tcnet.integrate.solve its trajectories use: scheme, dt (the largest step;
        None: the time grid's)."""
        return {"scheme": "rk4", "dt": None}

    def rhs(self, x, u, params):
        """dx/dt = f(x, u; params) for states x (C, dim) and inputs u (C, m) or None; traceable."""
        raise NotImplementedError(f"dynamics {self.name!r} has no time evolution to simulate")

    def vector_field(self, params: Mapping) -> tuple[VectorField, tuple]:
        """(field, its parameter tuple) at the parameter dict `params`: by default `rhs` over
        every parameter array, differentiated by autograd stage by stage."""
        names = tuple(params)
        return RhsField(self, names), tuple(params[k] for k in names)

    def simulate(self, x0, t, u=None) -> np.ndarray:
        """Trajectories at times t from initial states x0 of shape (..., dim): (len(t),) + x0.shape;
        u: inputs (len(t),) + x0.shape[:-1] + (m,) on the grid, or None. The state's `trajectory`
        in plain numpy: the code trajectory losses differentiate."""
        if type(self).rhs is Dynamics.rhs:
            raise NotImplementedError(f"dynamics {self.name!r} has no time evolution to simulate")
        x0 = np.asarray(x0, dtype=float)
        t = np.asarray(t, dtype=float)
        if u is not None:
            u = np.asarray(u, dtype=float)
            if u.shape[:-1] != (len(t),) + x0.shape[:-1]:
                raise ConfigError(f"{self.name}: u must have shape {(len(t),) + x0.shape[:-1]} + (inputs,), got {u.shape}")
            u = u.reshape((len(t), -1, u.shape[-1]))
        x = self.state().trajectory(x0.reshape((-1, x0.shape[-1])), t, u)
        return np.asarray(x).reshape((len(t),) + x0.shape)

    def fixed_points(self, starts, u=None, **settings) -> FixedPoints:
        """The fixed and slow points of its vector field (with constant input u (m,) or None) reached
        from the states `starts` (n, dim): tcnet.fixedpoints.find, whose keywords `settings` takes."""
        field, params = self.vector_field(self.params(self.vector()))
        return find(field, params, starts, None if u is None else np.asarray(u, dtype=float), **settings)

    def readout(self, x):
        """The readouts (..., outputs) of states x (..., dim); None for a dynamics without one."""
        return None

    def sample_initial(self, n: int, seed=0) -> np.ndarray:
        """n random initial states, shape (n, dim), drawn from the model's reference distribution."""
        raise NotImplementedError(f"dynamics {self.name!r} has no time evolution to simulate")

    def time_scales(self) -> tuple[float, float] | None:
        """(slowest e-folding time, time constant) of this network in its time unit: the e-folding time
        of its slowest mode (inf where a mode does not decay) and its units' own time constant; None
        where the dynamics does not know them. `tcnet simulate` sizes its default duration from them."""
        return None

    def summary(self) -> dict:
        """Scalar facts about this network (name -> float) for listings and comparisons."""
        return {}

    def trajectory_metrics(self, t, x) -> dict:
        """Numbers of each simulated trajectory (column header -> array of shape (n,)) for
        trajectories x of shape (len(t), n, dim) from `simulate`; none by default."""
        return {}

    def __repr__(self):
        shapes = ", ".join(f"{k}{a.shape}" for k, a in {**self.arrays, **self.data}.items())
        return f"<{type(self).__name__} {self.name!r} {shapes} config={self.config}>"
