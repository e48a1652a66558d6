"""Sizes are checked before memory is touched: a request whose arrays the machine cannot hold is
refused in one line naming the flag (exit 2), before anything is allocated or written.

Before (today's main at the time of writing): `train -k 1000000000` and `basin-map --grid 100000`
grew memory until the process was killed, `train -N 100000000` and `simulate --dt 1e-12` ended in a
MemoryError (exit 70) or the kernel's OOM kill. Each command runs in a child process under a
memory limit (RLIMIT_AS) and a timeout, so that a failing check cannot take the machine down."""
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tcnet
from tcnet.resources import available_memory, deep_size, require
from tcnet.validate import ConfigError

LIMIT = 6 * 2**30  # bytes of address space a child may use: far below every refused estimate


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


# Runs each argv through tcnet's main in this child, in a fresh empty folder per argv; prints one
# JSON line per argv: [exit status, stderr, names of the files the command left]
DRIVER = """
import contextlib, io, json, os, sys, tempfile
from tcnet.cli import main
for argv in json.loads(sys.argv[1]):
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        print(json.dumps([code, err.getvalue(), sorted(os.listdir(folder))]), flush=True)
        os.chdir("/")
"""


def tcnet_children(argvs):
    """[(exit status, stderr, files left)] of the tcnet CLI on each argv, in one child process under
    RLIMIT_AS and a timeout."""
    out = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], capture_output=True, text=True,
                         timeout=300, preexec_fn=_limit_memory)
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == len(argvs), f"the child ended at argv {len(results)}: {out.stderr[-3000:]}"
    return results


@pytest.fixture(scope="module")
def network_file(tmp_path_factory):
    """A store with one small preparatory run (N = 20)."""
    import tcnet
    from tcnet.store import RunWriter
    from tcnet_plugins.preparatory.cli import recipe, run_spec
    path = tmp_path_factory.mktemp("sizes") / "net.h5"
    spec = run_spec({"name": "linear_decay", "seed": 0, "N": 20, "n_frac": 0.1}, alpha=1e5, beta=0.01,
                    optimizer=recipe(1, 0.01, 1))
    writer = RunWriter(path)
    tcnet.run(spec, recorders=[writer], progress=False)
    return path, writer.run_id


CASES = {
    "train -N": (["train", "-N", "100000000", "-f", "out.h5"], "-N/--N 100000000"),
    "train -k": (["train", "-k", "1000000000", "-f", "out.h5"], "-k/--repeats 1000000000"),
    "train -A": (["train", "-A", "1000000000", "-f", "out.h5"], "-A/--adam-epochs 1000000000"),
    "simulate --dt": (["simulate", "{file}", "{run}", "--dt", "1e-12"], "--dt 1e-12"),
    "simulate --t-max": (["simulate", "{file}", "{run}", "--t-max", "1e12", "--dt", "0.01"], "--t-max 1e+12"),
    "simulate --n-init": (["simulate", "{file}", "{run}", "--n-init", "1000000000"], "--n-init 1000000000"),
    "simulate overflow": (["simulate", "{file}", "{run}", "--t-max", "1e308", "--dt", "1e-308"], "inf time points"),
    "basin-map --grid": (["basin-map", "--grid", "100000", "--out", "b.png"], "grid 100000"),
    "ei-study --n-init": (["ei-study", "--n-init", "1000000000", "--out", "ei"], "--n-init 1000000000"),
    "ei-study --trials": (["ei-study", "--trials", "1000000000000", "--out", "ei"], "--trials 1000000000000"),
    "simpl generate --duration": (["simpl", "generate", "sim.h5", "--duration", "1e15"], "duration 1e+15 s"),
}


@pytest.fixture(scope="module")
def refusals(network_file):
    file, run = network_file
    argvs = [[a.format(file=file, run=run) for a in argv] for argv, _ in CASES.values()]
    return dict(zip(CASES, tcnet_children(argvs)))


@pytest.mark.parametrize("case", CASES)
def test_a_request_beyond_the_machine_is_one_line_naming_the_flag(case, refusals):
    code, err, files = refusals[case]
    lines = err.splitlines()
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and CASES[case][1] in lines[0], lines
    assert "of memory, more than the" in lines[0] or "unbounded memory, more than the" in lines[0], lines
    assert files == []  # nothing written


def test_the_estimate_is_compared_with_what_is_available():
    """Under the limit a request passes; above what is available it is refused with both numbers."""
    available = available_memory()
    require("owner", "small", 1e6)
    with pytest.raises(ConfigError, match=r"^owner: --x 5 needs about .* of memory, more than the .* available$"):
        require("owner", "--x 5", 2.0 * available)
    with pytest.raises(ConfigError, match="needs unbounded memory"):
        require("owner", "--x 5", float("inf"))
    with pytest.raises(ConfigError):
        require("owner", "--x 5", float("nan"))


def test_available_memory_respects_the_address_space_limit(tmp_path):
    """A child under RLIMIT_AS sees at most the limit (and what its kernel reports otherwise)."""
    code = "from tcnet.resources import available_memory; print(available_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         preexec_fn=_limit_memory, check=True)
    assert 0 < int(out.stdout) < LIMIT
    meminfo = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    assert available_memory() <= int(meminfo["MemAvailable"].split()[0]) * 1024 * 1.1


def test_deep_size_counts_nested_containers():
    flat = sys.getsizeof([])
    assert deep_size([]) == flat
    assert deep_size({"a": [1.0, 2.0]}) == (sys.getsizeof({"a": 0}) + sys.getsizeof("a") + sys.getsizeof([1.0, 2.0])
                                           + 2 * sys.getsizeof(1.0))


# --- the library paths these commands call refuse too, before allocating ---------------------------
def test_linear_decay_refuses_a_network_beyond_memory():
    from tcnet_plugins.preparatory.dynamics import LinearDecay
    with pytest.raises(ConfigError, match=r"^linear_decay: N = 100000000 needs about"):
        LinearDecay.create(0, N=100_000_000)
    net = LinearDecay.create(0, N=20)
    with pytest.raises(ConfigError, match=r"^linear_decay: sample_initial: n = 1000000000000 initial states"):
        net.sample_initial(10**12)
    t = np.zeros(10**6)
    with pytest.raises(ConfigError, match=r"^linear_decay: simulate: 1000000 time points x 100000 initial"):
        net.simulate(np.broadcast_to(np.zeros(20), (100_000, 20)), t)


def test_generators_and_maps_refuse_before_allocating(monkeypatch):
    from tcnet_plugins.constraints.basin import basin_map
    from tcnet_plugins.constraints.toy_gaussian import slides_methods
    from tcnet_plugins.simpl.data import generate
    with pytest.raises(ConfigError, match=r"^simpl data: duration 1e\+15 s"):
        generate(0, duration=1e15)
    with pytest.raises(ConfigError, match=r"^basin-map: grid 100000 \(10000000000 start points\) with 20000 steps"):
        basin_map(slides_methods(), grid=100_000)
    # a method without `steps` runs its optimizer's declared default (penalty: 3000), not 0
    monkeypatch.setattr(tcnet, "run", lambda *args, **kwargs: pytest.fail("basin-map ran before refusing"))
    penalty = {k: v for k, v in slides_methods()["penalty"].items() if k != "steps"}
    with pytest.raises(ConfigError, match=r"^basin-map: grid 3000 \(9000000 start points\) with 3000 steps"):
        basin_map({"penalty": penalty}, grid=3000)
