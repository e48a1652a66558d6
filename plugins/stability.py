"""Loss `stability` (L2 of the preparatory-network study): sum_i max(Re gamma_i, 0)^2.

gamma are the eigenvalues of A = (J - I)/tau. The state computes L2 from its cached
eigendecomposition (`state.stability`, see `tcnet_plugins.linear_decay.LinearDecayState`); this
plugin only weights it into an objective. With a large weight (alpha = 1e5 in the published runs)
it pushes every eigenvalue of J left of the line Re(lambda) = 1.
"""
from tcnet import Loss, hookimpl


class Stability(Loss):
    """L2 = sum_i max(Re gamma_i, 0)^2: zero exactly when the linear dynamics are stable."""

    name = "stability"

    def __call__(self, state):
        return state.stability


@hookimpl
def tcnet_losses():
    return [Stability]
