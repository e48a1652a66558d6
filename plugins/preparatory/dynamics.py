"""Preparatory networks: tau dx/dt = -x + J x with a trainable low-rank part, J = J0 + U V.

The dynamics `linear_decay`, after the thalamocortical preparatory-network study (seeds/thalamocortical_readme.md). J0 (N x N,
entries N(0, 1/N)) and the readout w (N, entries N(0, 1/N)) are fixed; U (N x n) and V (n x N) are
trained, n = round(N n_frac).

Normalization (how U and V enter J). The published code optimizes the *raw* arrays U, V but
builds J from rescaled copies, so the loss is invariant to the scale of each column of U and each
row of V and only their directions are learned:

- ``raw_weights``: every column of U and every row of V is rescaled to norm sqrt(N) sigma with
  sigma = 1/sqrt(N), i.e. to unit norm (the raw weights have the size of J0's);
- ``perturbation_weights``: the same with sigma = (n N)^(-1/4), so that the entries of U V have
  variance about 1/N like those of J0;
- ``none``: only the columns of U are rescaled to unit norm; V is used as it is (U V has one scale
  degree of freedom per rank-one term, which this removes without constraining U V).

The rescaling is part of the forward model (`LinearDecayState.U`, `.V`), so gradients flow through
it. The same sigma sets the spread of the initial draws.

Initialisation. ``legacy`` reproduces the published notebooks bit for bit: numpy's legacy
generator seeded with the seed (``RandomState(seed)``, identical to ``np.random.seed(seed)``
without touching the global state) draws, in this order, J0 = randn(N, N)/sqrt(N),
V = randn(n, N) sigma, U = randn(N, n) sigma, w = randn(N)/sqrt(N). ``default`` draws the same
quantities in the same order from ``numpy.random.default_rng(seed)``.

The loss mathematics (DESIGN.md, "Mathematics to get exactly right") lives in one place, the
state: `LinearDecayState.decay`, `.stability` and `.smoothness` are L1, L2 and L3, computed from
one cached eigendecomposition; the loss plugins only read them, so another backend (e.g. an
eig-free Lyapunov state) can replace the state without touching the losses.
"""
from functools import cached_property

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from tcnet import ConfigError, Dynamics, State
from tcnet.integrate import VectorField
from tcnet.labels import Labels, Quantity
from tcnet.linalg import eig, real_eig
from tcnet.resources import FLOAT, require
from tcnet.settings import Choice, Integer, Real, Settings
from tcnet.validate import array
from tcnet_plugins.preparatory import backends as _backends
from tcnet_plugins.preparatory.analysis import crossing_time, decay_time

NORMALIZATIONS = ("raw_weights", "perturbation_weights", "none")
INITS = ("legacy", "default")
BACKENDS = ("eig",) + _backends.HAND_DERIVED
"""How the state computes L1..L3: "auto" (the default: "fused" unless an eigenvalue is nearly
repeated, then "lyapunov"), "fused" (hand-derived VJP in the real eigenbasis), "lyapunov"
(eig-free, real Schur), see tcnet_plugins.preparatory.backends, or "eig" (autograd through
tcnet.linalg.eig, the generic path). A config saved without the key (before the backends existed)
meant "eig" and still does (`LEGACY_BACKEND`), so an old stored run resumes on the path it was
computed with."""
LEGACY_BACKEND = "eig"


def rank(N, n_frac) -> int:
    """n = round(N n_frac), as in the published code."""
    return int(round(N * n_frac))


def memory(N, backend="auto") -> float:
    """Bytes a network of size N and one loss evaluation with its gradient hold: J0 and about 12
    N x N float64 arrays on the fused, lyapunov and auto paths, 45 on the generic eig path (the
    tracemalloc peaks of one evaluation at N = 200 and 400 are 11.3 and 44.5 such arrays)."""
    return (46 if backend == "eig" else 13) * 8.0 * float(N) ** 2


def sigma(N, n, normalization) -> float:
    """Scale of the entries of U and V: 1/sqrt(N), or (n N)^(-1/4) for perturbation weights."""
    return 1 / (n * N) ** 0.25 if normalization == "perturbation_weights" else 1 / np.sqrt(N)


@primitive
def rescaled(X, axis, scale):
    """X with every vector along `axis` (0: the columns, 1: the rows) rescaled to norm `scale`.

    One autograd primitive with its VJP rather than five traced operations: at N = 100 tracing
    the normalization cost as much as the loss's own arithmetic."""
    return X / np.sqrt(np.sum(X * X, axis=axis, keepdims=True)) * scale


def _rescaled_vjp(ans, X, axis, scale):
    """With s = sum of squares along the axis and u = X / sqrt(s), the cotangent of scale u is
    g -> scale (g - u sum(g u)) / sqrt(s), evaluated as the chain rule through X / sqrt(s) * scale
    (the same operations in the same order as autograd's trace of that expression, so the gradient
    is the traced formula's to the last bit, and stored runs reproduce exactly)."""

    def vjp(g):
        s = np.sum(X * X, axis=axis, keepdims=True)
        norm = np.sqrt(s)
        g = g * scale
        h = np.sum(-g * X / norm**2, axis=axis, keepdims=True) * 0.5 * s**-0.5
        return g / norm + X * h + X * h

    return vjp


defvjp(rescaled, _rescaled_vjp)


@primitive
def plus_product(A, U, V):
    """A + U V, one autograd primitive (VJPs g, g V^T, U^T g): J = J0 + U V traced as one node."""
    return A + U @ V


defvjp(plus_product, lambda ans, A, U, V: lambda g: g, lambda ans, A, U, V: lambda g: g @ V.T,
       lambda ans, A, U, V: lambda g: U.T @ g)


class LinearDecayState(State):
    """J, its eigendecomposition and L1..L3 at one parameter setting, each computed once.

    With J = R diag(lam) R^-1, gamma = (lam - 1)/tau, M = (R^H R)^-1 = R^-1 R^-H and
    K = M o (R^H R)^T, every quadratic form of the text reduces to sums over K:
    Tr(R (M o X) R^H) = sum_ij X_ij K_ij.
    """

    @cached_property
    def tau(self):
        return self.dynamics.config["tau"]

    @cached_property
    def U(self):
        """The effective U: columns rescaled to norm sqrt(N) sigma (unit norm under 'none')."""
        d = self.dynamics
        norm = 1.0 if d.config["normalization"] == "none" else np.sqrt(d.N) * d.sigma
        return rescaled(self.params["U"], 0, norm)

    @cached_property
    def V(self):
        """The effective V: rows rescaled to norm sqrt(N) sigma (V as it is under 'none')."""
        d = self.dynamics
        if d.config["normalization"] == "none":
            return self.params["V"]
        return rescaled(self.params["V"], 1, np.sqrt(d.N) * d.sigma)

    @cached_property
    def J(self):
        return plus_product(self.params["J0"], self.U, self.V)

    @cached_property
    def real_eig(self):
        """J's eigendecomposition in LAPACK's real form (`tcnet.linalg.real_eig`), computed once:
        the fused and auto paths read it, and `eig` follows from it on those paths."""
        return real_eig(getval(self.J))

    @cached_property
    def eig(self):
        """(lam, R): eigenvalues and unit-norm right eigenvectors of J (differentiable); on the
        fused and auto paths from the state's one `real_eig`, elsewhere numpy.linalg.eig's."""
        if self.dynamics.backend in ("fused", "auto"):
            return eig(self.J, self.real_eig)
        return eig(self.J)

    @property
    def lam(self):
        return self.eig[0]

    @property
    def R(self):
        return self.eig[1]

    @cached_property
    def gamma(self):
        """Eigenvalues of A = (J - I)/tau."""
        return (self.lam - 1.0) / self.tau

    @cached_property
    def R_inv(self):
        return anp.linalg.solve(self.R, anp.eye(self.dynamics.N))

    @cached_property
    def M(self):
        """M = (R^H R)^-1 = R^-1 R^-H (from a solve with R: better conditioned than inverting R^H R)."""
        return anp.dot(self.R_inv, anp.conj(self.R_inv).T)

    @cached_property
    def K(self):
        """K = M o (R^H R)^T, so that Tr(R (M o X) R^H) = sum(X o K)."""
        return self.M * anp.dot(self.R.T, anp.conj(self.R))

    @cached_property
    def F(self):
        """F_ij = -1/(gamma_i + conj(gamma_j)) = int_0^inf exp((gamma_i + conj(gamma_j)) t) dt."""
        return -1.0 / (self.gamma[:, None] + anp.conj(self.gamma)[None, :])

    @cached_property
    def backend(self):
        """The factorization behind L1..L3 (`_backends.factorize`), None on the generic "eig" path.
        The fused and auto paths read the state's own `eig`, so a loss that also reads the
        eigenvalues or eigenvectors shares that one eigendecomposition."""
        backend = self.dynamics.backend
        if backend == "eig":
            return None
        shared = None if backend == "lyapunov" else self.real_eig
        return _backends.factorize(self.J, self.params["w"], self.tau, backend, shared)

    @property
    def path(self) -> str:
        """How L1..L3 are computed here: "eig", "fused" or "lyapunov" ("auto" resolved)."""
        return "eig" if self.backend is None else self.backend.path

    @property
    def decay_diverges(self) -> bool:
        """Whether L1 is the closed form of a divergent integral: True where max Re gamma >= 0 (an
        eigenvalue of J with real part >= 1). int_0^inf |x(t)|^2 dt then diverges for almost every
        x0 (its mean is at least int_0^inf exp(2 t max Re gamma) dt), while the closed form stays
        finite and can be negative, so `decay` there is no decay value (nor, for a readout that
        sees the growing mode, is `smoothness`). Read off the eigenvalues the path computed for L2:
        gamma on the "eig" path, the factor's `abscissa` on the others."""
        if self.backend is None:
            return bool(np.max(np.real(getval(self.gamma))) >= 0)
        return self.backend.abscissa >= 0

    def columns(self) -> dict:
        """For the run history, so a saved run says per step how it was computed and what its L1
        means: `lyapunov_path` (1 where the Lyapunov path computed L1..L3, 0 where an
        eigendecomposition did) and `decay_diverges` (1 where L1 stands for a divergent integral,
        the property above); nothing where no term read L1..L3 (the path is then not chosen, and
        choosing it here would cost)."""
        if "backend" not in self.__dict__:
            return {}
        return {"lyapunov_path": float(self.path == "lyapunov"), "decay_diverges": float(self.decay_diverges)}

    @cached_property
    def backend_losses(self):
        """(L1, L2, L3) from the fast backend, None on the generic "eig" path; differentiated through
        the low-rank J0 + U V directly (`_backends.low_rank_losses`: no N x N gradient of J)."""
        if self.backend is None:
            return None
        return _backends.low_rank_losses(self.params["J0"], self.U, self.V, self.params["w"], self.backend)

    @cached_property
    def decay(self):
        """L1 = (1/(N tau)) Re Tr(R (M o F) R^H): mean integrated ||x(t)||^2 over x0 ~ N(0, I), per N tau,
        where every Re gamma < 0; elsewhere the finite closed form of a divergent integral
        (`decay_diverges`)."""
        if self.backend_losses is not None:
            return self.backend_losses[0]
        return anp.real(anp.sum(self.F * self.K)) / (self.dynamics.N * self.tau)

    @cached_property
    def stability(self):
        """L2 = sum_i max(Re gamma_i, 0)^2."""
        if self.backend_losses is not None:
            return self.backend_losses[1]
        return anp.sum(anp.maximum(anp.real(self.gamma), 0.0) ** 2)

    @cached_property
    def smoothness(self):
        """L3 = tau Re w^T R (M o G) R^H w with G_ij = gamma_i conj(gamma_j) F_ij."""
        if self.backend_losses is not None:
            return self.backend_losses[2]
        g = self.gamma
        G = g[:, None] * anp.conj(g)[None, :] * self.F
        u = anp.dot(self.params["w"], self.R)  # u = R^T w, so w^T R X R^H w = u X conj(u)
        return self.tau * anp.real(anp.dot(u, anp.dot(self.M * G, anp.conj(u))))

    def trajectory(self, x0, t, u=None):
        """The closed form x(t) = R exp(gamma t) R^-1 x0 for x0 (C, N): (len(t), C, N), traceable
        through the eig primitive (a gauge-invariant function of R, so its gradient is valid);
        the network has no inputs (u must be None)."""
        if u is not None:
            raise ConfigError(f"{self.dynamics.name}: the network has no inputs (u must be None)")
        c = anp.dot(self.R_inv, anp.transpose(x0))  # (N, C) coefficients in the eigenbasis
        x = anp.einsum("ik,tk,km->tmi", self.R, anp.exp(anp.outer(t, self.gamma)), c)
        return anp.real(x)


class LinearField(VectorField):
    """f(x) = (J x - x) / tau over (J,): the integrated form of what the state gives in closed form."""

    def __init__(self, tau):
        self.tau = tau

    def rhs(self, x, u, params):
        return (anp.dot(x, anp.transpose(params[0])) - x) / self.tau


class LinearDecay(Dynamics):
    """tau dx/dt = -x + (J0 + U V) x with trainable U, V (see the module docstring)."""

    name = "linear_decay"
    trainable = ("U", "V")
    labels = Labels(
        time=Quantity("t", "s"), state=Quantity("activity x"), axis="unit",
        config={"N": Quantity("N"), "n_frac": Quantity("n/N"), "tau": Quantity("tau", "s")},
        summary={"spectral_abscissa": Quantity("spectral abscissa of J"), "decay": Quantity("L1 (decay)"),
                 "stability": Quantity("L2 (stability)"), "smoothness": Quantity("L3 (smoothness)"),
                 "t_1pct": Quantity("decay time to 1 % of |x0|", "s"),
                 "t_5pct": Quantity("decay time to 5 % of |x0|", "s"),
                 "lyapunov_path": Quantity("L1..L3 computed by the Lyapunov path (1) or an eigendecomposition (0)"),
                 "decay_diverges": Quantity("L1 the closed form of a divergent integral (1: an eigenvalue of J "
                                            "with real part >= 1) or a decay value (0)")},
        headline=("t_1pct", "t_5pct"))

    SETTINGS = Settings(
        Integer("N", 100, "number of units", low=2),
        Real("n_frac", 0.1, "rank of U V as a fraction of N (n = round(N n_frac) >= 1)", low=0, high=1, low_open=True),
        Real("tau", 0.01, "time constant", low=0, low_open=True, unit="s"),
        Choice("normalization", "raw_weights", "how the columns of U and rows of V are rescaled in J (module doc)",
               options=NORMALIZATIONS),
        Choice("init", "legacy", "random draws: 'legacy' as the published notebooks (RandomState), 'default' "
               "numpy's default_rng", options=INITS),
        Choice("backend", "auto", "how L1..L3 and their gradient are computed: 'auto' (fused, or lyapunov "
               "where an eigenvalue is nearly repeated), 'fused' (one real eigendecomposition, hand-derived "
               "gradient), 'lyapunov' (eig-free, real Schur) or 'eig' (autograd through tcnet.linalg.eig)",
               options=BACKENDS),
    )

    def __init__(self, arrays, config=None, seed=None, *, data=None):
        config = dict(config or {})
        config.setdefault("backend", LEGACY_BACKEND)  # saved before the backends existed
        super().__init__(arrays, config, seed, data=data)

    @classmethod
    def relate(cls, settings):
        """The rank is at least 1, and a network of this size fits in memory (before it is drawn)."""
        cls.check_rank(settings)
        require(cls.name, f"N = {settings['N']}", memory(settings["N"], settings["backend"]))

    @classmethod
    def check_rank(cls, settings):
        n = rank(settings["N"], settings["n_frac"])
        if n < 1:
            raise ConfigError(f"{cls.name}: n_frac must give rank n = round(N n_frac) >= 1, got n = {n}")

    @classmethod
    def build(cls, seed, **config):
        N, n = config["N"], rank(config["N"], config["n_frac"])
        s = sigma(N, n, config["normalization"])
        if config["init"] == "legacy":
            randn = np.random.RandomState(seed).randn
        else:
            rng = np.random.default_rng(seed)
            randn = lambda *shape: rng.standard_normal(shape)  # noqa: E731
        J0 = randn(N, N) / np.sqrt(N)
        V = randn(n, N) * s
        U = randn(N, n) * s
        w = randn(N) / np.sqrt(N)
        return cls({"J0": J0, "U": U, "V": V, "w": w}, config, seed)

    @property
    def N(self) -> int:
        return self.config["N"]

    @property
    def n(self) -> int:
        return rank(self.config["N"], self.config["n_frac"])

    @property
    def sigma(self) -> float:
        return sigma(self.N, self.n, self.config["normalization"])

    @property
    def backend(self) -> str:
        return self.config["backend"]

    def check(self):
        self.check_rank(self.config)  # the memory check is for new networks (relate), not every copy
        N, n = self.N, self.n
        shapes = {"J0": (N, N), "U": (N, n), "V": (n, N), "w": (N,)}
        extra = sorted(set(self.arrays) - set(shapes))
        if extra:
            raise ConfigError(f"{self.name}: unknown array(s) {', '.join(extra)}; expected J0, U, V, w")
        for key, shape in shapes.items():
            if key not in self.arrays:
                raise ConfigError(f"{self.name}: missing parameter array {key}")
            array(self.name, key, self.arrays[key], shape)
        if np.any(np.linalg.norm(self.arrays["U"], axis=0) == 0):
            raise ConfigError(f"{self.name}: U must have no all-zero column (columns are normalized)")
        if self.config["normalization"] != "none" and np.any(np.linalg.norm(self.arrays["V"], axis=1) == 0):
            raise ConfigError(f"{self.name}: V must have no all-zero row (rows are normalized)")

    def make_state(self, params) -> LinearDecayState:
        return LinearDecayState(self, params)

    def vector_field(self, params):
        """f(x) = (J - I) x / tau over J (the state's, normalization included)."""
        return LinearField(self.config["tau"]), (LinearDecayState(self, params).J,)

    def rhs(self, x, u, params):
        field, p = self.vector_field(params)
        return field.rhs(x, u, p)

    # --- analysis on the current arrays (plain numpy) ------------------------------------------
    @cached_property
    def current(self) -> LinearDecayState:
        """The state of the current arrays, computed once (eigendecomposition, K, L1..L3)."""
        return self.state()

    def simulate(self, x0, t, u=None):
        """x(t) = expm(A t) x0 with A = (J - I)/tau, by the eigenbasis: the state's closed-form
        `trajectory` R exp(gamma t) R^-1 x0 (no inputs: u must be None)."""
        x0 = np.asarray(x0, dtype=float)
        if x0.shape[-1] != self.N:
            raise ConfigError(f"{self.name}: x0 must have last dimension N = {self.N}, got shape {x0.shape}")
        t = np.atleast_1d(np.asarray(t, dtype=float))
        m = int(np.prod(x0.shape[:-1]))  # exp(gamma t) (complex, len(t) x N), x complex and real
        require(self.name, f"simulate: {len(t)} time points x {m} initial states", (24.0 * m + 16) * len(t) * self.N)
        x = self.current.trajectory(x0.reshape(-1, self.N), t, u)
        return x.reshape((len(t),) + x0.shape)

    def time_scales(self):
        """(1 / -max Re gamma, tau): the slowest mode's e-folding time (inf where it does not decay,
        gamma = (lambda - 1) / tau) and tau."""
        rate = float(np.max(np.real(self.current.gamma)))
        return (-1.0 / rate if rate < 0 else float("inf")), float(self.config["tau"])

    def sample_initial(self, n, seed=0):
        """n initial states x0 ~ N(0, I), the distribution L1 averages over."""
        require(self.name, f"sample_initial: n = {n} initial states", FLOAT * float(n) * self.N)
        return np.random.default_rng(seed).standard_normal((n, self.N))

    def trajectory_metrics(self, t, x):
        """When each trajectory's norm first falls to 1/e and to 0.1 of its start (nan: not by t[-1])."""
        norms = np.linalg.norm(x, axis=-1)
        ratio = norms / norms[0]
        return {label: np.array([crossing_time(t, ratio[:, i], f) for i in range(ratio.shape[1])])
                for label, f in (("t(1/e)", np.exp(-1)), ("t(0.1)", 0.1))}

    def summary(self):
        """Spectral abscissa, L1..L3, decay times, how L1..L3 are computed at this network
        (`lyapunov_path` 1 where the Lyapunov (Schur) path computes them, 0 where an
        eigendecomposition does: which "auto" picks follows from the config and this network), and
        `decay_diverges` (1 where L1 is no decay value, see the state's), so that a table of final
        losses (`tcnet compare`, `tcnet show`) says which of them are not."""
        s = self.current
        out = {
            "spectral_abscissa": float(np.max(np.real(s.lam))),
            "decay": float(s.decay),
            "stability": float(s.stability),
            "smoothness": float(s.smoothness),
            "lyapunov_path": float(s.path == "lyapunov"),
            "decay_diverges": float(s.decay_diverges),
        }
        for f in (0.01, 0.05):
            out[f"t_{round(f * 100)}pct"] = decay_time(self, f)
        return out
