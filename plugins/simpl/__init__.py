"""SIMPL (George et al., ICLR 2025; seeds/simpl_and_matrix_derivatives.md): latent trajectories and
tuning curves from spike counts by EM.

- `core`: the `simpl_latent` dynamics, the `simpl_nll` loss, the `simpl` optimizer (EM) and `fit`;
- `data`: the synthetic grid-cell benchmark; `estep`: likelihood maps and Kalman smoothing;
  `mstep`: KDE tuning curves; `metrics`: validation mask, alignment, per-iteration metrics;
- `figures`; `cli`: `tcnet simpl generate`, `tcnet simpl fit`.
"""
from tcnet import hookimpl
from tcnet_plugins.simpl.core import Simpl, SimplLatent, SimplNLL, fit


@hookimpl
def tcnet_dynamics():
    return [SimplLatent]


@hookimpl
def tcnet_losses():
    return [SimplNLL]


@hookimpl
def tcnet_optimizers():
    return [Simpl]


@hookimpl
def tcnet_commands(subparsers):
    from tcnet_plugins.simpl.cli import add_command

    add_command(subparsers)
