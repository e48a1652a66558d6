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
# # A four-population circuit learns its set points; fixed points of a trained rate network
#
# The E-PV-SST-VIP circuit of Garcia del Molino et al. 2017 (`ei_circuit`, preset
# `del_molino_high`) with its background inputs lowered leaves its baseline rates. The generic
# learning rule `loss_rule` (dW = -alpha dL/dW for any loss of the steady rates, the derivative
# through the implicit steady-state equations of `tcnet.steady`; docs/EI_CIRCUITS.md) brings it
# back to its set points. We look at its steady-state responses to small inputs before and after
# learning, the paradoxical and reversed ones marked. Then a small rate network is trained on a
# task and its fixed points are found and classified (`tcnet.fixedpoints`).
# `TCNET_FAST=1` runs a short version (fewer learning steps, a smaller network).

# %%
import os
from pathlib import Path

import numpy as np
from IPython.display import Image, display

import tcnet
from tcnet.reader import fixed_points_table
from tcnet.store import RunWriter
from tcnet_plugins.ei.circuit import EICircuit
from tcnet_plugins.ei.circuit_figures import learning_rates, plot_learning, plot_responses
from tcnet_plugins.ei.presets import PRESETS
from tcnet_plugins.rnn.figures import plot_fixed_points
from tcnet_plugins.rnn.tasks import motif

FAST = os.environ.get("TCNET_FAST") == "1"  # short runs (the test suite's run)
STEPS, N, ITERATIONS = (300, 20, 60) if FAST else (4000, 50, 300)
OUT = Path("out/ei_circuits")
OUT.mkdir(parents=True, exist_ok=True)
path = OUT / "runs.h5"
path.unlink(missing_ok=True)  # this notebook's own output: start afresh on every run

# %% [markdown]
# ## The circuit, its inputs lowered
#
# The published high-baseline circuit rests at (30, 50, 30, 20) Hz, its set points. With every
# background input 5% lower its steady rates drop (to about 23, 47, 17, 12 Hz).

# %%
POPULATIONS = PRESETS["del_molino_high"]["populations"]
SET_POINTS = PRESETS["del_molino_high"]["set_points"]
inputs = (0.95 * np.array(PRESETS["del_molino_high"]["input"])).tolist()
before = EICircuit.create(preset="del_molino_high", input=inputs)
print({k: round(v, 3) for k, v in before.summary().items()})

# %% [markdown]
# ## Learning the set points with the generic rule (QSS)
#
# Loss: sum_k (r_k - r_k^set)^2 / 2 over the four steady rates (`set_points`). Each step the
# rule follows the steady state of the current weights (Newton from the last one) and descends
# the loss's exact gradient through it; absent connections stay absent. The run stops once every
# rate is within 0.1% of its set point (about 2900 steps; the fast version stops after 300).

# %%
spec = {"dynamics": {"name": "ei_circuit", "preset": "del_molino_high", "input": inputs},
        "loss": [{"name": "set_points"}],
        "optimizer": {"name": "loss_rule", "lr": 1e-4, "steps": STEPS, "rtol": 1e-3}}
learned = tcnet.run(spec, recorders=[RunWriter(path, "set_points")])
after = learned.final
print(learned.result.status, {k: round(v, 3) for k, v in after.summary().items()})

# %%
rates = learning_rates(learned.history.steps, POPULATIONS)
display(Image(plot_learning(rates, POPULATIONS, SET_POINTS, OUT / "learning.png",
                            title=f"del_molino_high, inputs -5%: {learned.result.status} after {len(rates) - 1} steps")))

# %% [markdown]
# The rates alternate around their trend from one step to the next: with lr = 1e-4, plain
# gradient descent is near its stability limit along the stiffest direction of this
# ill-conditioned map (SST and VIP are each reached by two weights; above about lr = 3e-4 the run
# leaves its branch, docs/EI_CIRCUITS.md). The alternation decays as the rates approach their set
# points.

# %% [markdown]
# ## Steady-state responses before and after
#
# dr*/dh: how each steady rate (row) moves per unit of extra input to each population (column),
# -A^-1 F_u at the steady state. The low-baseline circuit is shown for comparison: there VIP
# input lowers SST (VIP inhibits SST), at high baseline it raises it, the response reversal of
# del Molino et al. Boxes mark the paradoxical entries (an inhibitory population whose own input
# lowers its own rate: SST here) and the reversed ones (against the direct connection's sign).

# %%
panels = [("del_molino_low (published)", EICircuit.create(preset="del_molino_low")),
          ("high, inputs -5%: before learning", before), ("after learning", after)]
display(Image(plot_responses(panels, POPULATIONS, OUT / "responses.png")))
for label, net in panels:
    print(f"{label:36s} dSST/dh_VIP = {net.state().response[2, 3]:+.4f}, paradoxical: "
          f"{[p for p, flag in zip(POPULATIONS, net.state().paradoxical) if flag]}")

# %% [markdown]
# ## Fixed points of a trained rate network
#
# A nonlinear rate network tau dx/dt = -x + J tanh(x) + B u(t) + b trained to produce a readout
# motif after an input pulse (as in `trained_rate_network.py`). Its fixed and slow points are
# searched from states along its own task trajectories (Sussillo & Barak 2013): minimize
# |F(x)|^2/2, polish by Newton, classify by the Jacobian's spectrum.

# %%
task = motif(conditions=2)
task.save(OUT / "motif.npz")
rnn_spec = {"dynamics": {"name": "rate_network", "seed": 0, "N": N, "g": 1.2, "task": str(OUT / "motif.npz")},
            "loss": [{"name": "readout"}, {"name": "energy", "of": "rate", "weight": 1e-3}],
            "optimizer": {"name": "lbfgs", "max_iter": ITERATIONS}}
trained = tcnet.run(rnn_spec, recorders=[RunWriter(path, "rate_network")])
net = tcnet.open(path).network("rate_network")
print(trained.result.status, {k: round(v, 4) for k, v in net.summary().items()})

# %%
with np.errstate(over="ignore"):  # BFGS's line search may try far-out states where cosh overflows
    points = net.fixed_points(net.trajectory_starts(64, seed=0, noise=0.1))
fixed_points_table(points)[["kind", "stable", "unstable", "q", "max_real_eigenvalue"]]

# %% [markdown]
# As shipped (N = 50, 300 iterations) the search finds three fixed points: two stable ones and a
# saddle between them with one unstable direction; the fast version's small network has one.
# Below, in the top two principal components of its task trajectories: filled stable, open
# unstable, red the unstable directions.

# %%
trajectories = np.asarray(net.state().x)  # (time, condition, unit) on its task
plot_fixed_points(trajectories, points, OUT / "fixed_points.png")
display(Image(OUT / "fixed_points.png"))
