"""Losses `decay` (L1) and `stability` (L2) of the preparatory-network study.

L1 is the mean integrated squared activity (1/(N tau)) E int ||x(t)||^2 dt for x0 ~ N(0, I); L2 is
sum_i max(Re gamma_i, 0)^2, gamma the eigenvalues of A = (J - I)/tau. The state computes both from
its one cached eigendecomposition (`LinearDecayState.decay`, `.stability`, see
`tcnet_plugins.preparatory.dynamics`); these plugins only weight them into an objective. With a
large weight (alpha = 1e5 in the published runs) L2 pushes every eigenvalue of J left of the line
Re(lambda) = 1. The third term, `smoothness` (L3), is the single-file plugin `plugins/smoothness.py`,
kept as the worked example of docs/PLUGINS.md.
"""
from tcnet import Loss


class Decay(Loss):
    """L1: mean integrated squared activity (1/(N tau)) E int ||x(t)||^2 dt, x0 ~ N(0, I)."""

    name = "decay"

    def __call__(self, state):
        return state.decay


class Stability(Loss):
    """L2 = sum_i max(Re gamma_i, 0)^2: zero exactly when the linear dynamics are stable."""

    name = "stability"

    def __call__(self, state):
        return state.stability
