"""Every `tcnet` command, fed hostile and careless arguments (hypothesis), behaves as a lab tool
should: it ends with exit status 0, 1 (a run it reports as failed) or 2 (bad input, one line on
stderr), never a traceback, changes no existing file it was not asked to write, and finishes within
a time bound and a memory limit. The commands are listed from the CLI parser itself, so a new
command (a plugin's too) is drawn automatically, or fails here until it says how to run it cheaply.

Each example runs in a child forked from a small server process that has imported tcnet and its
plugins once (tests/test_cli_properties.py --serve): a fresh process per example costs ~1 s of
imports, a fork ~0.1 s, and the child can be given an address-space limit (RLIMIT_AS), an alarm and,
when the tests run as root, no capability to override file permissions, so that read-only places
are read-only.
Also here: usage errors are one line for every command, and a closed stdout pipe ends quietly."""
import argparse
import functools
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3

# --- how to run each command cheaply ------------------------------------------------------------
# For every command: a valid argv that finishes in about a second (values by dest; True = a flag),
# the dests whose values name files the command may write, and the dests that scale its work or
# memory with the positive range their drawn values are clamped to, so that a valid example stays
# cheap. Of the dests in `sizes` (those the command's memory estimate covers, tcnet.resources), a
# drawn value beyond 1e9 (or below 1e-9) is kept: the command must refuse it in one line, at once.
COMMANDS = {
    ("plugins",): dict(base={}, writes=()),
    ("show",): dict(base={"file": ["runs.h5"]}, writes=()),
    ("compare",): dict(base={"files": ["runs.h5", "study.h5"]}, writes=()),
    ("simulate",): dict(base={"file": ["runs.h5"], "network": ["run-0001"], "t_max": ["0.1"], "n_init": ["2"]},
                        writes=("out",), bounds={"t_max": (0.01, 10), "dt": (1e-3, 1), "n_init": (1, 50)},
                        sizes=("t_max", "dt", "n_init")),
    ("resume",): dict(base={"file": ["runs.h5"], "all": True, "no_progress": True}, writes=("file",)),
    ("run",): dict(base={"spec": ["spec.toml"], "no_progress": True}, writes=("out",)),  # and spec.h5, new
    ("study",): dict(base={"study_file": ["study.toml"], "out": ["new.h5"], "workers": ["1"], "no_progress": True},
                     writes=("out", "csv"), weight=0.25, bounds={"workers": (1, 2)}),
    ("plot-study",): dict(base={"study_file": ["study.toml"], "out": ["study.h5"], "prefix": ["fig"]},
                          writes=("prefix", "out")),
    ("train",): dict(base={"sizes": ["6"], "adam_epochs": ["2"], "lbfgs_iters": ["2"], "file": ["new.h5"],
                           "no_progress": True}, writes=("file",),
                     bounds={"sizes": (2, 30), "repeats": (1, 2), "adam_epochs": (1, 20), "lbfgs_iters": (1, 20),
                             "n_fracs": (0, 1), "betas": (0, 1e6)}, sizes=("sizes", "repeats")),
    ("demo",): dict(base={"out": ["demo"], "no_progress": True}, writes=("out",), weight=0.05, timeout=120),
    ("ei-study",): dict(base={"mode": ["qss"], "presets": ["paradoxical"], "rules": ["exact"], "n_init": ["2"],
                              "steps": ["20"], "trial_inits": ["1"], "trials": ["2"], "seeds": ["0"], "out": ["ei"]},
                        writes=("out",), weight=0.25,
                        bounds={"n_init": (1, 3), "steps": (1, 100), "trial_inits": (1, 2), "trials": (1, 3),
                                "seeds": (0, 1), "hold": (1, 100)}, sizes=("n_init", "seeds")),
    ("basin-map",): dict(base={"grid": ["3"], "steps": ["10"], "methods": ["penalty"], "out": ["b.png"]},
                         writes=("out",), weight=0.25, bounds={"grid": (1, 5), "steps": (1, 50)}, sizes=("grid",)),
    ("simpl", "generate"): dict(base={"out": ["new.h5"], "cells": ["4"], "duration": ["20"]}, writes=("out",),
                                bounds={"cells": (1, 30), "duration": (1, 200), "noise_timescale": (1e-3, 1e3)},
                                sizes=("duration",)),
    ("simpl", "fit"): dict(base={"data": ["sim.h5"], "iterations": ["1"]}, writes=("store", "out", "figures"),
                           weight=0.25, bounds={"iterations": (1, 2), "dt": (0.01, 1), "grid_spacing": (0.02, 1),
                                               "bandwidth": (1e-3, 1), "extent": (0, 2), "val_block": (0.1, 10),
                                               "speed": (1e-3, 10)},
                           sizes=("dt", "grid_spacing", "bandwidth", "extent", "speed")),
}

# malformed stores (tests/test_store_malformed.py), recordings SIMPL cannot fit and studies too large
# to plan, made by `pool` beside the good files (issue 27)
MALFORMED = ["no_optimizer.h5", "loss_5.h5", "optimizer_str.h5", "resumed_yes.h5", "runs_dataset.h5", "rows_1e10.h5",
             "network_1e5.h5", "adam_m_shape.h5", "adam_t_negative.h5"]
BAD_INPUTS = ["cm.npz", "still.npz", "big_grid.toml", "repeats.toml", "nf.toml"]
# the places every path argument is drawn from (made by `pool`, copied afresh for every example)
PLACES = ["runs.h5", "study.h5", "sim.h5", "traj.h5", "study.toml", "spec.toml", "notes.txt", "empty.h5", "truncated.h5",
          "dir", "dir/", "fifo", "missing.h5", "dir/missing/x.h5", "ro", "ro/runs.h5", "ro/new.h5", ".", "-",
          *MALFORMED, *BAD_INPUTS]


def leaves(parser, path=()):
    """(command path, its parser) for every command that runs something."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaves(sub, (*path, name))


@functools.cache
def cli_leaves():
    from tcnet.cli import parser
    from tcnet.plugins import registry
    return dict(leaves(parser(registry())))


# --- the fork server ------------------------------------------------------------------------------
def drop_file_capabilities():
    """Make file permissions bind root too (capset(2) without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    and CAP_FOWNER), so that a read-only place is read-only; root still owns and reads its files."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable, for capabilities 0-31 and 32-63
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    mask = ~((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH) | (1 << CAP_FOWNER)) & 0xFFFFFFFF
    data[0] &= mask
    data[1] &= mask
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def serve():
    """Read one JSON request per line on stdin; fork a child that runs tcnet's main(argv) in `cwd`,
    stdout/stderr to files, under an alarm and an address-space limit; answer how it ended."""
    from tcnet.cli import main, parser
    from tcnet.plugins import registry
    parser(registry())  # imports every command's module before the first fork
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                for fd, name in ((1, req["stdout"]), (2, req["stderr"])):
                    os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                os.chdir(req["cwd"])
                resource.setrlimit(resource.RLIMIT_AS, (req["memory"], req["memory"]))
                if os.geteuid() == 0:
                    drop_file_capabilities()
                signal.alarm(req["timeout"])  # the default action ends the child
                code = main(req["argv"])
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (exit_.code is not None)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except BaseException:
                        pass
                os._exit(code if isinstance(code, int) and 0 <= code < 256 else 99)
        _, status = os.waitpid(pid, 0)
        protocol.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
        protocol.flush()


class ForkServer:
    def __init__(self, scratch: Path):
        env = {**os.environ, "MPLCONFIGDIR": str(scratch / "mpl"), "MPLBACKEND": "Agg", "TCNET_DEBUG": "0"}
        self.scratch = scratch
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=scratch)
        with open(f"/proc/{self.proc.pid}/status") as f:  # the server's own address space, before any work
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
        self.memory = vm + 4 * 2**30

    def run(self, argv, cwd, timeout):
        out, err = self.scratch / "stdout", self.scratch / "stderr"
        request = dict(argv=argv, cwd=str(cwd), timeout=timeout, memory=self.memory, stdout=str(out), stderr=str(err))
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        status = json.loads(self.proc.stdout.readline())["status"]
        return status, out.read_text(errors="replace"), err.read_text(errors="replace")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
    sys.exit(0)

from hypothesis import HealthCheck, event, given, settings, strategies as st  # noqa: E402  (not needed to serve)


def world_writable_tmp() -> Path:
    path = Path(tempfile.mkdtemp(prefix="tcnet-props-"))
    path.chmod(0o777)
    return path


@pytest.fixture(scope="session")
def pool():
    """Real files to aim at, made once per session with the CLI itself: a store with one finished
    run, a study file and its store, a run spec file, a SIMPL recording, a trajectory file; odd
    files beside them."""
    import tcnet
    from tcnet.cli import main
    from tcnet.store import RunWriter
    from tcnet_plugins.preparatory.cli import recipe, run_spec
    root = world_writable_tmp()
    home = root / "pool"
    home.mkdir()
    cwd = os.getcwd()
    os.chdir(home)
    try:
        # one run of train's spec as run-0001 (train itself names its runs by their study)
        spec = run_spec({"name": "linear_decay", "seed": 1234, "N": 6, "n_frac": 0.1}, alpha=1e5, beta=0.01,
                        optimizer=recipe(2, None, 2))
        tcnet.run(spec, recorders=[RunWriter("runs.h5")], progress=False)
        (home / "study.toml").write_text(
            '[study]\nname = "tiny"\nseed = 3\nrepeats = 2\n[base.dynamics]\nname = "linear_decay"\nN = 6\n'
            '[[base.loss]]\nname = "decay"\n[base.optimizer]\nname = "adam"\nsteps = 2\n'
            '[grid]\n"dynamics.n_frac" = [0.2, 0.5]\n')
        assert main(["study", "study.toml", "-o", "study.h5", "--workers", "1", "--no-progress"]) == 0
        (home / "spec.toml").write_text('[dynamics]\nname = "linear_decay"\nN = 6\n[[loss]]\nname = "decay"\n'
                                        '[optimizer]\nname = "adam"\nsteps = 2\n')
        assert main(["simpl", "generate", "sim.h5", "--cells", "4", "--duration", "20"]) == 0
        assert main(["simulate", "runs.h5", "run-0001", "--t-max", "0.1", "--n-init", "2", "--out", "traj.h5"]) == 0
    finally:
        os.chdir(cwd)
    bad_inputs(home)
    (home / "notes.txt").write_text("not a store\n")
    (home / "empty.h5").touch()
    data = (home / "runs.h5").read_bytes()
    (home / "truncated.h5").write_bytes(data[: len(data) // 2])
    (home / "dir").mkdir()
    server = ForkServer(root)
    yield home, server
    server.close()
    shutil.rmtree(root, ignore_errors=True)


STUDY_HEAD = ('[base.dynamics]\nname = "linear_decay"\nN = 6\n[[base.loss]]\nname = "decay"\n'
              '[base.optimizer]\nname = "adam"\nsteps = 2\n')


def bad_inputs(home: Path) -> None:
    """The malformed stores of tests/test_store_malformed.py, SIMPL recordings in centimetres and
    standing still, a study of a 1e8-point grid, one of 1e9 repeats and one whose run ends
    non-finite."""
    import numpy as np
    from test_store_malformed import make_malformed
    from tcnet_plugins.simpl import data as simdata

    assert make_malformed(home) == MALFORMED
    a = simdata.generate(0, n_cells=4, duration=20.0)
    np.savez(home / "cm.npz", counts=a["counts"], behaviour=100 * a["behaviour"], time=a["time"])
    np.savez(home / "still.npz", counts=a["counts"], behaviour=np.full_like(a["behaviour"], 0.5), time=a["time"])
    values = ", ".join(str(0.1 + i * 1e-6) for i in range(10000))
    (home / "big_grid.toml").write_text(f'[study]\nname = "big"\n{STUDY_HEAD}[grid]\n"dynamics.n_frac" = [{values}]\n'
                                        f'"optimizer.lr" = [{values}]\n')
    (home / "repeats.toml").write_text(f'[study]\nname = "many"\nrepeats = 1000000000\n{STUDY_HEAD}')
    (home / "nf.toml").write_text('[study]\nname = "nf"\n[base.dynamics]\nname = "linear_decay"\nN = 20\n'
                                  'n_frac = 0.2\n[[base.loss]]\nname = "decay"\n[[base.loss]]\nname = "stability"\n'
                                  'weight = 1e308\n[base.optimizer]\nname = "adam"\nsteps = 2\n')


def place(home: Path, where: Path) -> None:
    """A fresh copy of the pool in `where`, with the FIFO and the read-only directory."""
    shutil.copytree(home, where)
    os.mkfifo(where / "fifo")
    (where / "ro").mkdir()
    shutil.copy(home / "runs.h5", where / "ro" / "runs.h5")
    for path in [where, *where.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    (where / "ro" / "runs.h5").chmod(0o444)
    (where / "ro").chmod(0o555)


def digests(where: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in where.rglob("*") if p.is_file()}


# --- drawing arguments --------------------------------------------------------------------------
ODD = st.sampled_from(["", " ", "-", "--", "-x", "--help-me", "a\nb", "\t", "ünïcödé", "💥", "名前", "x" * 300,
                       "\udcff", "../", "~", "$HOME", "*", "1 2", "0x10", "1_000", "٣", "None", "null", "true"])
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
STRINGS = st.one_of(ODD, TEXT, st.sampled_from(PLACES))
MAGNITUDES = st.builds(lambda s, k: str(s * 10**k), st.sampled_from([1, -1]), st.integers(0, 30))
INTS = st.one_of(st.integers(-3, 12).map(str), MAGNITUDES,
                 st.sampled_from([str(2**31), str(2**32), str(2**63), str(-2**63 - 1), "1e3", "nan", "inf", "٣"]),
                 st.integers().map(str), ODD)
FLOATS = st.one_of(st.floats(-20, 20).map(repr), st.floats().map(repr), MAGNITUDES,
                   st.sampled_from(["nan", "inf", "-inf", "1e999", "-0", "1e-320", "5e-324", "1e308", "NaN"]), ODD)


def tokens(action) -> st.SearchStrategy:
    """One command-line token for an argparse action, from its declared type and choices."""
    kind = getattr(action.type, "__name__", "str")
    if action.choices:
        return st.one_of(st.sampled_from(sorted(action.choices)), STRINGS)
    if kind == "int":
        return INTS
    if kind == "float":
        return FLOATS
    if kind.endswith(" list"):  # tcnet_plugins.preparatory's "-N '100 300'" lists
        one = INTS if kind.startswith("int") else FLOATS
        return st.one_of(st.lists(one, min_size=1, max_size=3).map(" ".join), ODD)
    return STRINGS


def clamp(token: str, bound, extremes: bool) -> str:
    """A positive finite number outside the bound is moved to its nearest end, unless `extremes`
    and it is beyond 1e9 or below 1e-9; anything else stays."""
    out = []
    for word in token.split(" "):
        try:
            value = float(word)
        except ValueError:
            out.append(word)
            continue
        if value > 0 and value != float("inf") and not (extremes and not 1e-9 <= value <= 1e9):
            value = min(max(value, bound[0]), bound[1])
            word = str(int(value)) if float(int(value)) == value and "." not in word and "e" not in word.lower() else repr(value)
        out.append(word)
    return " ".join(out)


def values(action, bound, extremes) -> st.SearchStrategy:
    """What to give an action: a flag or not, or a list of tokens of (mostly) its arity."""
    if action.nargs == 0:
        return st.booleans()
    one = tokens(action).map(lambda t: clamp(t, bound, extremes) if bound else t)
    n = {None: 1, "?": 1, "+": 2, "*": 2}.get(action.nargs, action.nargs)
    return st.lists(one, min_size=max(0, n - 1), max_size=n + 1)


def argv_for(command, sub, draw) -> list:
    """The command's cheap argv with 1-3 of its arguments replaced by drawn values, maybe an extra
    odd token and a drawn --plugin."""
    spec = COMMANDS[command]
    actions = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
    given_ = dict(spec["base"])
    for action in draw(st.lists(st.sampled_from(actions), min_size=1, max_size=3, unique_by=lambda a: a.dest)):
        given_[action.dest] = draw(values(action, spec.get("bounds", {}).get(action.dest),
                                          action.dest in spec.get("sizes", ())))
    argv = list(command)
    for action in actions:
        value = given_.get(action.dest)
        if value is None or value is False:
            continue
        if not action.option_strings:
            argv += value
        elif value is True:
            argv.append(action.option_strings[-1])
        else:
            argv += [action.option_strings[-1], *value]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(STRINGS))
    if draw(st.integers(0, 19)) == 0:
        argv = ["--plugin", draw(st.sampled_from(PLACES)), *argv]
    return argv, [v for dest in spec["writes"] for v in (given_.get(dest) or []) if isinstance(v, str)]


def may_write(path: Path, outputs, cwd: Path) -> bool:
    """A file the command was asked to write: an output itself, inside an output folder, or beside
    it with the same stem (FILE.png of FILE.h5, a figure prefix)."""
    for out in outputs:
        target = Path(os.path.normpath(cwd / os.path.expanduser(out))) if out else cwd
        if path == target or target in path.parents or str(path).startswith(str(target.with_suffix(""))):
            return True
    return False


TIMEOUT = 40  # seconds per example on a loaded 2-core machine; an example takes ~0.1-3 s (demo ~10 s)


def check(command, server, home, data):
    argv, outputs = argv_for(command, cli_leaves()[command], data.draw)
    event(f"exit {checked_run(server, home, argv, outputs, COMMANDS[command].get('timeout', TIMEOUT))}")


def checked_run(server, home, argv, outputs, timeout):
    """Run `argv` in a fresh copy of the pool and assert what every command owes its user; returns
    its exit status."""
    where = Path(tempfile.mkdtemp(dir=home.parent)) / "w"
    where.parent.chmod(0o777)
    try:
        place(home, where)
        before = digests(where)
        status, out, err = server.run(argv, where, timeout)
        after = digests(where)
    finally:
        (where / "ro").chmod(0o755) if (where / "ro").exists() else None
        shutil.rmtree(where.parent, ignore_errors=True)
    shown = f"tcnet {' '.join(map(repr, argv))}\nexit {status}\nstderr:\n{err[-3000:]}"
    assert status != -signal.SIGALRM, f"no answer within {timeout} s: {shown}"
    assert status in (0, 1, 2), shown
    assert "Traceback" not in err and "internal error" not in err, shown
    if status == 2:  # one line, after any line saying a --plugin file failed to load (not fatal)
        lines = [line for line in err.splitlines() if not re.match(r"tcnet: plugin file .* failed: ", line)]
        assert len(lines) == 1 and lines[0].startswith("tcnet"), shown
    changed = sorted(p for p in before if after.get(p) != before[p] and not may_write(p, outputs, where))
    assert not changed, f"changed {', '.join(str(p.relative_to(where)) for p in changed)}: {shown}"
    return status


@pytest.mark.parametrize("command", sorted(cli_leaves()), ids=" ".join)
def test_every_command_is_covered(command):
    assert command in COMMANDS, (f"tcnet {' '.join(command)} has no cheap argv in COMMANDS of "
                                 "tests/test_cli_properties.py: add one, with the files it writes and its size bounds")


def examples(command, profile):
    return max(1, round(settings.get_profile(profile).max_examples * COMMANDS.get(command, {}).get("weight", 1)))


def property_test(profile):
    @pytest.mark.parametrize("command", sorted(cli_leaves()), ids=" ".join)
    def test(command, pool, request):
        if command not in COMMANDS:
            pytest.fail(f"tcnet {' '.join(command)} is not covered (see test_every_command_is_covered)")
        home, server = pool

        @settings(settings.get_profile(profile), max_examples=examples(command, profile),
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(st.data())
        def run(data):
            check(command, server, home, data)
        run()
    return test


test_cli_properties = property_test("default")
test_cli_properties_many = pytest.mark.slow(property_test("slow"))


# --- the bad input of issue 27, every case once --------------------------------------------------------
ISSUE_27 = [
    *([c, f] for f in MALFORMED for c in ("show", "compare")),
    *(["simulate", f, "run-0001", "--t-max", "0.1"] for f in MALFORMED),
    *(["resume", f, "--all", "--no-progress"] for f in MALFORMED),
    *(["simpl", "fit", "sim.h5", "--iterations", "1", *flags] for flags in (
        ["--dt", "1e-7"], ["--grid-spacing", "1e-5"], ["--extent", "0", "1000", "0", "1000"], ["--bandwidth", "1e-9"],
        ["--speed", "1e-300"])),
    ["simpl", "fit", "cm.npz", "--iterations", "1"],
    ["simpl", "fit", "still.npz", "--iterations", "1", "--speed", "0.1"],
    *(["study", f, "-o", "new.h5", "--workers", "1", "--no-progress", *summary] for f in ("big_grid.toml", "repeats.toml")
      for summary in ([], ["--summary"])),
    ["study", "nf.toml", "-o", "new.h5", "--workers", "1", "--no-progress"],
    ["ei-study", "--mode", "qss", "--n-init", "1", "--steps", "1", "--seeds", "1000000000", "--out", "ei"],
]


@pytest.mark.parametrize("argv", ISSUE_27, ids=" ".join)
def test_the_bad_input_of_issue_27(argv, pool):
    """Malformed stores, SIMPL settings and inputs that cannot work, studies too large to plan:
    each ends 0, 1 or 2 with one line and no traceback, changing no file it was not asked to write
    (before: exit 70, MemoryErrors and runs that never ended)."""
    home, server = pool
    checked_run(server, home, argv, ["new.h5", "ei"], TIMEOUT)


# --- usage errors and a closed pipe -----------------------------------------------------------------
@pytest.mark.parametrize("argv, line", [
    (["train", "-N", "x"], "tcnet train: error: argument -N/--N: invalid int list value: 'x' (see tcnet train --help)"),
    (["simpl"], "tcnet simpl: error: the following arguments are required: ACTION (see tcnet simpl --help)"),
    (["simpl", "fit", "d.h5", "--extent"], "tcnet simpl fit: error: argument --extent: expected at least one "
     "argument (see tcnet simpl fit --help)"),
    (["show", "a.h5", "--no-such-flag"], "tcnet: error: unrecognized arguments: --no-such-flag (see tcnet --help)"),
    (["--plugin"], "tcnet: error: argument --plugin: expected one argument (see tcnet --help)"),
])
def test_a_usage_error_is_one_line(argv, line, capsys):
    """Before: argparse's usage block, then the error."""
    from tcnet.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and capsys.readouterr().err == line + "\n"


def test_a_closed_stdout_pipe_ends_quietly(pool):
    """`tcnet show FILE | head -1`: no 'Broken pipe' line and no traceback (before: 'tcnet show:
    [Errno 32] Broken pipe', or 'Exception ignored ... BrokenPipeError' at exit)."""
    from tcnet.cli import BROKEN_PIPE
    home, _ = pool
    show = [sys.executable, "-m", "tcnet.cli", "show", str(home / "study.h5")]
    proc = subprocess.Popen(show, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait() == BROKEN_PIPE == 141 and err == b""
    head = subprocess.run(f"{' '.join(show)} | head -1", shell=True, capture_output=True, text=True)
    assert head.stdout.startswith(f"{home / 'study.h5'}: format tcnet v") and head.stderr == ""


@pytest.mark.parametrize("argv, line", [
    (["simulate", "runs.h5", "\udcff"], "tcnet simulate: runs.h5: no network '\\udcff' (networks: none; runs: run-0001;"),
    (["resume", "runs.h5", "\udcff"], "tcnet resume: runs.h5: no run '\\udcff' (runs: run-0001)"),
    (["simpl", "fit", "sim.h5", "--extent", "0"], "tcnet simpl: --extent takes a LOW HIGH pair per axis, got 1 number(s)"),
    (["plot-study", "study.h5"], "tcnet plot-study: study file study.h5: not valid TOML (not UTF-8 text)"),
    (["simulate", "runs.h5", "run-0001", "--out", "/"], "tcnet simulate: '/': not a file name"),
])
def test_found_by_the_property_test(argv, line, pool, capsys, monkeypatch):
    """Before: internal errors (UnicodeEncodeError for a name of undecodable bytes, $'\\xff' in a
    shell; a reshape ValueError for an odd number of --extent values; UnicodeDecodeError for a
    study file that is not text; a ValueError for --out / ('/' has no name to give its figure))."""
    from tcnet.cli import main
    monkeypatch.chdir(pool[0])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1, err
