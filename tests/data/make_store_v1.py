"""How tests/data/store_v1.h5 and traj_v1.h5 were written, by tcnet at commit 8217c3f (before
issue 13's renames and optimizer loop; this script runs only there, with its plugin layout):

    python make_store_v1.py store_v1.h5
    tcnet simulate store_v1.h5 prep --t-max 0.05 --dt 0.01 --n-init 3 --seed 1 --out traj_v1.h5

store_v1.h5 holds a saved network `prep`, a finished linear_decay run with the two-stage optimizer
under its old name "chain" (run-0001), the same run interrupted at step 5 in its Adam stage
(run-0002), and a finished lagrangian run on the toy Gaussian (run-0003). tests/test_store_v1.py
reads, compares, simulates and resumes it with today's code."""
import sys

import numpy as np

import tcnet
from tcnet.store import RunWriter, save_network

path = sys.argv[1]


class Interrupt:
    def __init__(self, at):
        self.at = at

    def start(self, spec, dynamics):
        pass

    def step(self, step):
        if step.step == self.at:
            raise KeyboardInterrupt

    def finish(self, result, final):
        pass


PREP = {"dynamics": {"name": "linear_decay", "seed": 3, "N": 10, "n_frac": 0.2},
        "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}],
        "optimizer": {"name": "chain", "stages": [{"name": "adam", "steps": 8, "lr": 0.01},
                                                  {"name": "lbfgs", "max_iter": 15}]}}
from tcnet_plugins.toy_gaussian import slides_methods, toy_spec  # noqa: E402

TOY = toy_spec({**slides_methods()["lagrangian"], "steps": 60, "tol": 0.0})

out = tcnet.run(PREP, recorders=[RunWriter(path, flush_steps=4)], progress=False)
try:
    tcnet.run(PREP, recorders=[RunWriter(path, flush_steps=4), Interrupt(5)], progress=False)
except KeyboardInterrupt:
    pass
tcnet.run(TOY, recorders=[RunWriter(path, flush_steps=25)], progress=False)
save_network(path, "prep", out.final)
print(tcnet.__version__, out.result.status, out.history.steps[-1].loss)
