"""The optimizer `simpl`: SIMPL's EM as an update rule of tcnet's one iterative loop
(tcnet.optim.Iterative), which does the bookkeeping (evaluation, history, resume, statuses).

Each point is evaluated without a gradient (so the recorded grad_norm is NaN: there is none); the
`simpl_nll` term hands the M-step and the metrics over as side results; the history columns are
{train_ll, val_ll, bits_per_spike, and latent_error when the truth is known}; the step is one
E-step (estep.decode, over-relaxed by estep.overrelax where that raises the validation
log-likelihood) and the alignment to behaviour (metrics.align). Step 0 is the behaviour itself. It
stops after `steps` E-steps or at the first iterate whose validation log-likelihood rose by no more
than `tol`.
"""
import numpy as np

from tcnet import ConfigError
from tcnet.optim import Iterative
from tcnet.settings import Integer, Real, Settings

from tcnet_plugins.simpl.dynamics import ALL, BEHAVIOUR, SimplLatent, setting, space_default
from tcnet_plugins.simpl.estep import decode, overrelax, segment_prior
from tcnet_plugins.simpl.loss import SimplNLL
from tcnet_plugins.simpl.metrics import align


class SimplEM(Iterative):
    """SIMPL's EM iterations (docs/SIMPL.md) as an update rule of tcnet's one iterative loop: at each
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
        Real("speed", None, "random-walk speed scale of the latent (its variance per bin, speed^2 dt, must stay a "
             "normal float); " + space_default("speed", "{}/s"), low=1e-6, high=1e6, unit="m/s, or rad/s on the circle"),
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
        """The decoded latent (T, D), before the alignment: estep.decode of the training entries
        with the tuning curves (likelihood to the power beta) and the occupancy prior, near `latent`."""
        prior = segment_prior(dynamics.data["behaviour"], dynamics.space)
        return decode(dynamics.counts, ~dynamics.validation, fields, axes, log_prior, dynamics.dt, dynamics.space,
                      dynamics.starts, self.speed(dynamics), prior, reference=latent, beta=beta)

    def align(self, dynamics, mu) -> np.ndarray:
        """mu (T, D) aligned to behaviour by the polynomial of degree `align_degree` (0: as it is)."""
        degree = self.settings["align_degree"]
        if dynamics.space.angular and degree > 1:
            raise ConfigError(f"simpl: align_degree on the circle must be 0 or 1 (a rotation), got {degree}")
        if not degree:
            return mu
        return align(mu, dynamics.data["behaviour"], degree, dynamics.space.angular)[0]
