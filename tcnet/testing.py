"""Tools for plugin authors: check a loss's gradient against central finite differences.

    from tcnet.testing import check_gradient
    report = check_gradient({"dynamics": {"name": "linear_decay", "N": 20},
                             "loss": [{"name": "wiring"}]}, plugins=registry(["wiring.py"]))
    assert report.ok, report

At a few random points around the network's own parameters, for every term of the objective
(unweighted, alone) and every trainable parameter array, the autograd gradient projected on a
random direction in that array is compared with the central difference
(f(theta + h d) - f(theta - h d)) / 2h. A wrong vector-Jacobian product, a `numpy` call where
`autograd.numpy` was needed (a gradient silently zero), or a term that is not smooth shows up as a
row naming the point, the term and the array.
"""
from dataclasses import dataclass

import numpy as np

from tcnet.loss import Objective, Term
from tcnet.plugins import Registry, registry as default_registry
from tcnet.validate import ConfigError, integer, positive

EPS = np.finfo(float).eps


@dataclass(frozen=True)
class GradientRow:
    """One comparison: the directional derivative of one term along a random direction within one
    parameter array, by autograd (`analytic`) and by central differences (`numeric`). `noise` is
    the round-off floor of the difference quotient (a few ulps of the term's value over h)."""

    point: int
    term: str
    array: str
    analytic: float
    numeric: float
    noise: float
    rtol: float

    @property
    def error(self) -> float:
        """|analytic - numeric| relative to the larger of the two (0 where both are 0)."""
        scale = max(abs(self.analytic), abs(self.numeric))
        return 0.0 if scale == 0 else abs(self.analytic - self.numeric) / scale

    @property
    def ok(self) -> bool:
        diff = abs(self.analytic - self.numeric)
        return bool(np.isfinite(diff) and diff <= self.rtol * max(abs(self.analytic), abs(self.numeric)) + self.noise)


@dataclass(frozen=True)
class GradientReport:
    """Every comparison of `check_gradient`; `ok` when all agree. Printed, a table of them."""

    rows: tuple

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list:
        return [r for r in self.rows if not r.ok]

    def __str__(self):
        head = f"gradient check: {len(self.rows) - len(self.failures)} of {len(self.rows)} agree"
        lines = [head, f"{'point':>5}  {'term':<16} {'array':<10} {'autograd':>13} {'differences':>13} {'rel.err':>9}"]
        for r in self.rows:
            lines.append(f"{r.point:>5}  {r.term:<16} {r.array:<10} {r.analytic:>13.6g} {r.numeric:>13.6g} "
                         f"{r.error:>9.2g}{'' if r.ok else '  WRONG'}")
        return "\n".join(lines)


def objective_of(spec: dict, plugins: Registry | None = None) -> Objective:
    """The Objective of a run spec's `dynamics` and `loss` entries (the optimizer is not needed)."""
    from tcnet.spec import build_dynamics, build_objective

    if not isinstance(spec, dict) or "dynamics" not in spec or "loss" not in spec:
        raise ConfigError("check_gradient: give an Objective or a dict with 'dynamics' and 'loss' entries")
    plugins = plugins or default_registry()
    return build_objective(build_dynamics(spec["dynamics"], plugins), list(spec["loss"]), plugins)


def check_gradient(target, *, plugins: Registry | None = None, points: int = 3, scale: float = 0.1,
                   h: float = 1e-6, rtol: float = 1e-5, seed: int = 0, inputs: dict | None = None) -> GradientReport:
    """Compare autograd's gradient of every term of `target` (an Objective, or a run spec dict
    with 'dynamics' and 'loss', built with `plugins`) with central differences.

    Point 0 is the network's own parameters; each further point adds to every trainable array
    Gaussian noise of `scale` times that array's root mean square (or `scale` where it is 0). Each
    term is evaluated alone with weight 1; along a random unit direction within each trainable
    array, the step is h times max(1, the array's rms). A row agrees where
    |autograd - differences| <= rtol max(|autograd|, |differences|) + the round-off floor
    100 eps |value| / step. `inputs`: run-time inputs the terms take (a multiplier, say)."""
    integer("check_gradient", "points", points, low=1)
    positive("check_gradient", "h", h)
    positive("check_gradient", "rtol", rtol)
    objective = target if isinstance(target, Objective) else objective_of(target, plugins)
    dyn = objective.dynamics
    rng = np.random.default_rng(seed)
    slices, start = {}, 0
    for k in dyn.trainable:
        slices[k] = slice(start, start + dyn.arrays[k].size)
        start += dyn.arrays[k].size
    theta0 = dyn.vector()
    rms = {k: float(np.sqrt(np.mean(theta0[s] ** 2))) if theta0[s].size else 0.0 for k, s in slices.items()}
    singles = [Objective(dyn, [Term(t.loss, 1.0, t.label)]) for t in objective.terms]
    rows = []
    for p in range(points):
        theta = theta0.copy()
        if p:
            for k, s in slices.items():
                theta[s] += scale * (rms[k] or 1.0) * rng.standard_normal(s.stop - s.start)
        for single in singles:
            ev = single.evaluate(theta, inputs)
            for k, s in slices.items():
                d = np.zeros_like(theta)
                d[s] = rng.standard_normal(s.stop - s.start)
                d /= np.linalg.norm(d)
                step = h * max(1.0, rms[k])
                up = single.evaluate(theta + step * d, inputs, gradient=False).value
                down = single.evaluate(theta - step * d, inputs, gradient=False).value
                noise = 100 * EPS * max(abs(up), abs(down), abs(ev.value)) / step
                rows.append(GradientRow(p, single.labels[0], k, float(ev.grad @ d), (up - down) / (2 * step),
                                        noise, rtol))
    return GradientReport(tuple(rows))
