"""SIMPL (George et al., ICLR 2025; seeds/simpl_and_matrix_derivatives.md): latent trajectories and
tuning curves from spike counts by EM, as a tcnet plugin, in numpy/scipy.

SIMPL starts from measured behaviour and alternates two steps: fit every neuron's tuning curve to
its spikes given the current latent, and the latent's occupancy density (M-step: Gaussian KDEs on a
grid), then decode the latent from the spikes given those curves (E-step: per-bin Poisson likelihood
maps times the occupancy, moment-matched to Gaussians, smoothed under a random-walk prior that
restarts at time gaps; in the first `anneal` E-steps the likelihood is tempered, raised to a power
rising to 1; from the second E-step on, the move's smooth part is over-relaxed where the validation
log-likelihood rises with it), and align the decoded latent to behaviour (affinely, as published; by
a rotation on the circle; or by a low-degree polynomial: `align_degree`). The latent is free to
leave behaviour where the population says so. Held-out (time, neuron) entries of a speckled
validation mask (blocks of `val_block` s, `val_fraction` of each neuron's time) are used by neither
step; their log-likelihood decides when to stop. The latent space is a line, the plane or the circle
(`tcnet_plugins.simpl.space`).

How it sits in tcnet (EM is not gradient descent, but its iterations are a run like any other): the
latent is the trainable array of the dynamics `simpl_latent`, whose state caches the M-step at one
latent; the loss `simpl_nll` reads the state; the optimizer `simpl` is the E-step as an update rule
of tcnet's one loop.

Modules, one idea each:

- `dynamics`: the `simpl_latent` dynamics (data, settings, `SPACE_DEFAULTS`, the validation split)
  and its state; `loss`: the `simpl_nll` loss; `optimizer`: the `simpl` optimizer (`SimplEM`: the
  EM loop's update rule and its settings);
- `estep`: likelihood maps, moments, random-walk smoothing, decoding, over-relaxation; `mstep`: KDE
  tuning curves, occupancy, the random walk's speed; both functions of data and latent;
- `estimator`: `SIMPL`, the scikit-learn-shaped entry point for arrays (it runs `SimplEM` on a
  `SimplLatent`), and `fit` for a file or the synthetic benchmark;
- `inputs`: checks of counts, behaviour and time; `files`: .npz, HDF5 and NWB recordings;
- `space`: line, plane and circle; `data`: the synthetic benchmarks (grid cells, linear track,
  head direction); `metrics`: validation mask, alignment, per-iteration metrics;
- `figures`; `cli`: `tcnet simpl generate`, `tcnet simpl fit` (docs/SIMPL.md).
"""
from tcnet import hookimpl
from tcnet_plugins.simpl.dynamics import SimplLatent
from tcnet_plugins.simpl.estimator import SIMPL, fit
from tcnet_plugins.simpl.loss import SimplNLL
from tcnet_plugins.simpl.optimizer import SimplEM


@hookimpl
def tcnet_dynamics():
    return [SimplLatent]


@hookimpl
def tcnet_losses():
    return [SimplNLL]


@hookimpl
def tcnet_optimizers():
    return [SimplEM]


@hookimpl
def tcnet_commands(subparsers):
    from tcnet_plugins.simpl.cli import add_command

    add_command(subparsers)
