"""`tcnet train` and `tcnet demo`: the preparatory-network study from the command line.

`train` accepts the flags of the published train_models.py (short and long names) and runs every
combination of network size N, rank fraction, beta and repeat as one run: the flags make a study
(`study`, tcnet.study) on the published recipe (recipe.toml, its one place), which runs into one
HDF5 file as `tcnet study` runs a study file, so that `tcnet compare`, `tcnet.open(FILE).grid()`
and resuming see it like any study: the same command again runs only the runs the file lacks.
Repeat k (k = 0..K-1) uses the seed r + k for every N, n_frac and beta (the study's "per-repeat"
seeds), so runs that differ only in beta or n_frac start from the same J0 (with the same seed the
legacy generator draws J0 first) and repeats are independent draws. (The original drew all
networks of a sweep from one seeded global generator in a batch; per-run seeds make each run
reproducible alone.)

`demo` trains one N = 100 network (n/N = 0.1, beta = 0.01, seed 0), saves it, prints the losses,
decay times and counts, and writes the figures next to the HDF5 file.

Both warn, one line per run on stderr, where steps of the run had L1 stand for a divergent integral
(`divergent_steps`): the initial loss of the published notebook's run (N = 500, seed 2: 847949.97,
of which L1 = 20261.47) is such a number, and read as a decay value it misleads.
"""
import sys
from functools import cache
from itertools import product
from pathlib import Path

import numpy as np

from tcnet.resources import FLOAT, deep_size, require
from tcnet.status import NUMERICAL_FAILURES
from tcnet.validate import ConfigError, integer, output_file, real, seed
from tcnet_plugins.preparatory.dynamics import BACKENDS, memory, rank

RECIPE = Path(__file__).with_name("recipe.toml")
"""The published recipe, a run spec file: its one place (data/studies include it)."""


@cache
def published() -> dict:
    """The run spec of RECIPE as a dict (a fresh copy is up to the caller)."""
    from tcnet.spec import SpecFile

    return SpecFile.read(RECIPE).spec.as_dict()


def _stage(i: int, key: str):
    return published()["optimizer"]["stages"][i][key]


ADAM_STEPS, LEARNING_RATE, LBFGS_ITERS = _stage(0, "steps"), _stage(0, "lr"), _stage(1, "max_iter")


def recipe(adam_steps=None, learning_rate=None, lbfgs_iters=None, gtol=None) -> dict:
    """The published two-stage optimizer of RECIPE (Adam in its Keras form, then L-BFGS), with
    the given settings in place of its own."""
    adam, lbfgs = (dict(stage) for stage in published()["optimizer"]["stages"])
    adam.update({k: v for k, v in (("steps", adam_steps), ("lr", learning_rate)) if v is not None})
    lbfgs.update({k: v for k, v in (("max_iter", lbfgs_iters), ("gtol", gtol)) if v is not None})
    return {"name": published()["optimizer"]["name"], "stages": [adam, lbfgs]}


def run_spec(dynamics: dict, *, alpha, beta, optimizer) -> dict:
    """Run spec of L1 + alpha L2 + beta L3 (the loss terms of RECIPE, labelled by their names)."""
    weights = {"stability": alpha, "smoothness": beta}
    loss = [{**t, **({"weight": weights[t["name"]]} if t["name"] in weights else {})} for t in published()["loss"]]
    return {"dynamics": dynamics, "loss": loss, "optimizer": optimizer}


def divergent_steps(command, run_id, marks) -> int:
    """How many of a run's steps had L1 stand for a divergent integral: `marks` is the run's history
    column `decay_diverges` (1.0 at such a step, see LinearDecayState.decay_diverges). Where any
    did, one line on stderr saying how many and what that means, so that a loss printed next to
    it is not read as a decay."""
    n = sum(m == 1.0 for m in marks)
    if n:
        print(f"{command}: warning: run {run_id}: at {n} of {len(marks)} steps J had an eigenvalue with real part "
              ">= 1, where the decay term L1 is the finite closed form of a divergent integral, not a decay value "
              "(marked in the history column extra/decay_diverges)", file=sys.stderr)
    return n


def _numbers(kind):
    """argparse type: a space- (or comma-) separated list; repeated flags are concatenated."""
    def parse(text):
        try:
            values = [kind(x) for x in text.replace(",", " ").split()]
        except ValueError:
            values = []
        if not values:  # argparse reports it in one line, naming the flag and the text
            raise ValueError(f"expected space-separated {kind.__name__} values, got {text!r}")
        return values
    parse.__name__ = f"{kind.__name__} list"
    return parse


def _flatten(lists, default):
    return [x for chunk in lists for x in chunk] if lists else default


def add_commands(subparsers):
    t = subparsers.add_parser("train", help="train preparatory networks (L1 + alpha L2 + beta L3) over a grid; "
                              "every combination is one run of a study in the output HDF5 file",
                              description="Train preparatory networks from the published recipe (recipe.toml) over "
                              "the grid of -N, -F and -b with -k repeats: a study (tcnet.study) written to -f FILE, "
                              "which `tcnet compare`, `tcnet.open(FILE).grid()` and `tcnet study` read. Running the "
                              "same command again runs only what the file lacks (an interrupted train resumes).",
                              epilog="Exit status: 0 when every run ended finished; 1 when a run ended non-finite or "
                              "diverged (it is recorded with that status, and a line on stderr names it) or failed; "
                              "2 for bad input.")
    t.add_argument("-N", "--N", dest="sizes", type=_numbers(int), action="append",
                   help="network sizes, e.g. \"100 300 500\" (repeatable; default 100)")
    t.add_argument("-F", "--n-fracs", type=_numbers(float), action="append", help="rank fractions n/N (default 0.1)")
    t.add_argument("-b", "--betas", type=_numbers(float), action="append", help="smoothness weights (default 0.01)")
    t.add_argument("-k", "--repeats", type=int, default=1, help="random initialisations per combination (default 1)")
    t.add_argument("-T", "--tau", type=float, default=0.01, help="time constant in s (default 0.01)")
    t.add_argument("-a", "--alpha", type=float, default=1e5, help="stability weight (default 1e5)")
    t.add_argument("-L", "--lbfgs-iters", type=int, default=LBFGS_ITERS, help="L-BFGS iterations (default 200)")
    t.add_argument("-A", "--adam-epochs", type=int, default=ADAM_STEPS, help="Adam steps (default 30)")
    t.add_argument("-l", "--learning-rate", type=float, default=LEARNING_RATE, help="Adam learning rate (default 0.01)")
    t.add_argument("-r", "--seed", type=int, default=1234, help="seed of repeat 0; repeat k uses seed + k at every "
                   "grid point (default 1234)")
    t.add_argument("-f", "--file", default="out.h5", help="output HDF5 file (the study's runs are added to it; "
                   "runs it holds already are not run again; default out.h5)")
    t.add_argument("--workers", type=int, default=1, help="runs at once: 1 (default) runs them in this process, "
                   "more in as many worker processes")
    t.add_argument("--init", choices=("legacy", "default"), default="legacy", help="initialisation (default legacy)")
    t.add_argument("--normalization", choices=("raw_weights", "perturbation_weights", "none"), default="raw_weights",
                   help="how U and V enter J (default raw_weights)")
    t.add_argument("--backend", choices=BACKENDS,
                   help="how L1..L3 and their gradient are computed (default auto: the fused eig path, or the "
                   "eig-free Lyapunov path where an eigenvalue is nearly repeated)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(handler=train)

    d = subparsers.add_parser("demo", help="train one N = 100 preparatory network, save it, print losses and "
                              "decay times, write figures")
    d.add_argument("--out", default="out", help="output directory (default out/)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(handler=demo)


def _grid(args):
    """The sizes, rank fractions and betas of the grid, validated before anything runs, and what it
    needs checked against the machine's memory (tcnet.resources) before the plan is made."""
    if args.repeats < 1:
        raise ConfigError(f"train: --repeats must be an integer >= 1, got {args.repeats}")
    seed("train", "--seed", args.seed)
    seed("train", "--seed + --repeats - 1 (the last repeat's seed)", args.seed + args.repeats - 1)
    integer("train", "--workers", args.workers, low=1)
    sizes = [integer("train", "-N/--N", N, low=2) for N in _flatten(args.sizes, [100])]
    fracs = [real("train", "-F/--n-fracs", f, low=0, high=1, low_open=True) for f in _flatten(args.n_fracs, [0.1])]
    betas = _flatten(args.betas, [0.01])
    integer("train", "-A/--adam-epochs", args.adam_epochs, low=0)
    integer("train", "-L/--lbfgs-iters", args.lbfgs_iters, low=0)
    N = max(sizes)
    require("train", f"-N/--N {N} with -A/--adam-epochs {args.adam_epochs} and -L/--lbfgs-iters "
            f"{args.lbfgs_iters}", _run_memory(args, N, rank(N, max(fracs))))
    runs = len(sizes) * len(fracs) * len(betas) * args.repeats
    plan = deep_size(_base(args, betas[0])) + deep_size((N, fracs[0], betas[0], args.seed))
    require("train", f"-k/--repeats {args.repeats} ({runs} runs over the -N/-F/-b grid)", runs * plan)
    return sizes, fracs, betas


def _run_memory(args, N, n) -> float:
    """One run's network and evaluation (`memory`) and its history, which holds every step's point
    (2 N n parameters) and, during Adam, the two moments."""
    parameters = 2.0 * N * n
    history = FLOAT * parameters * (3 * (args.adam_epochs + 1) + args.lbfgs_iters + 1)
    return memory(N, args.backend or "auto") + history


def _base(args, beta) -> dict:
    """The run spec of the flags but the grid's and the seed (the study's base spec)."""
    dynamics = {**published()["dynamics"], "tau": args.tau, "normalization": args.normalization, "init": args.init}
    if args.backend is not None:
        dynamics["backend"] = args.backend
    return run_spec(dynamics, alpha=args.alpha, beta=beta,
                    optimizer=recipe(args.adam_epochs, args.learning_rate, args.lbfgs_iters))


def study(args):
    """The Study of the flags: the published recipe with the flags' settings, the grid of -N, -F
    and -b, -k repeats whose seeds are -r + k at every grid point ("per-repeat": runs that differ
    only in beta or n_frac start from the same J0), named "train"."""
    from tcnet.spec import RunSpec
    from tcnet.study import Study

    if not args.file:
        raise ConfigError("train: -f/--file must be the path of the HDF5 file of the runs, got ''")
    args.file = str(output_file("train", "-f/--file", args.file))
    sizes, fracs, betas = _grid(args)
    for N, f, b in product(sizes, fracs, betas):  # the flags' errors as such, before the study names a point
        spec = _base(args, b)
        spec["dynamics"].update(N=N, n_frac=f)
        RunSpec.from_dict(spec).resolve(args.registry)
    grid = {"dynamics.N": sizes, "dynamics.n_frac": fracs, "loss.smoothness.weight": betas}
    return Study(_base(args, betas[0]), grid, repeats=args.repeats, seed=args.seed, name="train",
                 plugin_files=tuple(args.plugin or ()), seeds="per-repeat")


def train(args) -> int:
    """Run the flags' study into -f FILE (what the file holds already is skipped), one line per run."""
    import concurrent.futures

    from tcnet.study import exit_code, stored

    plan = study(args)
    order = {p.run_id: i for i, p in enumerate(plan.runs(), 1)}

    def report(p, outcome):
        loss = outcome["history"]["loss"]
        losses = f"loss {loss[0]:.6g} -> {loss[-1]:.6g}" if len(loss) else "no finite loss"
        point, run_id = p.overrides, outcome["run_id"]
        print(f"[{order[p.run_id]}/{len(order)}] run {run_id}: N={point['dynamics.N']} "
              f"n_frac={point['dynamics.n_frac']:g} beta={point['loss.smoothness.weight']:g} seed={p.seed}: "
              f"{losses}, {outcome['status']}, "
              f"{outcome.get('steps', 0)} steps, {outcome.get('evaluations', 0)} evaluations, "
              f"{outcome['wall_time']:.1f} s", flush=True)
        divergent_steps("tcnet train", run_id, outcome["history"].get("extra/decay_diverges", []))
        if outcome["status"] in NUMERICAL_FAILURES:
            print(f"tcnet train: run {run_id} {outcome['status']}: {outcome['message']}", file=sys.stderr)

    # one worker: the runs go one after another through a thread of this process (no start-up of a
    # worker process, the driver's BLAS settings); more: the study's own pool of processes
    pool = concurrent.futures.ThreadPoolExecutor(1) if args.workers == 1 else None
    try:
        done = plan.run(args.file, pool, workers=args.workers, progress=not args.no_progress, on_result=report)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    for line in done.failed + done.lost:
        print(f"tcnet train: run {line}", file=sys.stderr)
    print(f"{done} -> {args.file}")
    ended = [rec.status for rec, _ in stored(args.file, plan.runs(), args.registry).values()]
    return exit_code(done, ended)


def demo(args) -> int:
    from tcnet import run
    from tcnet.store import RunWriter
    from tcnet_plugins.preparatory import figures
    from tcnet_plugins.preparatory.analysis import decay_time

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "demo.h5"
    spec = run_spec({"name": "linear_decay", "seed": 0, "N": 100, "n_frac": 0.1, "tau": 0.01,
                     "normalization": "raw_weights", "init": "legacy"}, alpha=1e5, beta=0.01, optimizer=recipe())
    writer = RunWriter(path)
    res = run(spec, recorders=[writer], progress=not args.no_progress, plugins=args.registry)
    steps = res.history.steps
    if res.result.status in NUMERICAL_FAILURES:
        print(f"tcnet demo: {res.result.status}: {res.result.message}", file=sys.stderr)
        return 1
    divergent_steps("tcnet demo", writer.run_id, [s.extra.get("decay_diverges") for s in steps])
    for label, s in (("initial", steps[0]), ("final", steps[-1])):
        terms = ", ".join(f"{k} {v:.6g}" for k, v in s.terms.items())
        print(f"{label} loss {s.loss:.6g}  ({terms})")
    lbfgs = sum(1 for s in steps if s.stage == 1)  # its start point is the last Adam step
    print(f"{res.result.status}: Adam steps {sum(1 for s in steps if s.stage == 0) - 1}, "
          f"L-BFGS iterations {lbfgs}, evaluations {res.result.evaluations}")
    for label, d in (("before", res.initial), ("after", res.final)):
        t1, t5 = decay_time(d, 0.01), decay_time(d, 0.05)
        print(f"decay time {label}: t_1% = {t1 * 1e3:.2f} ms, t_5% = {t5 * 1e3:.2f} ms"
              + ("  (unstable: activity does not decay)" if t1 == float("inf") else ""))
    unstable = np.array([s.extra.get("decay_diverges", 0.0) for s in steps])
    history = {"demo": (*(res.history.column(k) for k in ("step", "stage", "loss")), unstable)}
    paths = [
        figures.learning_curve(history, out / "demo_learning_curve.png"),
        figures.activity_decay({"after": res.final}, out / "demo_activity_decay.png"),
        figures.spectra({"before": res.initial, "after": res.final}, out / "demo_spectra.png"),
        figures.readout_traces({"before": res.initial, "after": res.final}, out / "demo_readout.png",
                               t_max=0.1),
    ]
    print(f"network and run {writer.run_id} saved to {path}")
    print("figures: " + ", ".join(map(str, paths)))
    return 0
