"""`tcnet train` and `tcnet demo`: the preparatory-network study from the command line.

`train` accepts the flags of the published train_models.py (short and long names) and runs every
combination of network size N, rank fraction, beta and repeat as one run, written to one HDF5 file
with the store's RunWriter. Repeat k (k = 0..K-1) uses the seed r + k for every N, n_frac and beta,
so runs that differ only in beta or n_frac start from the same J0 (with the same seed the legacy
generator draws J0 first) and repeats are independent draws. (The original drew all networks of a
sweep from one seeded global generator in a batch; per-run seeds make each run reproducible alone.)

`demo` trains one N = 100 network (n/N = 0.1, beta = 0.01, seed 0), saves it, prints the losses,
decay times and counts, and writes the figures next to the HDF5 file.

Both warn, one line per run on stderr, where steps of the run had L1 stand for a divergent integral
(`divergent_steps`): the initial loss of the published notebook's run (N = 500, seed 2: 847949.97,
of which L1 = 20261.47) is such a number, and read as a decay value it misleads.
"""
import sys
import time
from itertools import product
from pathlib import Path

from tcnet.resources import FLOAT, deep_size, require
from tcnet.status import NUMERICAL_FAILURES
from tcnet.validate import ConfigError, integer, real, seed
from tcnet_plugins.preparatory.dynamics import BACKENDS, memory, rank

ADAM_STEPS, LEARNING_RATE, LBFGS_ITERS, GTOL = 30, 0.01, 200, 1e-5


def recipe(adam_steps=ADAM_STEPS, learning_rate=LEARNING_RATE, lbfgs_iters=LBFGS_ITERS, gtol=GTOL) -> dict:
    """The published two-stage optimizer: Adam (Keras form) then L-BFGS, as a staged spec."""
    return {"name": "staged", "stages": [
        {"name": "adam", "steps": adam_steps, "lr": learning_rate},
        {"name": "lbfgs", "max_iter": lbfgs_iters, "gtol": gtol},
    ]}


def run_spec(dynamics: dict, *, alpha, beta, optimizer) -> dict:
    """Run spec of L1 + alpha L2 + beta L3 (term labels are the loss names)."""
    return {"dynamics": dynamics,
            "loss": [{"name": "decay"}, {"name": "stability", "weight": alpha},
                     {"name": "smoothness", "weight": beta}],
            "optimizer": optimizer}


def divergent_steps(command, run_id, steps) -> int:
    """How many of a run's `steps` had L1 stand for a divergent integral (the history column
    `decay_diverges`, see LinearDecayState.decay_diverges); where any did, one line on stderr
    saying how many and what that means, so that a loss printed next to it is not read as a decay."""
    n = sum(s.extra.get("decay_diverges") == 1.0 for s in steps)
    if n:
        print(f"{command}: warning: run {run_id}: at {n} of {len(steps)} steps J had an eigenvalue with real part "
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
                              "every combination is one run in the output HDF5 file",
                              epilog="Exit status: 0 when every run ended (converged, or its step budget done); 1 "
                              "when a run ended non-finite or diverged (it is recorded with that status, and a line "
                              "on stderr names it); 2 for bad input.")
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
    t.add_argument("-r", "--seed", type=int, default=1234, help="seed of repeat 0; repeat k uses seed + k (default 1234)")
    t.add_argument("-f", "--file", default="out.h5", help="output HDF5 file (runs are appended; default out.h5)")
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
    """(N, n_frac, beta, seed) for every combination, validated before anything runs, and what it
    needs checked against the machine's memory (tcnet.resources) before the plan is made."""
    if args.repeats < 1:
        raise ConfigError(f"train: --repeats must be an integer >= 1, got {args.repeats}")
    seed("train", "--seed", args.seed)
    seed("train", "--seed + --repeats - 1 (the last repeat's seed)", args.seed + args.repeats - 1)
    sizes = [integer("train", "-N/--N", N, low=2) for N in _flatten(args.sizes, [100])]
    fracs = [real("train", "-F/--n-fracs", f, low=0, high=1, low_open=True) for f in _flatten(args.n_fracs, [0.1])]
    betas = _flatten(args.betas, [0.01])
    integer("train", "-A/--adam-epochs", args.adam_epochs, low=0)
    integer("train", "-L/--lbfgs-iters", args.lbfgs_iters, low=0)
    N = max(sizes)
    require("train", f"-N/--N {N} with -A/--adam-epochs {args.adam_epochs} and -L/--lbfgs-iters "
            f"{args.lbfgs_iters}", _run_memory(args, N, rank(N, max(fracs))))
    runs = len(sizes) * len(fracs) * len(betas) * args.repeats
    plan = deep_size(_spec(args, N, fracs[0], betas[0], args.seed)) + deep_size((N, fracs[0], betas[0], args.seed))
    require("train", f"-k/--repeats {args.repeats} ({runs} runs over the -N/-F/-b grid)", runs * plan)
    return [(N, f, b, args.seed + k) for N, f, b, k in product(sizes, fracs, betas, range(args.repeats))]


def _run_memory(args, N, n) -> float:
    """One run's network and evaluation (`memory`) and its history, which holds every step's point
    (2 N n parameters) and, during Adam, the two moments."""
    parameters = 2.0 * N * n
    history = FLOAT * parameters * (3 * (args.adam_epochs + 1) + args.lbfgs_iters + 1)
    return memory(N, args.backend or "auto") + history


def _spec(args, N, f, b, seed) -> dict:
    backend = {} if args.backend is None else {"backend": args.backend}
    return run_spec({"name": "linear_decay", "seed": seed, "N": N, "n_frac": f, "tau": args.tau,
                     "normalization": args.normalization, "init": args.init, **backend},
                    alpha=args.alpha, beta=b, optimizer=recipe(args.adam_epochs, args.learning_rate, args.lbfgs_iters))


def train(args) -> int:
    from tcnet import run
    from tcnet.store import RunWriter

    grid = _grid(args)
    specs = [_spec(args, N, f, b, seed) for N, f, b, seed in grid]
    plugins = args.registry
    from tcnet.spec import RunSpec
    for spec in specs:  # check every run's configuration before the first one starts
        RunSpec.from_dict(spec).resolve(plugins)
    failed = 0
    for i, (spec, (N, f, b, seed)) in enumerate(zip(specs, grid), 1):
        writer = RunWriter(args.file)
        t0 = time.perf_counter()
        res = run(spec, recorders=[writer], progress=not args.no_progress, plugins=args.registry)
        steps = res.history.steps
        losses = f"loss {steps[0].loss:.6g} -> {steps[-1].loss:.6g}" if steps else "no finite loss"
        print(f"[{i}/{len(specs)}] run {writer.run_id}: N={N} n_frac={f:g} beta={b:g} seed={seed}: "
              f"{losses}, {res.result.status}, {res.result.steps} steps, {res.result.evaluations} evaluations, "
              f"{time.perf_counter() - t0:.1f} s")
        divergent_steps("tcnet train", writer.run_id, steps)
        if res.result.status in NUMERICAL_FAILURES:
            failed += 1
            print(f"tcnet train: run {writer.run_id} {res.result.status}: {res.result.message}", file=sys.stderr)
    print(f"{len(specs)} run(s) written to {args.file}")
    return 1 if failed else 0


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
    divergent_steps("tcnet demo", writer.run_id, steps)
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
    history = {"demo": tuple(res.history.column(k) for k in ("step", "stage", "loss"))}
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
