"""Nonlinear rate networks trained on tasks through their simulated trajectories.

- `dynamics`: the `rate_network` model (tau dx/dt = -x + J phi(x) + B u + b, y = W phi(x)) with its
  analytic vector field for tcnet.integrate's discrete adjoint, holding its task as data;
- `nonlinearity`: phi (tanh, relu, softplus, linear, power) and its slope;
- `losses`: `readout`, `endpoint` and `energy` on the simulated task.
"""
from tcnet import hookimpl
from tcnet_plugins.rnn.dynamics import RateNetwork, RateState
from tcnet_plugins.rnn.losses import Endpoint, Energy, Readout

__all__ = ["Endpoint", "Energy", "RateNetwork", "RateState", "Readout"]


@hookimpl
def tcnet_dynamics():
    return [RateNetwork]


@hookimpl
def tcnet_losses():
    return [Readout, Endpoint, Energy]
