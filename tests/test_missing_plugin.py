"""A file opened without the plugin that wrote it says so once, naming the plugin file and what
cannot be shown, in Python and on the command line."""
import shutil
import warnings

import h5py

import numpy as np
import pytest

import tcnet
from tcnet.cli import main
from tcnet.plugins import Registry
from tcnet.store import MissingPluginWarning, RunWriter

PLUGIN = '''
import autograd.numpy as anp
import numpy as np

from tcnet import Dynamics, Loss, State, hookimpl
from tcnet.settings import Integer, Settings


class Vec(Dynamics):
    """x in R^n."""
    name = "vec"
    trainable = ("x",)
    SETTINGS = Settings(Integer("n", 3, "dimension", low=1))

    @classmethod
    def build(cls, seed, n):
        return cls({"x": np.random.default_rng(seed).normal(size=n)}, {"n": n}, seed)

    def make_state(self, params):
        return State(self, params)

    def summary(self):
        return {"norm": float(np.linalg.norm(self.arrays["x"]))}


class Square(Loss):
    name = "square"

    def __call__(self, state):
        return anp.sum(state.params["x"] ** 2)


@hookimpl
def tcnet_dynamics():
    return [Vec]


@hookimpl
def tcnet_losses():
    return [Square]
'''


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    where = tmp_path_factory.mktemp("missing")
    plugin = where / "vec_plugin.py"
    plugin.write_text(PLUGIN)
    out = where / "runs.h5"
    plugins = Registry(files=[plugin])
    for seed in (0, 1):
        tcnet.run({"dynamics": {"name": "vec", "seed": seed}, "loss": [{"name": "square"}],
                   "optimizer": {"name": "sgd", "steps": 3, "lr": 0.1}},
                  recorders=[RunWriter(out)], plugins=plugins, progress=False)
    return out, plugin, plugins


def message(out, plugin, stored=True):
    lost = ("their networks cannot be loaded or simulated (the summaries stored with them are shown)" if stored else
            "their summary/<key> columns are empty and their networks cannot be loaded or simulated")
    return (f"{out}: dynamics 'vec' of 2 run(s) is not registered (written with {plugin}): {lost}; load the plugin "
            "(tcnet --plugin FILE, or tcnet.open(path, plugins=tcnet.plugins.registry([FILE])))")


def test_tcnet_open_without_the_plugin_warns_once(written):
    """Written by this version: the stored summaries are shown, the networks cannot be."""
    out, plugin, _ = written
    f = tcnet.open(out)
    with pytest.warns(MissingPluginWarning) as caught:
        runs, groups = f.runs, f.groups
    assert [str(w.message) for w in caught] == [message(out, plugin)]
    assert len(runs) == 2 and "summary/norm" in runs.columns
    with pytest.raises(tcnet.store.StoreError, match="dynamics 'vec' is not registered"):
        f.network("run-0001")


def test_an_older_file_without_the_plugin_loses_its_summaries_and_says_so(written, tmp_path):
    out, plugin, _ = written
    old = tmp_path / "old.h5"
    shutil.copy(out, old)
    with h5py.File(old, "a") as h:  # as written before summaries were stored
        for run in h["runs"].values():
            del run.attrs["summary"], run.attrs["table"]
    with pytest.warns(MissingPluginWarning) as caught:
        runs = tcnet.open(old).runs
    assert [str(w.message) for w in caught] == [message(old, plugin, stored=False)]
    assert not [c for c in runs.columns if c.startswith("summary/")]


def test_with_the_plugin_there_is_no_warning_and_the_summary_is_shown(written):
    out, _, plugins = written
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingPluginWarning)
        runs = tcnet.open(out, plugins=plugins).runs
    final = [np.linalg.norm(tcnet.open(out, plugins=plugins).network(r).arrays["x"]) for r in runs["run"]]
    assert np.allclose(runs["summary/norm"], final, rtol=0, atol=0)


def test_compare_says_it_in_one_line(written, capsys):
    out, plugin, _ = written
    assert main(["compare", str(out)]) == 0
    assert capsys.readouterr().err == f"tcnet compare: warning: {message(out, plugin)}\n"
