"""The `tcnet` command. Framework subcommands live here; plugins add theirs through the
`tcnet_commands` hook. `--plugin FILE` (repeatable, before or after the command) loads
single-file plugins first, so their dynamics, losses, optimizers and commands are available to
every subcommand."""
import argparse
import inspect
import json
import os
import signal
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np

from tcnet import __version__
from tcnet.optim import StabilityWarning
from tcnet.plugins import PluginError, PluginWarning, UnknownPluginError, registry, settings_page
from tcnet.provenance import CodeChangedWarning
from tcnet.resources import FLOAT, require
from tcnet.status import ENDED, NUMERICAL_FAILURES, Status
from tcnet.store import MissingPluginWarning, StoreError
from tcnet.store import identity
from tcnet.study import add_commands as add_study_commands
from tcnet.validate import ConfigError, output_file


def _plugins(args) -> int:
    """List every registered dynamics, loss and optimizer with the plugin it came from; with a
    NAME, that plugin's description and every setting a spec entry of it takes (tcnet.settings);
    with --markdown, docs/SETTINGS.md (the settings of tcnet's own plugins)."""
    entries = args.registry.all()
    if args.markdown:
        print(settings_page([e for e in entries if e.cls.__module__.split(".")[0] in ("tcnet", "tcnet_plugins")]))
        return 0
    if args.name is not None:
        entries = [e for e in entries if args.name in (e.name, *getattr(e.cls, "aliases", ()))]
        if not entries:
            known = ", ".join(sorted({e.name for e in args.registry.all()}))
            raise UnknownPluginError(f"no plugin named {args.name!r}; registered: {known}")
    width = max((len(e.name) for e in entries), default=4)
    for e in entries:
        print(f"{e.kind:<10} {e.name:<{width}}  {e.source}")
        if args.name is not None:
            print(textwrap.indent(e.summary, "  "))
            settings = e.settings
            if settings is None:
                print("  declares no settings: its keys are not checked")
            for line in settings.help_lines() if settings else ():
                print(f"  {line}")
    return 1 if args.registry.failures else 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def _show(args) -> int:
    """Print the networks (arrays, config, summary) and runs (status, steps, loss) of a file."""
    from tcnet import store
    info = store.file_info(args.file)
    print(f"{args.file}: format {info['format']} v{info['format_version']} (tcnet {info['tcnet_version']})")
    names = store.list_networks(args.file)
    print(f"networks/ ({len(names)})")
    for name in names:
        data = store.network_data(args.file, name)
        shapes = " ".join([*(f"{k}{tuple(a.shape)}" for k, a in data.arrays.items()),
                           *(f"{k}{tuple(a.shape)}:{a.dtype}" for k, a in data.data.items())])
        print(f"  {name}  dynamics={data.dynamics} seed={data.seed} config={json.dumps(data.config)}  {shapes}")
        if data.dynamics in args.registry.entries["dynamics"]:
            facts = data.build(args.registry).summary()
            if facts:
                print("    " + "  ".join(f"{k}={_fmt(v)}" for k, v in facts.items()))
    runs = store.list_runs(args.file)
    print(f"runs/ ({len(runs)})")
    for run_id in runs:
        rec = store.read_run(args.file, run_id, plugins=args.registry)
        h, spec = rec.history, rec.spec
        opt = spec["optimizer"]
        stages = "+".join(s.get("name", "?") for s in opt.get("stages", [])) or opt["name"]
        loss = f"loss={_fmt(float(h['loss'][-1]))}" if rec.steps else "no steps"
        print(f"  {run_id}  status={rec.status}  steps={rec.steps}  {loss}  dynamics={spec['dynamics']['name']}"
              f"  optimizer={stages}")
        terms = [k for k in h if k.startswith("terms/")]
        if rec.steps and terms:
            print("    terms: " + "  ".join(f"{k[6:]}={_fmt(float(h[k][-1]))}" for k in terms))
        if rec.message:
            print(f"    {rec.message}")
    return 0


DECAY_TO = 1e-3  # `tcnet simulate` runs, by default, until the slowest mode has decayed to this fraction
MAX_TAUS = 1000  # ... but for at most this many time constants of the network
GRID = 1000  # steps of the default output grid
FALLBACK_T_MAX = 10.0  # for a dynamics that declares no time scale (Dynamics.time_scales)


def default_duration(net) -> tuple[float, str]:
    """(t_max, why): ln(1/DECAY_TO) times the slowest e-folding time of the network, at most MAX_TAUS
    time constants; FALLBACK_T_MAX where the dynamics declares no time scale."""
    scales = net.time_scales()
    if scales is None:
        return FALLBACK_T_MAX, "the dynamics declares no time scale"
    slow, tau = scales
    cap = MAX_TAUS * tau
    t_max = np.log(1 / DECAY_TO) * slow
    if t_max > cap:
        return cap, f"capped at {MAX_TAUS} time constants: the slowest mode decays in {slow:.3g}"
    return float(t_max), f"the slowest mode (e-folding time {slow:.3g}) decayed to {DECAY_TO:g}"


def _simulate(args) -> int:
    """Simulate a stored network from sample_initial states (or the states of --x0); print its summary,
    and per trajectory the norms at the start and the end and the numbers its dynamics declares
    (trajectory_metrics). The default duration comes from the network's own time scale."""
    from tcnet import store
    from tcnet.reader import initial_states, read_initial_states
    from tcnet.validate import integer, positive, seed
    seed("simulate", "--seed", args.seed)
    for flag, value in (("--t-max", args.t_max), ("--dt", args.dt)):
        if value is not None:
            positive("simulate", flag, value)
    n = integer("simulate", "--n-init", args.n_init, low=1)
    if args.out:
        out, figure = _trajectory_paths(args.out, args.force, args.file)
    given = read_initial_states(args.x0) if args.x0 else None
    net = store.load_network(args.file, args.network, plugins=args.registry)
    if args.inputs:
        t, x0, x, columns = _simulate_task(net, args.inputs)
        n = len(x0)
    else:
        t_max, why = (args.t_max, "--t-max") if args.t_max is not None else default_duration(net)
        dt = args.dt if args.dt is not None else t_max / GRID
        if dt > t_max:
            raise ConfigError(f"simulate: --dt must be at most --t-max ({t_max:g}), got {dt:g}")
        x0 = None if given is None else initial_states(net, given, "--x0")
        n, dim = x0.shape if x0 is not None else (n, net.sample_initial(1, seed=args.seed).shape[-1])
        points = np.floor(t_max / dt + 1e-9) + 1
        require("simulate", f"--t-max {t_max:g} / --dt {dt:g} ({points:.3g} time points) x {'--x0: ' if given is not None else '--n-init '}{n} trajectories "
                f"x {dim} states", FLOAT * points * (n * dim + 1))  # the time grid and the trajectories, at least
        x0 = net.sample_initial(n, seed=args.seed) if x0 is None else x0
        t = np.arange(int(points)) * dt
        x = np.asarray(net.simulate(x0, t))
        columns = {}
    norms = np.linalg.norm(x, axis=-1)  # (len(t), n)
    time = type(net).labels.time
    print(f"network {args.network} ({net.name}, config {json.dumps(net.config)}) from {args.file}")
    for k, v in net.summary().items():
        print(f"  {k} = {_fmt(v)}")
    unit = f" {time.unit}" if time.unit else ""
    if args.inputs:
        print(f"{n} conditions of the task {args.inputs}, {time.label} = {t[0]:g}..{t[-1]:g} ({len(t)} points){unit}")
    else:
        origin = f"the states of {args.x0}" if args.x0 else f"sample_initial(seed={args.seed})"
        print(f"{n} trajectories from {origin}, {time.label} = 0..{t[-1]:g} step {dt:g}{unit} ({why})")
    columns = {"|x(0)|": norms[0], "|x(t_max)|": norms[-1], **columns, **net.trajectory_metrics(t, x)}
    widths = [max(10, len(c)) for c in columns]
    print("  traj  " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
    for i in range(n):
        print(f"  {i:>4}  " + "  ".join(f"{float(v[i]):>{w}.4g}" for v, w in zip(columns.values(), widths)))
    if args.out:
        origin = ({"task": str(args.inputs)} if args.inputs else {"x0": str(args.x0)} if args.x0 else
                  {"seed": args.seed})
        store.save_trajectories(out, t, x, force=args.force, source=str(args.file), network=args.network,
                                dynamics=net.name, **origin)
        ratio = not args.inputs  # a task's conditions may start at x = 0
        _plot_norms(figure, t, norms / norms[0] if ratio else norms, str(time), f"{args.network} ({net.name})",
                    args.force, "|x(t)| / |x(0)|" if ratio else "|x(t)|")
        print(f"wrote {out} and {figure}")
    return 0


def _simulate_task(net, path):
    """(t, x0, x, columns) of a network simulated on the conditions of a task file (tcnet.task):
    its grid, its inputs, its initial states (else the network's `sample_initial`), and per
    condition the readout's mean squared error to the target where the network has a readout."""
    from tcnet.task import Task
    task = Task.read(path)
    x0 = task.x0 if task.x0 is not None else net.sample_initial(task.conditions)
    u = task.inputs
    if u is not None and "u" not in inspect.signature(net.simulate).parameters:
        raise ConfigError(f"simulate: dynamics {net.name!r} takes no inputs; the task {str(path)!r} has {task.n_inputs}")
    x = np.asarray(net.simulate(x0, task.t) if u is None else net.simulate(x0, task.t, u))
    y = net.readout(x)
    columns = {}
    if y is not None:
        if y.shape != task.targets.shape:
            raise ConfigError(f"simulate: the network's readout has shape {y.shape[1:]} per time, the task's "
                              f"target {task.targets.shape[1:]}")
        w = task.weights
        columns["readout MSE"] = np.sum(w * (y - task.targets) ** 2, axis=(0, 2)) / np.sum(w, axis=(0, 2))
    return task.t, x0, x, columns


def _trajectory_paths(out: str, force: bool, source: str):
    """The trajectory file and its figure (FILE.png), both checked before anything is computed:
    neither may be the `source` store, even with --force."""
    from tcnet.store import check_new
    out = check_new(output_file("simulate", "--out", out), force, keep=[source])
    return out, check_new(out.with_suffix(".png"), force, keep=[source])


def _plot_norms(path, t, norms, xlabel, title, force, ylabel="|x(t)| / |x(0)|") -> None:
    from tcnet.plot import plt, save_figure
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(t, norms, lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    save_figure(fig, path, force=force, dpi=100)


def _compare(args) -> int:
    """Print one row per run of the given files, or per group of repeats with --group (CSV with --csv)."""
    from tcnet import store
    files = list({Path(f).resolve(): f for f in reversed(args.files)}.values())[::-1]  # each file once
    rows = store.compare_table(files, plugins=args.registry)
    if args.group:
        rows = store.group_rows(rows)
    if args.csv:
        sys.stdout.write(store.table_csv(rows))
        return 0
    if not rows:
        print("no runs")
        return 0
    cells = [list(rows[0])] + [[_fmt(v) for v in row.values()] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(cells[0]))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _resume(args) -> int:
    """Continue a file's interrupted run RUN (or, with --all, every interrupted run) from its
    checkpoint, appending to the same history; print how each ended."""
    from tcnet import store
    from tcnet.resume import resume
    if bool(args.run) == args.all:
        raise ConfigError("resume: give either RUN or --all (every interrupted run of FILE)")
    if args.run:
        run_ids = [args.run]
    else:
        run_ids = [r for r in store.list_runs(args.file)
                   if store.read_run(args.file, r, plugins=args.registry).status == Status.INTERRUPTED]
        if not run_ids:
            print(f"{args.file}: no interrupted runs")
            return 0
    failed = 0
    for run_id in run_ids:
        out = resume(args.file, run_id, progress=not args.no_progress, plugins=args.registry)
        r = out.result
        failed += r.status in NUMERICAL_FAILURES
        print(f"run {run_id}: {r.status} at step {out.history.steps[-1].step if out.history.steps else '-'} "
              f"({r.message}); {len(out.history.steps)} steps this session -> {args.file}")
    return 1 if failed else 0


def _run(args) -> int:
    """Run a run spec file (TOML, docs/SPEC.md) through tcnet.run into its HDF5 file and print a
    summary. Everything is checked, and the network built, before the file is touched. The last run
    in the file with the same resolved spec decides what happens: none (or --new) starts a new run;
    an interrupted or failed one continues from its checkpoint (one without a checkpoint yet is
    started again as a new run); a finished one is not run again (its summary is printed), so
    running a spec twice is the same as running it once."""
    from tcnet import store
    from tcnet.resume import resume
    from tcnet.run import recorded, run
    from tcnet.spec import SpecFile, build_dynamics

    spec_file = SpecFile.read(args.spec)
    out = output_file("run", "--out", args.out) if args.out else spec_file.out
    plugins = _spec_registry(args, spec_file)
    try:
        resolved = spec_file.spec.resolve(plugins)
        initial = build_dynamics(resolved.dynamics, plugins)
    except (ConfigError, UnknownPluginError) as err:
        raise ConfigError(f"{spec_file.path}: {_one_line(err)}") from None
    spec, _ = recorded(resolved, initial, plugins)
    previous = None if args.new or not out.exists() else _last_run_of(out, spec, plugins)
    if previous is not None and previous.status == Status.RUNNING:
        raise StoreError(f"{out}: run {previous.run_id} of this spec is being written by another process "
                         f"({previous.attrs.get('writer', '?')})")
    if previous is not None and previous.status in ENDED:
        _run_summary(out, previous.run_id, plugins, "already in the file, not run again; --new runs it again "
                     "as a new run")
        return 1 if previous.status in NUMERICAL_FAILURES else 0
    if previous is not None and previous.checkpoint is not None:
        print(f"resuming run {previous.run_id} of {out} ({previous.status} at step {previous.checkpoint.step})")
        resume(out, previous.run_id, progress=not args.no_progress, plugins=plugins)
        run_id, how = previous.run_id, f"resumed at step {previous.checkpoint.step}"
    else:
        if previous is not None:
            print(f"run {previous.run_id} of this spec in {out} stopped before its first checkpoint: "
                  "starting a new run")
        writer = store.RunWriter(out)
        run(resolved, recorders=[writer], progress=not args.no_progress, plugins=plugins, dynamics=initial)
        run_id, how = writer.run_id, "new run"
    status = _run_summary(out, run_id, plugins, how)
    return 1 if status in NUMERICAL_FAILURES else 0


def _spec_registry(args, spec_file):
    """The registry of the --plugin files plus the spec file's own `plugins`. A spec plugin that
    does not load is refused (ConfigError naming it): the spec cannot run without it, and its
    failure says more than the unknown name it would otherwise show up as."""
    if not spec_file.plugins:
        return args.registry
    try:
        with warnings.catch_warnings():  # a failed spec plugin is refused below
            warnings.simplefilter("ignore", PluginWarning)
            plugins = registry([*args.plugin, *spec_file.plugins])
    except PluginError as err:
        raise ConfigError(f"{spec_file.path}: {err}") from None
    own = {f"file {p.resolve()}" for p in spec_file.plugins}
    failed = [f for f in plugins.failures if f.source in own]
    if failed:
        raise ConfigError(f"{spec_file.path}: {failed[0]}")
    return plugins


def _last_run_of(path, spec, plugins):
    """The RunRecord of the last run in the store file `path` whose recorded spec is `spec`, or None."""
    from tcnet import store
    want = json.loads(json.dumps(spec.as_dict()))
    found = None
    for run_id in store.list_runs(path):
        record = store.read_run(path, run_id, plugins=plugins)
        if record.spec == want:
            found = record
    return found


def _run_summary(path, run_id, plugins, how) -> str:
    """Print one line about run `run_id` of `path` as stored (its whole history, every session of
    it), and its optimizer's message on stderr where it failed numerically; returns its status."""
    from tcnet import store
    rec = store.read_run(path, run_id, plugins=plugins)
    loss = rec.history["loss"]
    losses = f"loss {_fmt(float(loss[0]))} -> {_fmt(float(loss[-1]))}" if rec.steps else "no steps"
    print(f"run {run_id} -> {path}: {losses}, {rec.status}, {rec.steps} steps ({how})")
    if rec.status in NUMERICAL_FAILURES:
        print(f"tcnet run: run {run_id} {rec.status}: {rec.message}", file=sys.stderr)
    return rec.status


# What a command reports as one line on stderr with exit code 2, for every command (plugins' too):
# errors in what the user gave. Anything else is a bug: one line too (exit 70, EX_SOFTWARE), and the
# traceback with --debug or TCNET_DEBUG=1. Ctrl-C: one line saying what was kept and how to go on
# (the writers add that as notes to the KeyboardInterrupt), exit 130.
USER_ERRORS = (ConfigError, StoreError, UnknownPluginError, NotImplementedError, OSError)
INTERNAL_ERROR = 70
INTERRUPTED = 130
BROKEN_PIPE = 128 + signal.SIGPIPE  # what a shell reports for a tool that stopped because its reader left


class Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line, naming the command and pointing to its --help
    (argparse prints the usage block first). Every subcommand's parser is of this class too."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


PLUGIN_HELP = "load a single-file plugin (.py); repeatable, before or after the command"


def parser(plugins) -> argparse.ArgumentParser:
    p = Parser(prog="tcnet", description="Optimize network models with plugin losses; "
                                "save, load, simulate and compare runs (HDF5).")
    p.add_argument("--version", action="version", version=f"tcnet {__version__}")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE", help=PLUGIN_HELP)
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error (for bug "
                   "reports; also TCNET_DEBUG=1)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sp = sub.add_parser("plugins", help="list registered dynamics, losses and optimizers and their sources")
    sp.add_argument("name", nargs="?", help="show this plugin's description and settings (name, "
                    "allowed values, default)")
    sp.add_argument("--markdown", action="store_true", help="print docs/SETTINGS.md: every setting of "
                    "tcnet's own plugins, from their declarations")
    sp.set_defaults(handler=_plugins)
    sp = sub.add_parser("show", help="tree of the networks and runs in a tcnet HDF5 file")
    sp.add_argument("file")
    sp.set_defaults(handler=_show)
    sp = sub.add_parser("simulate", help="simulate a saved network from random initial states or your own",
                        description="NETWORK is a saved network's name, or a run's network: '<run>' "
                        "(final), '<run>/initial', '<run>/final', '<run>/checkpoint'. By default the "
                        f"simulation lasts until the network's slowest mode has decayed to {DECAY_TO:g} "
                        f"(ln({1 / DECAY_TO:g}) times its slowest e-folding time), at most {MAX_TAUS} time "
                        f"constants of the network, on a grid of {GRID} steps; {FALLBACK_T_MAX:g} for a "
                        "dynamics that declares no time scale.")
    sp.add_argument("file")
    sp.add_argument("network")
    sp.add_argument("--t-max", type=float, help=f"simulated time (default: until the slowest mode has decayed to "
                    f"{DECAY_TO:g}, at most {MAX_TAUS} time constants; see above)")
    sp.add_argument("--dt", type=float, help=f"time step of the output grid (default: --t-max / {GRID})")
    sp.add_argument("--n-init", type=int, default=8, help="number of random initial states (default 8)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the initial states (default 0)")
    sp.add_argument("--x0", metavar="FILE", help="simulate from these initial states instead: .npy, .npz (its "
                    "array x0), .txt or .csv, one state per row (--n-init and --seed are then unused)")
    sp.add_argument("--inputs", metavar="TASK", help="simulate the conditions of a task file (.npz or HDF5: t, u, "
                    "target, optional x0, mask; docs/SPEC.md) instead: its grid, inputs and initial states "
                    "(--t-max, --dt, --n-init, --seed are then unused)")
    sp.add_argument("--out", metavar="FILE.h5", help="write the trajectories to FILE.h5 and their "
                    "norms vs time to FILE.png")
    sp.add_argument("--force", action="store_true", help="replace existing --out files (never a file "
                    "another tcnet process is writing)")
    sp.set_defaults(handler=_simulate)
    sp = sub.add_parser("compare", help="one row per run: differing settings, final loss and terms, counts",
                        description="One row per run of the files: file, run, status, the spec keys that differ, "
                        "loss, terms/<label>, steps, evaluations, wall_time, summary/<key> (the column names "
                        "of study tables and tcnet.open).")
    sp.add_argument("files", nargs="+", metavar="FILE")
    sp.add_argument("--csv", action="store_true", help="print CSV instead of an aligned table")
    sp.add_argument("--group", action="store_true", help="pool repeats (runs differing only in a seed, "
                    "as in a study): one row per setting of the other differing keys: n, finished, failed, "
                    "<column>:mean and <column>:std")
    sp.set_defaults(handler=_compare)
    sp = sub.add_parser("resume", help="continue an interrupted run (or every one, --all) from its checkpoint",
                        description="Continue run RUN of FILE (status interrupted or failed) from its last "
                        "checkpoint, appending to its history; --all resumes every interrupted run of FILE.")
    sp.add_argument("file")
    sp.add_argument("run", nargs="?", metavar="RUN")
    sp.add_argument("--all", action="store_true", help="every run of FILE whose status is interrupted")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.set_defaults(handler=_resume)
    sp = sub.add_parser("run", help="run a run spec file (TOML: dynamics, loss terms, optimizer) into an "
                        "HDF5 file, or continue its interrupted run", description=(
                            "Run SPEC.toml (docs/SPEC.md) through tcnet.run into its HDF5 file (the spec's "
                            "`out`, default SPEC.h5 beside it), checking every key first. Run again, it "
                            "continues the file's interrupted or failed run of the same spec from its "
                            "checkpoint, and does not rerun a finished one (--new does)."))
    sp.add_argument("spec", metavar="SPEC.toml")
    sp.add_argument("-o", "--out", metavar="FILE.h5", help="HDF5 file of the run, instead of the spec's `out`")
    sp.add_argument("--new", action="store_true", help="start a new run even where the file holds one of "
                    "this spec")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.set_defaults(handler=_run)
    add_study_commands(sub)
    plugins.add_commands(sub)
    _everywhere(p, "--plugin", action="append", default=argparse.SUPPRESS, metavar="FILE", help=PLUGIN_HELP)
    return p


def _everywhere(p: argparse.ArgumentParser, flag: str, **kwargs) -> None:
    """Add the option `flag` to every subcommand's parser, at any depth (plugins' too), unless it
    has its own, so that it may follow the command. With default SUPPRESS a subcommand's parser
    leaves the top-level value alone where the option is not given after it."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                if flag not in child._option_string_actions:
                    child.add_argument(flag, **kwargs)
                _everywhere(child, flag, **kwargs)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = Parser(prog="tcnet", add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    pre.add_argument("--debug", action="store_true")
    known, _ = pre.parse_known_args(argv)
    debug = known.debug or os.environ.get("TCNET_DEBUG", "") not in ("", "0")
    command, handler = "tcnet", None
    try:
        try:
            with warnings.catch_warnings():  # a failed file is reported below, as an error
                warnings.simplefilter("ignore", PluginWarning)
                plugins = registry(known.plugin)
        except PluginError as err:
            print(f"tcnet: {_one_line(err)}", file=sys.stderr)
            return 2
        if plugins.file_failures:  # a file the user named is missing from every command: refuse to go on
            for failure in plugins.file_failures:
                print(f"tcnet: {_one_line(failure)}", file=sys.stderr)
            return 2
        p = parser(plugins)
        args = p.parse_args(argv)
        for failure in plugins.failures:  # an installed entry point: reported, the others still work
            print(f"tcnet: {_one_line(failure)}", file=sys.stderr)
        if args.command is None:
            p.print_help()
            return 0
        command = f"tcnet {args.command}"
        args.registry = plugins
        args.plugin = known.plugin  # every --plugin, before and after the command, in order
        handler = args.handler
        with warnings.catch_warnings(), identity.command():  # restores showwarning and the filters afterwards; no
            # file the command reads or writes is replaced by an output of its own (tcnet.store.identity)
            warnings.simplefilter("always", StabilityWarning)
            if not debug:
                warnings.showwarning = _warning_line(command)
            code = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:  # `tcnet show FILE | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return BROKEN_PIPE
    except KeyboardInterrupt as err:
        if debug:
            raise
        print("; ".join([f"{command}: interrupted", *getattr(err, "__notes__", [])]), file=sys.stderr)
        return INTERRUPTED
    except USER_ERRORS as err:  # bad input or an unreadable file: one line, no traceback
        if debug:
            raise
        sub, message = command[len("tcnet "):], _one_line(err)
        if sub and message.startswith(f"{sub}: "):
            message = message[len(sub) + 2:]
        print(f"{command}: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug, here or in a plugin: one line naming where, the traceback on request
        if debug:
            raise
        print(f"{command}: internal error{_origin(handler)}: {type(err).__name__}: {_one_line(err)} (run again "
              "with --debug or TCNET_DEBUG=1 for the traceback, and report it)", file=sys.stderr)
        return INTERNAL_ERROR


def _warning_line(command):
    """showwarning that prints each warning as one line on stderr: tcnet's own (StabilityWarning,
    CodeChangedWarning) as their message, any other (numpy's RuntimeWarning on an overflow, a library's
    DeprecationWarning) with its category and where it was raised (with --debug: Python's
    two-line form, with the source line)."""
    def line(message, category, filename, lineno, file=None, text=None):
        if issubclass(category, (StabilityWarning, CodeChangedWarning, MissingPluginWarning)):
            print(f"{command}: warning: {_one_line(message)}", file=sys.stderr)
        else:
            print(f"{command}: warning: {category.__name__}: {_one_line(message)} ({filename}:{lineno})",
                  file=sys.stderr)
    return line


def _one_line(err) -> str:
    return " ".join(str(err).split())


def _origin(handler) -> str:
    """' (plugin module M)' for a command a plugin added, '' for tcnet's own commands."""
    module = getattr(handler, "__module__", None) or "tcnet"
    return "" if module.split(".")[0] == "tcnet" else f" (plugin module {module})"


if __name__ == "__main__":
    sys.exit(main())
