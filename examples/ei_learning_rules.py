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
# # E/I homeostatic learning rules, side by side
#
# A two-population rate model (E and I) whose four weights W = (W_EE, W_EI, W_IE, W_II) learn
# by gradient descent on the homeostatic loss (E - E_set)^2/2 + (I - I_set)^2/2 at its
# quasi-steady state, and four approximations of that gradient that a synapse could compute
# locally (seeds/ei_learning_rule_from_loss.md). Each rule is an optimizer plugin, so a rule is
# one run spec, and the five runs are compared like any others (`tcnet ei-study` runs the
# comparative study of the rules across parameters, with its figures).
# `TCNET_FAST=1` runs a short version.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import tcnet
from tcnet.store import RunWriter

FAST = os.environ.get("TCNET_FAST") == "1"  # short step budgets (the test suite's run)
QSS_STEPS, TRIAL_STEPS = (200, 5) if FAST else (5000, 20000)
OUT = Path("out/ei_learning_rules")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The network of the original notebooks
#
# The "paradoxical" parameter set with its initial weights W = (5, 2, 10, 2). Its summary
# (declared by the `ei_rate` dynamics) gives the Up-state rates, stability, the paradoxical
# flag, and the weights W_EI, W_II that put the Up state at the set points (E_set, I_set) =
# (5, 14) for the given W_EE = 5, W_IE = 10; the published values are 15.2/14 and 21.5/14.

# %%
EIRate = tcnet.registry().get("dynamics", "ei_rate")
net = EIRate.create(preset="paradoxical")
s = net.summary()
print({k: round(v, 4) for k, v in s.items()})
print(f"W_EI_set = {s['W_EI_set']:.6f} (published 15.2/14 = {15.2 / 14:.6f}), "
      f"W_II_set = {s['W_II_set']:.6f} (published 21.5/14 = {21.5 / 14:.6f})")

# %% [markdown]
# ## Five rules, the same start
#
# In QSS mode each step uses the rates at the fixed point of the current weights. A run stops
# when both rates are within 1 % of their set points with a stable Up state (`rtol`), or at its
# step budget.

# %%
RULES = ["exact", "small_weight", "up_state", "cross_homeostatic", "homeostatic"]
path = OUT / "rules.h5"
path.unlink(missing_ok=True)  # this notebook's own output: start afresh on every run


def spec(rule, mode, steps):
    return {"dynamics": {"name": "ei_rate", "preset": "paradoxical"}, "loss": [{"name": "homeostatic"}],
            "optimizer": {"name": rule, "lr": 1e-3, "steps": steps, "mode": mode, "rtol": 0.01}}


for rule in RULES:
    tcnet.run(spec(rule, "qss", QSS_STEPS), recorders=[RunWriter(path, f"{rule}-qss")], progress=False)

# %% [markdown]
# The runs as one table (`tcnet compare` prints the same): which rules reach the set points, in
# how many steps, and the final network's Up state.

# %%
f = tcnet.open(path)
runs = f.runs.set_index("run")
runs[["optimizer.name", "steps", "loss", "summary/E_up", "summary/I_up", "summary/stable", "summary/paradoxical"]]

# %% [markdown]
# The rates along the way, from each run's history (the learning rules record E and I at every
# step as extra columns):

# %%
fig, axes = plt.subplots(1, len(RULES), figsize=(15, 3.2), sharey=True)
for ax, rule in zip(axes, RULES):
    h = f.history(f"{rule}-qss")
    ax.plot(h.index, h["extra/E"], label="E")
    ax.plot(h.index, h["extra/I"], label="I")
    for target in (net.p["E_set"], net.p["I_set"]):
        ax.axhline(target, color="k", lw=0.5, ls="--")
    ax.set_title(rule, fontsize=10)
    ax.set_xlabel("step")
axes[0].set_ylabel(f"QSS rate ({EIRate.labels.state.unit})")
axes[0].legend()
plt.show()

# %% [markdown]
# ## In simulated trials
#
# The rules that converge in QSS, applied to rates measured in simulated trials instead (a kick
# starts the Up state, 300 ms of rate dynamics, rates averaged over the last 100 ms). Slower:
# every step integrates the model.

# %%
trial_rules = ["cross_homeostatic"] if FAST else ["cross_homeostatic", "exact"]
for rule in trial_rules:
    out = tcnet.run(spec(rule, "trials", TRIAL_STEPS), recorders=[RunWriter(path, f"{rule}-trials")])
    print(rule, out.result.status, out.result.steps, "steps; final W =", np.round(out.result.x, 4))

# %% [markdown]
# ## The learned networks, simulated
#
# `simulate` gives labelled trajectories: dims (time, trajectory, population) with the
# populations E and I, time in ms and rates in Hz, as the dynamics declares. From random initial
# rates, the initial network and the one the cross-homeostatic rule learned:

# %%
t = np.linspace(0.0, 300.0, 601)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, name in zip(axes, ["cross_homeostatic-qss/initial", "cross_homeostatic-qss"]):
    x = f.simulate(name, t, n=6, seed=1)
    x.sel(population="E").plot.line(x="time", ax=ax, add_legend=False, color="C0", lw=1)
    x.sel(population="I").plot.line(x="time", ax=ax, add_legend=False, color="C3", lw=1)
    ax.set_title(f"{name}: E (blue), I (red)", fontsize=10)
plt.show()
