"""Loss `smoothness` (L3 of the preparatory-network study): tau w^T R (M o G) R^H w.

It is tau E int_0^inf (w^T dx/dt)^2 dt over x0 ~ N(0, I): the energy of the readout's rate of
change, small when y = w^T x decays smoothly. The state computes it (`state.smoothness`, see
`tcnet_plugins.preparatory.dynamics.LinearDecayState`) from the shared eigendecomposition; this plugin
only weights it into an objective (beta = 0.01 in the published runs).
"""
from tcnet import Loss, hookimpl


class Smoothness(Loss):
    """L3 = tau Re w^T R (M o G) R^H w, G_ij = gamma_i conj(gamma_j) F_ij."""

    name = "smoothness"

    def __call__(self, state):
        return state.smoothness


@hookimpl
def tcnet_losses():
    return [Smoothness]
