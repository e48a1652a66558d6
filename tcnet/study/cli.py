"""The `tcnet study` and `tcnet plot-study` subcommands (registered by tcnet.cli)."""
import dataclasses
import io
import sys
from pathlib import Path

import tcnet.study
from tcnet.store import check_new, write_bytes
from tcnet.study.core import Study, exit_code
from tcnet.validate import ConfigError, output_file


DASK_TIMEOUT = 10  # seconds to reach the scheduler


def add_commands(sub) -> None:
    """The `tcnet study` and `tcnet plot-study` subcommands."""
    sp = sub.add_parser("study", help="run a study file (grid of runs) into one HDF5 file, resumably, "
                        "and print its summary table", description=tcnet.study.__doc__.split("\n\n")[0])
    sp.add_argument("study_file", metavar="STUDY.toml")
    sp.add_argument("-o", "--out", metavar="FILE.h5", help="HDF5 file of the runs (default: <study name>.h5)")
    where = sp.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: the CPU count)")
    where.add_argument("--dask-scheduler", metavar="ADDRESS",
                       help="submit the runs to this dask.distributed scheduler (e.g. tcp://host:8786)")
    sp.add_argument("--retry-failed", action="store_true", help="run again the runs stored as failed")
    sp.add_argument("--summary", action="store_true", help="do not run anything: summarize the file")
    sp.add_argument("--csv", metavar="PATH", help="write the summary table as CSV to PATH ('-': stdout)")
    sp.add_argument("--force", action="store_true", help="replace an existing --csv file")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.set_defaults(handler=_study_command)
    sp = sub.add_parser("plot-study", help="figures of a study: metrics against a swept key, one line per "
                        "other swept value; trade-offs of swept loss weights (PNG)")
    sp.add_argument("study_file", metavar="STUDY.toml")
    sp.add_argument("-o", "--out", metavar="FILE.h5", help="HDF5 file of the runs (default: <study name>.h5)")
    sp.add_argument("--prefix", help="figure path prefix (default: FILE without .h5)")
    sp.add_argument("--x", help="swept key on the x axis (default: the numeric key with the most values)")
    sp.add_argument("--metric", action="append", help="metric to draw (repeatable; default: loss and "
                    "the headline summary metrics the dynamics declares, else the terms)")
    sp.set_defaults(handler=_plot_study_command)


def _cli_study(args) -> tuple[Study, Path]:
    study = Study.from_toml(args.study_file)
    if args.plugin:
        study = dataclasses.replace(study, plugin_files=study.plugin_files + tuple(args.plugin))
    return study, output_file(args.command, "--out", args.out) if args.out else Path(f"{study.name}.h5")


def _study_command(args) -> int:
    """Run (unless --summary) the study into its file, then print or write its summary table."""
    study, path = _cli_study(args)
    if args.csv and args.csv != "-":
        check_new(args.csv, args.force, keep=[path])  # before the study runs; never the study's own file
    if not args.summary:
        client = None
        if args.dask_scheduler:
            from distributed import Client

            try:
                client = Client(args.dask_scheduler, timeout=DASK_TIMEOUT)
            except (ValueError, OSError, TimeoutError) as err:
                raise ConfigError(f"study: --dask-scheduler must be the address of a running dask scheduler "
                                  f"(e.g. tcp://host:8786), got {args.dask_scheduler!r} ({err})") from None
        try:
            report = study.run(path, client, workers=args.workers, progress=not args.no_progress)
        finally:
            if client is not None:
                client.close()
        print(f"{study.name}: {report} -> {path}", file=sys.stderr)
        for line in report.failed + report.lost + report.numerical:
            print(f"  {line}", file=sys.stderr)
    elif not path.exists():
        raise ConfigError(f"study: no file {path} to summarize (run the study first)")
    else:
        report = None
    table = study.table(path)
    status = exit_code(report, table.statuses)
    if args.csv == "-":
        table.to_csv(sys.stdout)
    else:
        print(table.format())
        if args.csv:
            text = io.StringIO(newline="")
            table.to_csv(text)
            write_bytes(args.csv, text.getvalue().encode(), args.force, keep=[path])
    return status


def _plot_study_command(args) -> int:
    """Draw the study's figures from its file; print their paths."""
    from tcnet.plot import study_figures

    study, path = _cli_study(args)
    if not path.exists():
        raise ConfigError(f"plot-study: no file {path} (run the study first)")
    prefix = args.prefix or str(path.with_suffix(""))
    for figure in study_figures(study.table(path), prefix, args.x, args.metric):
        print(figure)
    return 0
