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
# # A rate network trained on its simulated trajectories
#
# A nonlinear rate network, tau dx/dt = -x + J tanh(x) + B u(t) + b with readout y = W tanh(x),
# learns to produce a readout motif from a preparatory state: a brief input pulse sets the state,
# the readout must then follow a target curve, and return to zero. The loss is on the simulated
# trajectory itself (`readout`, plus a little `energy`); its gradient is the exact discrete
# adjoint of the RK4 scheme (`tcnet.integrate`). We save the network, reload it, simulate new
# conditions and look at the spectrum of its linearization. `TCNET_FAST=1` runs a small version.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import tcnet
from tcnet.store import RunWriter
from tcnet.task import Task
from tcnet_plugins.rnn.tasks import motif

FAST = os.environ.get("TCNET_FAST") == "1"  # small network, few steps (the test suite's run)
N, ITERATIONS = (20, 60) if FAST else (50, 300)
OUT = Path("out/trained_rate_network")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The task
#
# Two conditions, one input each: a 20 ms pulse, then a 120 ms motif to produce (one and two
# cycles of a windowed sine), then silence. The pulse itself is masked out of the error. A task
# is a file of arrays t, u (conditions x time x inputs), target (conditions x time x outputs) and
# an optional mask (docs/SPEC.md).

# %%
task = motif(conditions=2)
task.save(OUT / "motif.npz")
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for c, ax in enumerate(axes):
    ax.plot(task.t, task.u[c], lw=1, label=["input 0", "input 1"])
    ax.plot(task.t, task.target[c, :, 0], "k", label="target")
    ax.set_title(f"condition {c}")
    ax.set_xlabel("t (s)")
axes[0].legend()
plt.show()

# %% [markdown]
# ## Training
#
# The same run spec `tcnet run` reads from a TOML file (docs/SPEC.md); the run goes to an HDF5 file.

# %%
path = OUT / "runs.h5"
path.unlink(missing_ok=True)  # this notebook's own output: start afresh on every run
spec = {"dynamics": {"name": "rate_network", "seed": 0, "N": N, "g": 1.2, "task": str(OUT / "motif.npz")},
        "loss": [{"name": "readout"}, {"name": "energy", "of": "rate", "weight": 1e-3}],
        "optimizer": {"name": "lbfgs", "max_iter": ITERATIONS}}
result = tcnet.run(spec, recorders=[RunWriter(path, "trained")])
result.result.status, result.final.summary()

# %% [markdown]
# ## Reloaded, simulated on its task
#
# The stored network holds its task as data: `simulate_task` re-simulates its conditions and
# returns the states x (time, condition, unit), the readout y and the target (time, condition,
# output) as a labelled xarray Dataset.

# %%
f = tcnet.open(path)
net = f.network("trained")
ds = f.simulate_task("trained")
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for c, ax in enumerate(axes):
    ds["target"].sel(condition=c, output=0).plot(ax=ax, color="k", label="target")
    ds["y"].sel(condition=c, output=0).plot(ax=ax, color="C3", ls="--", label="readout")
    ax.set_title(f"condition {c}")
axes[0].legend()
plt.show()
print(f"readout error: {net.summary()['readout_error']:.2%} of the target's variance")

# %% [markdown]
# ## New conditions
#
# Weaker and stronger pulses, and a mixture of the two inputs: a task file with new inputs (its
# targets are only for comparison), simulated by the reloaded network. From the shell:
# `tcnet simulate runs.h5 trained --inputs new.npz`.

# %%
scales = [0.5, 1.5]
u = np.concatenate([task.u * s for s in scales] + [0.5 * (task.u[:1] + task.u[1:])])
target = np.concatenate([task.target] * len(scales) + [np.zeros_like(task.target[:1])])
new = Task(task.t, u, target)
new_ds = f.simulate_task("trained", new)
fig, ax = plt.subplots(figsize=(6, 3))
names = [f"cond {c % 2} x {s}" for s in scales for c in range(2)] + ["mixture"]
for c, name in enumerate(names):
    new_ds["y"].sel(condition=c, output=0).plot(ax=ax, label=name)
ax.set_title("readouts of new conditions")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# ## The spectrum of the linearization
#
# At rest (x0) and at the preparatory state the pulse leaves (the end of the pulse), the Jacobian
# (-I + J diag(phi'(x)))/tau: trained networks keep their eigenvalues left of 0 at rest (activity
# decays after the motif), while the preparatory state sits where the dynamics unfold the motif.

# %%
end = int(np.searchsorted(task.t, 0.02))
fig, ax = plt.subplots(figsize=(5, 4))
for label, x in (("at rest", net.arrays["x0"]), ("end of pulse, condition 0", ds["x"].values[end, 0]),
                 ("end of pulse, condition 1", ds["x"].values[end, 1])):
    lam = np.linalg.eigvals(net.linearization(x))
    ax.scatter(lam.real, lam.imag, s=10, label=label)
ax.axvline(0, color="k", lw=0.5)
ax.set_xlabel("Re lambda (1/s)")
ax.set_ylabel("Im lambda (1/s)")
ax.legend(fontsize=7)
plt.show()
