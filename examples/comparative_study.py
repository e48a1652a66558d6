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
# # A comparative study: decay time against the rank fraction n/N
#
# How fast can a preparatory network's activity decay, as a function of the rank n of its
# trained part U V? A study runs one optimization per grid point and repeat, in parallel, into one
# HDF5 file; `tcnet.open` then gives the runs as a DataFrame, repeats pooled, ready to plot with
# error bars.
#
# Shipped as the study file `data/studies/preparatory_small.toml` (N = 100, 200; n/N = 0.03 ...
# 0.5; 3 repeats: 30 runs, a few minutes on 2 cores). `TCNET_FAST=1` runs a small version.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt

import tcnet
from tcnet.study import Study

FAST = os.environ.get("TCNET_FAST") == "1"  # small networks, few steps (the test suite's run)
OUT = Path("out/comparative_study")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The study file
#
# A base run spec (dynamics, loss terms, optimizer), a grid of dotted keys, and repeats. The base
# spec here is the published recipe, included from its one file (`[study] base`, a run spec file);
# keys of `[base]` in the study override it. Every run's seed derives from the study seed and the
# run's grid point, so the study is reproducible run by run, whichever worker runs it. The same
# file runs from the shell with `tcnet study FILE --workers 2 -o FILE.h5` (and resumes there if
# interrupted).

# %%
from tcnet_plugins.preparatory.cli import RECIPE  # noqa: E402 (the recipe's path, beside the plugin)

sizes, fractions, repeats = ([20, 30], [0.1, 0.3], 2) if FAST else ([100, 200], [0.03, 0.1, 0.2, 0.3, 0.5], 3)
fast = """
[base.optimizer]
stages = [{ name = "adam", steps = 5, lr = 0.01 }, { name = "lbfgs", max_iter = 15 }]
""" if FAST else ""
study_file = OUT / "study.toml"
study_file.write_text(f"""
[study]
name = "rank_sweep"
seed = 2017
repeats = {repeats}
base = "{RECIPE}"
{fast}
[grid]
"dynamics.N" = {sizes}
"dynamics.n_frac" = {fractions}
""")
study = Study.from_toml(study_file)
print(len(study.runs()), "runs")

# %% [markdown]
# ## Running it
#
# Two local worker processes; only this process writes the file. Running the cell again skips
# the runs the file already holds.

# %%
runs = OUT / ("rank_sweep_fast.h5" if FAST else "rank_sweep.h5")  # a study file per study
report = study.run(runs, workers=2)
print(report)

# %% [markdown]
# ## Every run, and the repeats pooled
#
# `f.runs` is the table `tcnet compare --csv` prints: one row per run. `f.groups` pools the
# runs that differ only in their seed (`tcnet compare --group`): '<column>:mean', '<column>:std'
# and n (with the finished and failed among them) per setting of N and n/N. The column names are
# the same in every table: terms/<label>, summary/<key> (the final network's summary).

# %%
f = tcnet.open(runs)
f.runs[["dynamics.N", "dynamics.n_frac", "dynamics.seed", "status", "loss", "summary/t_1pct"]].head()

# %%
groups = f.groups
groups[["dynamics.N", "dynamics.n_frac", "n", "finished", "summary/t_1pct:mean", "summary/t_1pct:std"]]

# %% [markdown]
# ## Decay time against n/N, with error bars
#
# The labels and units come from the dynamics' own declaration (`LinearDecay.labels`), which the
# `tcnet plot-study` figures use as well.

# %%
labels = tcnet.registry().get("dynamics", "linear_decay").labels
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for N, g in groups.groupby("dynamics.N"):
    g = g.sort_values("dynamics.n_frac")
    ax.errorbar(g["dynamics.n_frac"], 1e3 * g["summary/t_1pct:mean"], yerr=1e3 * g["summary/t_1pct:std"],
                marker="o", capsize=3, label=f"N = {N}")
ax.set_xlabel(labels.of_config("n_frac"))
ax.set_ylabel(f"{labels.summary['t_1pct'].label} (ms)")
ax.set_title(f"mean ± std over {repeats} random networks per point", fontsize=10)
ax.legend()
plt.show()

# %% [markdown]
# The study's own summary view, indexed by the swept keys (what `tcnet study --summary --csv`
# writes), is `f.grid()`: the file keeps the study's definition, so no study file is needed. The
# same pooled numbers, under the same column names, for any plotting library.

# %%
f.grid()[["n", "finished", "failed", "loss:mean", "summary/t_1pct:mean", "summary/t_1pct:std"]]
