"""SIMPL (George et al., ICLR 2025; seeds/simpl_and_matrix_derivatives.md): latent trajectories and
tuning curves from spike counts by EM.

- `estimator`: `SIMPL`, the scikit-learn-shaped entry point for arrays, and `fit` for a file or
  the synthetic benchmark;
- `core`: the `simpl_latent` dynamics, the `simpl_nll` loss, the `simpl` optimizer (EM);
- `inputs`: checks of counts, behaviour and time; `files`: .npz, HDF5 and NWB recordings;
- `space`: line, plane and circle; `data`: the synthetic benchmarks (grid cells, linear track,
  head direction); `estep`: likelihood maps and random-walk smoothing; `mstep`: KDE tuning curves;
  `metrics`: validation mask, alignment, per-iteration metrics;
- `figures`; `cli`: `tcnet simpl generate`, `tcnet simpl fit`.
"""
from tcnet import hookimpl
from tcnet_plugins.simpl.core import Simpl, SimplLatent, SimplNLL
from tcnet_plugins.simpl.estimator import SIMPL, fit


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
