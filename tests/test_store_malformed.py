"""Malformed stores (issue 27, item 5): a file whose run spec, attributes, groups, declared dataset
sizes or checkpoint state break docs/FORMAT.md is refused by every command that reads it in one
line with exit status 2, naming what was expected, before anything is allocated or written; never
exit 70 ("internal error, report it"). Before: KeyError, TypeError, AttributeError, MemoryError
(74.5 GiB for a 100 kB file) and a LinAlgError after a resume had started writing.

`MALFORMED` is shared with the CLI property test (tests/test_cli_properties.py), which aims every
command at these files too."""
import hashlib
import json
import shutil

import h5py
import numpy as np
import pytest

import tcnet
from tcnet.cli import main
from tcnet.store import RunWriter


def _config(mutate):
    def edit(f):
        g = f["runs/run-0001"]
        spec = json.loads(g.attrs["config"])
        mutate(spec)
        g.attrs["config"] = np.bytes_(json.dumps(spec))
    return edit


def _interrupted(edit):
    """`edit`, on a run marked interrupted (so that `resume --all` takes it) of 10 steps (3 done)."""
    def both(f):
        g = f["runs/run-0001"]
        g.attrs["status"] = np.bytes_("interrupted")
        _config(lambda spec: spec["optimizer"].update(steps=10))(f)
        edit(f)
    return both


def _state(key, value):
    """Replace the committed checkpoint's optimizer-state entry `key` by `value` (same kind)."""
    def edit(f):
        g = f["runs/run-0001"]
        state = g[f"checkpoint/{int(g.attrs['checkpoint'])}/state"]
        kind = state[key].attrs["kind"]
        del state[key]
        state.create_dataset(key, data=value)
        state[key].attrs["kind"] = kind
    return _interrupted(edit)


def _runs_dataset(f):
    del f["runs"]
    f.create_dataset("runs", data=np.arange(3))


def _history_rows(f):
    """Every history column declares 1e10 rows (80 GB each) that were never written."""
    g = f["runs/run-0001"]
    def grow(group):
        for key in list(group):
            if isinstance(group[key], h5py.Group):
                grow(group[key])
                continue
            dtype = group[key].dtype
            del group[key]
            group.create_dataset(key, shape=(10**10,), maxshape=(None,), chunks=(1024,), dtype=dtype)
    grow(g["history"])
    g.attrs["rows"] = np.int64(10**10)


def _huge_network(f):
    """The final network's J0 declares 1e5 x 1e5 float64 (74.5 GiB), never written."""
    g = f["runs/run-0001/params/final"]
    del g["J0"]
    g.create_dataset("J0", shape=(10**5, 10**5), chunks=(100, 100), dtype="f8")


MALFORMED = {
    "no_optimizer.h5": _config(lambda spec: spec.pop("optimizer")),
    "loss_5.h5": _config(lambda spec: spec.update(loss=5)),
    "optimizer_str.h5": _config(lambda spec: spec.update(optimizer="adam")),
    "resumed_yes.h5": lambda f: f["runs/run-0001"].attrs.__setitem__("resumed_at", "yes"),
    "runs_dataset.h5": _runs_dataset,
    "rows_1e10.h5": _history_rows,
    "network_1e5.h5": _huge_network,
    "adam_m_shape.h5": _state("m", np.zeros(3)),
    "adam_t_negative.h5": _state("t", np.int64(-5)),
}
"""File name -> the edit that breaks a copy of a store with one finished Adam run (`make_malformed`)."""


def make_malformed(home) -> list:
    """Write a store with one finished 3-step Adam run and its malformed copies (MALFORMED) into
    `home`; returns the names of the copies."""
    spec = {"dynamics": {"name": "linear_decay", "N": 6, "seed": 1}, "loss": [{"name": "decay"}],
            "optimizer": {"name": "adam", "steps": 3}}
    good = home / "adam.h5"
    tcnet.run(spec, recorders=[RunWriter(good)], progress=False)
    for name, edit in MALFORMED.items():
        shutil.copy(good, home / name)
        with h5py.File(home / name, "a") as f:
            edit(f)
    good.unlink()
    return list(MALFORMED)


@pytest.fixture(scope="module")
def malformed(tmp_path_factory):
    home = tmp_path_factory.mktemp("malformed")
    make_malformed(home)
    return home


EXPECTED = {
    "no_optimizer.h5": "expected attribute 'config' to hold a run spec",
    "loss_5.h5": "'loss': 'int'",
    "optimizer_str.h5": "'optimizer': 'str'",
    "resumed_yes.h5": "expected attribute 'resumed_at' to be a 1-D array of integers >= 0, found 'yes'",
    "runs_dataset.h5": "expected a group 'runs', found a dataset",
    "rows_1e10.h5": "history/step declares shape (10000000000,) of int64 (80 GB) but holds 0 B of data",
    "network_1e5.h5": "params/final/J0 declares shape (100000, 100000) of float64 (80 GB) but holds 0 B",
    "adam_m_shape.h5": "cannot be resumed from its checkpoint (step 3): checkpoint: state m of 'adam' must be 12 "
                       "finite numbers",
    "adam_t_negative.h5": "checkpoint: state t must be an integer >= 0 (a count of updates), got -5",
}
COMMANDS = [["show"], ["compare"], ["simulate", "{}", "run-0001", "--t-max", "0.1"], ["resume", "--all", "--no-progress"]]


def _argv(command, name):
    if "{}" in command:
        return [w.replace("{}", name) for w in command]
    return [command[0], name, *command[1:]]


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_store_is_refused_in_one_line(name, malformed, capsys, monkeypatch):
    """Every reading command answers 2 and one line (the reason, where the command reads it), and
    the file is left as it was."""
    monkeypatch.chdir(malformed)
    before = hashlib.sha256((malformed / name).read_bytes()).hexdigest()
    reasons = []
    for command in COMMANDS:
        code = main(_argv(command, name))
        out, err = capsys.readouterr()
        if code == 0:  # a command that does not read the broken part (resume: no interrupted run)
            continue
        assert code == 2 and err.count("\n") == 1 and "internal error" not in err, (command, err)
        reasons.append(err)
    assert any(EXPECTED[name] in line for line in reasons), reasons
    assert hashlib.sha256((malformed / name).read_bytes()).hexdigest() == before
