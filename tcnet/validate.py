"""Checks of user input that fail with an error naming the parameter and what is allowed.

Every configuration value that reaches tcnet from a user (Python keyword, CLI flag, study file)
passes through one of these, so that bad input is reported where it enters, in one line.
"""
import difflib
import math
from numbers import Integral, Real
from pathlib import Path

import numpy as np


class ConfigError(ValueError):
    """A configuration value is outside what is allowed; the message names both."""


def _fail(owner, name, allowed, value):
    raise ConfigError(f"{owner}: {name} must be {allowed}, got {value!r}")


def real(owner, name, value, *, low=None, high=None, low_open=False, high_open=False):
    """A finite real number within [low, high] (or open ends where asked)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        _fail(owner, name, "a finite real number", value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        _fail(owner, name, f"in {left}{lo}, {hi}{right}", value)
    return float(value)


def positive(owner, name, value):
    """A finite real number > 0."""
    return real(owner, name, value, low=0, low_open=True)


def integer(owner, name, value, *, low=None, high=None):
    """An integer within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        _fail(owner, name, "an integer", value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        _fail(owner, name, f"an integer in [{lo}, {hi}]", value)
    return int(value)


SEED_BOUND = 2**32
"""Seeds are integers in [0, 2^32): what numpy's legacy RandomState accepts, and what every
generator tcnet seeds can take."""


def seed(owner, name, value):
    """A random seed: an integer in [0, 2^32)."""
    return integer(owner, name, value, low=0, high=SEED_BOUND - 1)


def choice(owner, name, value, allowed):
    """One of a fixed set of strings."""
    if value not in allowed:
        _fail(owner, name, "one of " + ", ".join(map(repr, allowed)), value)
    return value


def array(owner, name, value, shape=None):
    """A finite float array, optionally of an exact shape (None in `shape` matches any length)."""
    a = np.asarray(value)
    if not np.issubdtype(a.dtype, np.number):
        _fail(owner, name, "a numeric array", a.dtype)
    if shape is not None and (
        a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape))
    ):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ConfigError(f"{owner}: {name} must have shape {want}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{owner}: {name} must be finite, found {np.count_nonzero(~np.isfinite(a))} non-finite entries")
    return a


def no_extra(owner, given, allowed):
    """Reject unknown keyword settings in one line: each unknown name with the closest accepted
    one where one is close (`stability: unknown setting 'wieght' (did you mean 'weight'?)`), then
    the accepted names."""
    extra = sorted(set(given) - set(allowed), key=str)
    if extra:
        named = ", ".join(f"{k!r}{closest(k, allowed)}" for k in extra)
        raise ConfigError(f"{owner}: unknown setting{'s' if len(extra) > 1 else ''} {named}; "
                          f"accepted: {', '.join(sorted(allowed)) or 'none'}")


def closest(name, allowed) -> str:
    """' (did you mean X?)' for the allowed name closest to `name`, where one is close; else ''."""
    close = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


HDF5_SUFFIXES = (".h5", ".hdf5")


def output_file(owner, name, value, suffixes=HDF5_SUFFIXES) -> Path:
    """An output file's name, the same way for every command: one without an extension gets the
    first of `suffixes` (`--out out/sim` writes out/sim.h5), one with another extension is refused."""
    path = Path(value)
    if path.is_dir() or str(value).endswith(("/", ".")):  # not a file name: check_new says so
        return path
    if not path.suffix:
        return path.with_name(path.name + suffixes[0])
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{owner}: {name} must end in {' or '.join(suffixes)} (or have no extension, which "
                          f"adds {suffixes[0]}), got {str(value)!r}")
    return path
