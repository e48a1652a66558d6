"""The `tcnet` command. Framework subcommands live here; plugins add theirs through the
`tcnet_commands` hook. `--plugin FILE` (repeatable) loads single-file plugins first, so their
dynamics, losses, optimizers and commands are available to every subcommand."""
import argparse
import sys

from tcnet import __version__
from tcnet.plugins import PluginError, registry


def _plugins(args) -> int:
    """List every registered dynamics, loss and optimizer with the plugin it came from."""
    entries = args.registry.all()
    width = max((len(e.name) for e in entries), default=4)
    for e in entries:
        print(f"{e.kind:<10} {e.name:<{width}}  {e.source}")
    return 1 if args.registry.failures else 0


def parser(plugins) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tcnet", description="Optimize network models with plugin losses; "
                                "save, load, simulate and compare runs (HDF5).")
    p.add_argument("--version", action="version", version=f"tcnet {__version__}")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="load a single-file plugin (.py); repeatable")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sp = sub.add_parser("plugins", help="list registered dynamics, losses and optimizers and their sources")
    sp.set_defaults(handler=_plugins)
    plugins.add_commands(sub)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    try:
        plugins = registry(known.plugin)
    except PluginError as err:
        print(f"tcnet: {err}", file=sys.stderr)
        return 2
    p = parser(plugins)
    args = p.parse_args(argv)
    for failure in plugins.failures:
        print(f"tcnet: {failure}", file=sys.stderr)
    if args.command is None:
        p.print_help()
        return 0
    args.registry = plugins
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
