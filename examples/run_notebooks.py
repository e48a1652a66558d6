"""Execute every tutorial notebook of examples/ headless, as a user would, outside the source tree.

    .venv/bin/python examples/run_notebooks.py [--fast] [--out out/notebooks] [NAME ...]
    make notebooks              # FAST=1 make notebooks: the small version (TCNET_FAST=1)

Each tutorial (a jupytext percent-format .py file) runs top to bottom in a Jupyter kernel of this
interpreter, from the directory the command is run in, so it writes its files where its text says
(out/<name>/); the executed notebook, outputs and figures included, is saved as <out>/<name>.ipynb.
Nothing is written into examples/. Prints one line per notebook; the exit status is 1 if any cell
of any notebook raised (its error in that line), else 0.
"""
import argparse
import os
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def tutorials() -> dict[str, Path]:
    """The tutorial notebooks by name: the .py files of examples/ that open with a notebook header
    (jupytext's percent format writes '# ---' then '# jupyter:')."""
    return {p.stem: p for p in sorted(EXAMPLES.glob("*.py")) if p.read_text().startswith("# ---\n# jupyter:")}


def execute(path: Path, out: Path, timeout: int = 3600) -> Path:
    """Run notebook `path` in a kernel of this interpreter from the current directory; write it,
    executed, to out/<name>.ipynb (also when a cell raised, up to that cell) and return that path."""
    import jupytext
    import nbclient
    import nbformat

    nb = jupytext.read(path)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                     resources={"metadata": {"path": os.getcwd()}})
    target = out / f"{path.stem}.ipynb"
    try:
        client.execute()
    finally:
        nbformat.write(nb, target)
    return target


def main(argv=None) -> int:
    names = tutorials()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"notebooks to run (default: all: {', '.join(names)})")
    p.add_argument("--fast", action="store_true", help="the small version of each (TCNET_FAST=1)")
    p.add_argument("--out", default="out/notebooks", help="folder of the executed notebooks (default out/notebooks)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in names]
    if unknown:
        p.error(f"unknown notebook(s) {', '.join(unknown)}; the tutorials are {', '.join(names)}")
    out = Path(args.out)
    if out.resolve().is_relative_to(EXAMPLES):
        p.error(f"--out must be outside the source folder {EXAMPLES}, got {args.out!r}")
    out.mkdir(parents=True, exist_ok=True)
    if args.fast:
        os.environ["TCNET_FAST"] = "1"
    os.environ.pop("MPLBACKEND", None)  # the kernel draws inline figures
    failed = 0
    for name in args.names or names:
        start = time.perf_counter()
        try:
            target = execute(names[name], out)
            print(f"{name}: ok ({time.perf_counter() - start:.0f} s) -> {target}", flush=True)
        except Exception as err:  # a cell raised (nbclient's CellExecutionError) or the kernel died
            failed += 1
            last = [line for line in str(err).splitlines() if line.strip()][-1:] or [type(err).__name__]
            print(f"{name}: FAILED ({time.perf_counter() - start:.0f} s): {last[0].strip()} "
                  f"(the notebook up to that cell: {out / (name + '.ipynb')})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
