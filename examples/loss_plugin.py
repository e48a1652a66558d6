# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A new loss, composed with the built-ins
#
# A preparatory network (`linear_decay`: tau dx/dt = -x + (J0 + U V) x, U V of rank n) is
# optimized so that its activity decays fast (L1, `decay`), stays stable (L2, `stability`) and
# gives a smooth readout (L3, `smoothness`). Here we add a fourth term of our own, written as a
# plugin in one cell, and see what it does to the spectrum of J.
#
# `TCNET_FAST=1` makes it small and quick (the test suite runs it so).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import tcnet
from tcnet.plugins import registry
from tcnet.store import RunWriter

FAST = os.environ.get("TCNET_FAST") == "1"  # small network, few steps (the test suite's run)
N, ADAM, LBFGS = (40, 10, 30) if FAST else (100, 30, 200)
OUT = Path("out/loss_plugin")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The plugin
#
# A loss reads the *state* of the network: a cached bundle of quantities that every term shares
# (for `linear_decay`: J, its eigenvalues `lam` and eigenvectors `R`, `gamma = (lam - 1)/tau`,
# ...), computed once per evaluation and differentiated by autograd (through tcnet's own
# eigendecomposition primitive). Our term penalizes oscillatory modes: the mean squared imaginary
# part of the eigenvalues of J. It depends on eigenvalues only, so its gradient through `eig` is
# well defined.
#
# The cell writes the plugin to a file, the way `tcnet --plugin oscillation.py ...` loads it too.

# %%
# %%writefile out/loss_plugin/oscillation.py
"""Loss `oscillation`: mean squared imaginary part of the eigenvalues of J (linear_decay)."""
import autograd.numpy as anp

from tcnet import Loss, hookimpl


class Oscillation(Loss):
    """(1/N) sum_i (Im lambda_i)^2 over the eigenvalues lambda of J."""

    name = "oscillation"

    def __call__(self, state):
        return anp.mean(anp.imag(state.lam) ** 2)


@hookimpl
def tcnet_losses():
    return [Oscillation]


# %%
plugins = registry([OUT / "oscillation.py"])  # the installed plugins plus this file
print(plugins.entries["loss"]["oscillation"].source)

# %% [markdown]
# ## Two runs from the same network
#
# The published objective L1 + 1e5 L2 + 0.01 L3, and the same plus our term with weight 1. Both
# start from the same random network (seed 0) and use the published recipe: Adam, then L-BFGS.
# Each run is recorded in one HDF5 file.

# %%
runs = OUT / "runs.h5"
runs.unlink(missing_ok=True)  # this notebook's own output: start afresh on every run
builtin = [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}]
for extra in ([], [{"name": "oscillation", "weight": 1.0}]):
    spec = {"dynamics": {"name": "linear_decay", "seed": 0, "N": N, "n_frac": 0.2},
            "loss": builtin + extra,
            "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": ADAM, "lr": 0.01},
                                                       {"name": "lbfgs", "max_iter": LBFGS}]}}
    out = tcnet.run(spec, recorders=[RunWriter(runs)], plugins=plugins)
    print(out.result.status, out.result.message)

# %% [markdown]
# ## The runs as a table
#
# `tcnet.open` reads the file as pandas tables: one row per run with the settings that differ,
# the final loss and the final (unweighted) value of every term, and the final network's summary.
# A term a run did not have is missing (NaN).

# %%
f = tcnet.open(runs, plugins=plugins)
f.runs.set_index("run").filter(regex="^(loss$|terms/|summary/t_|steps$)").T

# %% [markdown]
# Learning curves, from each run's history (a DataFrame indexed by step, with the stage names):

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for run_id in f.run_ids:
    h = f.history(run_id)
    for stage, part in h.groupby("stage_name", sort=False):
        ax.semilogy(part.index, part["loss"], label=f"{run_id} ({stage})")
ax.set_xlabel("step")
ax.set_ylabel("loss")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Spectra
#
# Eigenvalues of J before and after. The dashed line Re(lambda) = 1 is the stability edge
# (gamma = (lambda - 1)/tau = 0). With the new term the optimizer trades some of L1 for modes
# closer to the real axis.

# %%
nets = {"initial": f.network("run-0001/initial"), "published objective": f.network("run-0001"),
        "+ oscillation": f.network("run-0002")}
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), sharex=True, sharey=True)
for ax, (name, net) in zip(axes, nets.items()):
    lam = np.linalg.eigvals(net.state().J)
    ax.scatter(lam.real, lam.imag, s=8)
    ax.axvline(1.0, ls="--", c="k", lw=0.8)
    ax.set_title(f"{name}\nmean Im(lambda)^2 = {np.mean(lam.imag ** 2):.3f}", fontsize=9)
    ax.set_xlabel("Re lambda")
axes[0].set_ylabel("Im lambda")
plt.show()
