"""tcnet: optimize dynamical network models with plugin losses, autograd gradients and HDF5 runs.

The framework: `Dynamics` (a model and its traceable state), `Loss` terms combined into an
`Objective`, `Optimizer`s reporting each step to a `Monitor` (an iterative one is an `Iterative`
update rule; settings are declared in `tcnet.settings`), pluggy `hookimpl` for plugins, `run` for one
optimization, `open` for reading a file as pandas tables and xarray arrays (`tcnet.reader`). The
science lives in plugins (the package `tcnet_plugins` and third parties).
"""
from tcnet.plugins import hookimpl, registry  # noqa: E402  (first: optim imports the marker)
from tcnet.dynamics import Dynamics, State
from tcnet.loss import Evaluation, Loss, NonFiniteError, Objective, Term
from tcnet.optim import Checkpoint, Iterative, Monitor, Optimizer, Result, StabilityWarning, Step
from tcnet.run import History, RunResult, run
from tcnet.spec import RunSpec
from tcnet.validate import ConfigError
from tcnet.version import __version__


def __getattr__(name):
    """`tcnet.open` is imported on first use: it brings pandas and xarray, which running and
    storing optimizations (and every study worker) do not need."""
    if name == "open":
        from tcnet.reader import open

        return open
    raise AttributeError(f"module 'tcnet' has no attribute {name!r}")


__all__ = [
    "Checkpoint", "ConfigError", "Dynamics", "Evaluation", "History", "Iterative", "Loss", "Monitor", "NonFiniteError",
    "Objective", "Optimizer", "Result", "RunResult", "RunSpec", "StabilityWarning", "State", "Step", "Term", "hookimpl",
    "registry", "run", "__version__",
]
