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
# # A saved network: load it, simulate it, plot its trajectories
#
# Every run stores its initial and final networks (dynamics name, configuration, seed and
# arrays), so a network optimized yesterday, or on a cluster, loads back ready to simulate.
# `tcnet.open(file).simulate(...)` returns the trajectories as an `xarray.DataArray` whose
# dimensions, coordinates and units come from the dynamics: plotting needs no bookkeeping.
# `TCNET_FAST=1` runs a small version.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import tcnet
from tcnet.store import RunWriter

FAST = os.environ.get("TCNET_FAST") == "1"  # small network, few steps (the test suite's run)
N, LBFGS = (40, 30) if FAST else (200, 200)
OUT = Path("out/saved_network")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A network to load
#
# One preparatory network, optimized with the published objective and recipe and recorded in
# `runs.h5` (from the shell: `tcnet train -N 200 -F 0.1 -b 0.01 -f runs.h5`). Any file written by
# tcnet works the same from here on.

# %%
path = OUT / "runs.h5"
path.unlink(missing_ok=True)  # this notebook's own output: start afresh on every run
spec = {"dynamics": {"name": "linear_decay", "seed": 1, "N": N, "n_frac": 0.1},
        "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}],
        "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": 30, "lr": 0.01},
                                                   {"name": "lbfgs", "max_iter": LBFGS}]}}
tcnet.run(spec, recorders=[RunWriter(path, "trained")]).result.status

# %% [markdown]
# ## Loading
#
# A run's networks are addressed as `<run>` (its final network), `<run>/initial`,
# `<run>/checkpoint`; networks saved by name (`tcnet.store.save_network`) by their name.

# %%
f = tcnet.open(path)
before, after = f.network("trained/initial"), f.network("trained")
after, after.summary()

# %% [markdown]
# ## Simulating
#
# `simulate(network, t, n, seed)` draws n initial states from the network's reference
# distribution (here x0 ~ N(0, I)) and returns x(t) as a DataArray with dims
# (time, trajectory, unit). The same seed gives the same initial states for both networks.

# %%
t = np.linspace(0.0, 0.15, 301)  # seconds: tau = 10 ms
x_before = f.simulate("trained/initial", t, n=16, seed=0)
x_after = f.simulate("trained", t, n=16, seed=0)
x_after

# %% [markdown]
# xarray labels the axes from the coordinates' `long_name` and `units`, which the dynamics
# declares: a few units of one trajectory, before and after optimization.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, (name, x) in zip(axes, [("initial", x_before), ("optimized", x_after)]):
    x.sel(trajectory=0).isel(unit=slice(0, 8)).plot.line(x="time", ax=ax, add_legend=False, lw=1)
    ax.set_title(f"{name} network, trajectory 0, 8 units", fontsize=10)
plt.show()

# %% [markdown]
# Reductions keep their labels: the norm |x(t)| over units, relative to its start, for every
# trajectory (thin) and the root mean square over trajectories (thick), which is the quantity the
# decay loss L1 integrates and whose 1 % crossing is the summary's `t_1pct` (dotted).

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
for name, x, color in [("initial", x_before, "C0"), ("optimized", x_after, "C1")]:
    norm = np.sqrt((x ** 2).sum("unit"))
    ratio = norm / norm.isel(time=0)
    ax.semilogy(t, ratio.values, color=color, lw=0.5, alpha=0.5)
    rms = np.sqrt((norm ** 2).mean("trajectory") / (norm.isel(time=0) ** 2).mean("trajectory"))
    ax.semilogy(t, rms.values, color=color, lw=2.5, label=name)
ax.axvline(after.summary()["t_1pct"], color="C1", ls=":")
ax.axhline(0.01, color="k", lw=0.5)
ax.set_xlabel(str(x_after["time"].attrs["long_name"]) + f" ({x_after['time'].attrs['units']})")
ax.set_ylabel("|x(t)| / |x(0)|")
ax.legend()
plt.show()

# %% [markdown]
# The readout y(t) = w . x(t), the signal the smoothness term L3 keeps smooth: `xr.dot` contracts
# the named dimension, whatever its position.

# %%
w = xr.DataArray(after.arrays["w"], dims="unit")
xr.dot(x_after, w, dim="unit").plot.line(x="time", add_legend=False, lw=1)
plt.title("readout of the optimized network, 16 trajectories", fontsize=10)
plt.show()

# %% [markdown]
# Trajectories written by the command line (`tcnet simulate FILE trained --out sim.h5`) load
# back the same way, bit for bit, with `tcnet.reader.load_trajectories("sim.h5")`.
