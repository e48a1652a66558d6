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
# # SIMPL on a grid-cell data set
#
# SIMPL (George et al., ICLR 2025) recovers the latent variable a population encodes, here an
# animal's position, from spike counts: starting from the measured behaviour, it alternates
# fitting tuning curves (M-step, kernel density estimates) and decoding the latent from the
# spikes (E-step, random-walk smoothing of per-bin likelihoods). In tcnet the latent trajectory is
# a network's trainable array and EM is an optimizer, so a fit is a run like any other: recorded
# in a run store and read back with `tcnet.open`. A lab's own recordings (arrays, .npz, HDF5,
# NWB) go in the same way: docs/SIMPL.md.
#
# The data set is the synthetic grid-cell benchmark: 200 grid cells in three modules, one hour
# in a 1 m box, behaviour measured with slow smooth noise of mean 20 cm. The fit takes under two
# minutes on 2 cores. `TCNET_FAST=1` runs a small version (40 cells, 5 minutes, 3 iterations).

# %%
import os
import time
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np

import tcnet
from tcnet_plugins.simpl import SIMPL
from tcnet_plugins.simpl import data as simpl_data

FAST = os.environ.get("TCNET_FAST") == "1"  # a small data set and few iterations (the test suite's run)
CELLS, DURATION, ITERATIONS = (40, 300.0, 3) if FAST else (200, 3600.0, 10)
OUT = Path("out/simpl_gridcells")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The data set
#
# A recording file holds the spike counts (time bins x cells), the behaviour and the bin start
# times; this synthetic one also the true latent and true tuning curves (`tcnet simpl generate
# FILE` writes it). Plain h5py reads it.

# %%
data_file = OUT / "benchmark.h5"
simpl_data.save(data_file, simpl_data.generate(0, n_cells=CELLS, duration=DURATION), force=True)  # our own file
with h5py.File(data_file, "r") as f:
    counts, behaviour, t, truth = (f[k][()] for k in ("counts", "behaviour", "time", "truth"))
    true_fields, true_axes = f["fields"][()], (f["field_axis_0"][()], f["field_axis_1"][()])
print(f"{counts.shape[1]} cells, {counts.shape[0]} bins of {t[1] - t[0]:g} s, {int(counts.sum())} spikes")

# %% [markdown]
# ## The fit
#
# `SIMPL(...).fit(counts, behaviour, time)` runs the EM (`truth`, known here, adds the latent
# error per iteration). With the defaults each decoded latent is mapped to behaviour by the
# published affine map (`align_degree = 1`; > 1 a polynomial), the likelihood is annealed and the
# slow part of each E-step over-relaxed (docs/SIMPL.md, "Accuracy"); `store` records the fit as a
# run.

# %%
runs = OUT / "runs.h5"
runs.unlink(missing_ok=True)  # this notebook's own output: start afresh on every run
t0 = time.perf_counter()
model = SIMPL(iterations=ITERATIONS, store=runs, progress=True).fit(counts, behaviour, t, truth=truth)
print(f"{model.result_.result.status}: {model.result_.result.message}; fit took {time.perf_counter() - t0:.1f} s")

# %% [markdown]
# ## Per iteration
#
# The run's history: every EM iterate with its metrics (latent error against the truth, train
# and validation log-likelihood per spike, bits per spike), as the optimizer recorded them.

# %%
f = tcnet.open(runs)
h = f.history(model.run_id_).filter(regex="^(loss|extra/)")
h

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for ax, column in zip(axes, ["extra/latent_error", "extra/val_ll", "extra/bits_per_spike"]):
    ax.plot(h.index, h[column], marker="o")
    ax.set_xlabel("EM iteration")
    ax.set_title(column[6:] + (" (m)" if column == "extra/latent_error" else ""), fontsize=10)
plt.show()

# %% [markdown]
# ## The latent against the truth
#
# The first minute, both coordinates:

# %%
n = int(60 / (t[1] - t[0]))
fig, axes = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True)
for i, ax in enumerate(axes):
    ax.plot(t[:n], truth[:n, i], "k", lw=1.5, label="true")
    ax.plot(t[:n], behaviour[:n, i], color="tab:gray", lw=1, label="behaviour (start)")
    ax.plot(t[:n], model.latent_[:n, i], color="tab:red", lw=1, label="SIMPL latent")
    ax.set_ylabel(f"{'xy'[i]} (m)")
axes[0].legend(fontsize=8, loc="upper right")
axes[1].set_xlabel("time (s)")
plt.show()
print(f"mean error: behaviour {100 * np.linalg.norm(behaviour - truth, axis=1).mean():.2f} cm, "
      f"SIMPL {100 * np.linalg.norm(model.latent_ - truth, axis=1).mean():.2f} cm")

# %% [markdown]
# ## Tuning curves
#
# True fields, the fields fitted at the behaviour (iteration 0: the run's initial network, whose
# state fits them on demand) and at the fitted latent: the grid pattern sharpens as the latent
# improves.

# %%
start = f.network(f"{model.run_id_}/initial").state()
panels = [("true", true_fields, true_axes), ("iteration 0", start.fields, start.axes),
          ("fitted", model.fields_, model.axes_)]
cells = [0, 1, 2]
fig, axes = plt.subplots(len(cells), 3, figsize=(7.5, 2.4 * len(cells)))
for r, c in enumerate(cells):
    for ax, (title, fields, grid) in zip(axes[r], panels):
        ax.pcolormesh(grid[0], grid[1], fields[c].T, shading="auto", cmap="inferno")
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xticks=[], yticks=[])
        if r == 0:
            ax.set_title(title)
    axes[r, 0].set_ylabel(f"cell {c}")
plt.show()
