"""Preparatory networks (seeds/thalamocortical_readme.md): tau dx/dt = -x + J x, J = J0 + U V.

- `dynamics`: the `linear_decay` model and its state (L1, L2, L3 from one eigendecomposition);
- `losses`: `decay` (L1) and `stability` (L2); `smoothness` (L3) is the single-file plugin
  `tcnet_plugins.smoothness`;
- `backends`: fused-eig and eig-free (Lyapunov) value-and-gradient of L1..L3;
- `analysis`: activity norm over time and decay times; `figures`; `cli`: `tcnet train`, `tcnet demo`.
"""
from tcnet import hookimpl
from tcnet_plugins.preparatory.dynamics import LinearDecay, LinearDecayState
from tcnet_plugins.preparatory.losses import Decay, Stability


@hookimpl
def tcnet_dynamics():
    return [LinearDecay]


@hookimpl
def tcnet_losses():
    return [Decay, Stability]


@hookimpl
def tcnet_commands(subparsers):
    from tcnet_plugins.preparatory.cli import add_commands

    add_commands(subparsers)
