"""The rate nonlinearities phi of a rate network, each with its derivative written as a function
of phi(x) itself, so that the integrator's adjoint needs only the rates it kept per stage.

- tanh: phi = tanh x, phi' = 1 - phi^2;
- relu: phi = [x]_+, phi' = 1 where phi > 0;
- softplus: phi = log(1 + e^x), phi' = sigmoid(x) = 1 - e^-phi;
- linear: phi = x, phi' = 1;
- power: the threshold-power law phi = [x]_+^n (n >= 1, `exponent`), phi' = n phi^((n - 1)/n).
"""
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np

NAMES = ("tanh", "relu", "softplus", "linear", "power")


@dataclass(frozen=True)
class Nonlinearity:
    """phi (traceable), phi in numpy, and phi' as a function of phi."""

    name: str
    exponent: float = 2.0

    def __call__(self, x):
        """phi(x), traceable by autograd."""
        return self._apply(anp, x)

    def numpy(self, x):
        """phi(x) on plain arrays (the integrator's forward pass, without autograd's wrappers)."""
        return np.asarray(self._apply(np, x), dtype=float)

    def _apply(self, xp, x):
        """phi(x) with the array functions of module `xp` (numpy or autograd.numpy)."""
        if self.name == "tanh":
            return xp.tanh(x)
        if self.name == "relu":
            return xp.maximum(x, 0.0)
        if self.name == "softplus":
            return xp.logaddexp(0.0, x)
        if self.name == "power":
            return xp.maximum(x, 0.0) ** self.exponent
        return x

    def slope(self, r):
        """phi'(x) from r = phi(x)."""
        if self.name == "tanh":
            return 1.0 - r * r
        if self.name == "relu":
            return (r > 0).astype(float)
        if self.name == "softplus":
            return -np.expm1(-r)
        if self.name == "power":
            n = self.exponent
            return n * r ** ((n - 1.0) / n)
        return np.ones_like(r)
