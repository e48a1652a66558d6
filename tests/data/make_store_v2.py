"""How tests/data/store_v2.h5 was written, by tcnet at commit f348358 (format version 2, before a
dynamics held its data apart from its parameters: every array of a network is a float64 dataset,
and a run stores its network's data twice, in params/initial and params/final):

    python tests/data/make_store_v2.py tests/data/store_v2.h5

(run with that commit's tcnet and plugins first on the path, e.g. from `git archive f348358` with
PYTHONPATH set to it and tcnet_plugins linked to its plugins/).

store_v2.h5 holds a finished SIMPL fit on a small synthetic recording (run-0001: 10 grid cells over
80 s, at most 4 EM iterations), the same fit interrupted after its second iteration (run-0002), a finished
linear_decay run (run-0003), and the SIMPL fit's final network saved as `fit`.
tests/test_store_v2.py reads, compares, loads and resumes it with today's code."""
import sys

import tcnet
from tcnet.store import RunWriter, save_network

path = sys.argv[1]


class StoppedWriter(RunWriter):
    """A run writer that stops the run (KeyboardInterrupt) once it has recorded step `at`."""

    def __init__(self, path, at, **kwargs):
        super().__init__(path, **kwargs)
        self.at = at

    def step(self, step):
        super().step(step)
        if step.step == self.at:
            raise KeyboardInterrupt


SIMPL = {"dynamics": {"name": "simpl_latent", "seed": 1, "generator": {"n_cells": 10, "duration": 80.0},
                      "val_block": 5.0},
         "loss": [{"name": "simpl_nll"}], "optimizer": {"name": "simpl", "steps": 4}}
PREP = {"dynamics": {"name": "linear_decay", "seed": 3, "N": 8, "n_frac": 0.25},
        "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}],
        "optimizer": {"name": "adam", "steps": 6, "lr": 0.01}}

out = tcnet.run(SIMPL, recorders=[RunWriter(path, flush_steps=1)], progress=False)
try:
    tcnet.run(SIMPL, recorders=[StoppedWriter(path, 2, flush_steps=1)], progress=False)
except KeyboardInterrupt:
    pass
tcnet.run(PREP, recorders=[RunWriter(path, flush_steps=4)], progress=False)
save_network(path, "fit", out.final)
print(tcnet.__version__, out.result.status, out.history.steps[-1].loss)
