"""Settings declared once: name, default, allowed values and one line saying what it does.

Every plugin kind that takes settings (a dynamics, a loss, an optimizer) declares them as a
`Settings` tuple of `Real`, `Integer`, `Flag`, `Choice`, `Text`, `Array` or plain `Setting`
entries, as nengo declares its parameters::

    SETTINGS = Iterative.SETTINGS + Settings(
        Real("lr", 0.01, "gradient step", low=0, low_open=True),
        Real("tau", 0.01, "membrane time constant", low=0, low_open=True, unit="s"),
        Text("quantity", REQUIRED, "the state quantity to constrain"),
    )

From that one declaration follow the defaults, the validation of given values (one line naming
the setting and what is allowed, with the closest declared name for a misspelled one), the saved
configuration (the values with defaults filled in), the help text (`help_lines`, printed by
`tcnet plugins NAME`), the generated docs/SETTINGS.md and every mirror of a plugin's settings
(estimator keywords, command-line flags).

- A default of None means "not set" and is always allowed; the doc says what None stands for.
- `REQUIRED` as the default: the setting has no default and must be given.
- `unit`: the unit of a number, shown in the help.
- `stored=False` (dynamics only): the setting says how a new instance is built (its initial
  arrays, the data file it reads) and is not part of the instance's configuration.

Adding Settings replaces entries of the same name, so a subclass changes a default by declaring
the setting again, or with `with_defaults(steps=3000)`. Checks that relate several settings stay
in the class's `check()`.
"""
import json
import math
import warnings
from dataclasses import dataclass, field, replace
from numbers import Integral, Real as _Number

from tcnet.validate import ConfigError, choice, integer, no_extra, real


class _Required:
    """The default of a setting that must be given (`REQUIRED`)."""

    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Setting:
    """A setting with any JSON value; subclasses restrict the values (`check`, `allowed`)."""

    name: str
    default: object
    doc: str
    unit: str = field(default="", kw_only=True)
    stored: bool = field(default=True, kw_only=True)

    def validate(self, owner: str, value) -> None:
        """Raise ConfigError naming the setting if `value` is not allowed (None is allowed where
        it is the default)."""
        if value is None and self.default is None:
            return
        self.check(owner, value)

    def check(self, owner: str, value) -> None:
        """Raise ConfigError naming the setting if the (non-None) `value` is not allowed."""
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{owner}: {self.name} must be a JSON value (numbers, strings, lists, "
                              f"tables), got {value!r}") from None

    def allowed(self) -> str:
        return "any value"

    def help(self) -> str:
        unit = f" [{self.unit}]" if self.unit else ""
        allowed = self.allowed() + (" or null" if self.default is None else "")
        default = "required" if self.default is REQUIRED else f"default {json.dumps(self.default)}"
        return f"{self.name}{unit}: {self.doc} ({allowed}; {default})"


def _interval(low, high, low_open, high_open) -> str:
    left, right = ("(" if low_open else "["), (")" if high_open else "]")
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


@dataclass(frozen=True)
class Real(Setting):
    """A finite real number within [low, high] (open ends where asked)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, owner, value):
        real(owner, self.name, value, low=self.low, high=self.high, low_open=self.low_open, high_open=self.high_open)

    def allowed(self):
        return "a real number in " + _interval(self.low, self.high, self.low_open, self.high_open)


@dataclass(frozen=True)
class Integer(Setting):
    """An integer within [low, high]."""

    low: int | None = None
    high: int | None = None

    def check(self, owner, value):
        integer(owner, self.name, value, low=self.low, high=self.high)

    def allowed(self):
        return "an integer in " + _interval(self.low, self.high, False, False)


@dataclass(frozen=True)
class Text(Setting):
    """A non-empty string; `doc` says what it names (and is the error message's 'must be')."""

    def check(self, owner, value):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{owner}: {self.name} must be {self.doc} (a non-empty string), got {value!r}")

    def allowed(self):
        return "a non-empty string"


@dataclass(frozen=True)
class Flag(Setting):
    """true or false."""

    def check(self, owner, value):
        if not isinstance(value, bool):
            raise ConfigError(f"{owner}: {self.name} must be true or false, got {value!r}")

    def allowed(self):
        return "true or false"


@dataclass(frozen=True)
class Array(Setting):
    """A number or a (nested) list of finite numbers; `shape` fixes its dimensions where given
    (None in it: any length; () a single number), `integer` asks for integers, `low` a lower bound."""

    shape: tuple | None = None
    integer: bool = False
    low: float | None = None

    def check(self, owner, value):
        value = value.tolist() if hasattr(value, "tolist") else value  # a numpy array given from Python
        numbers = list(_leaves(value))
        kind = "integers" if self.integer else "finite numbers"
        if not all(_is_number(x, self.integer) for x in numbers):
            raise ConfigError(f"{owner}: {self.name} must be {self.allowed()}, got {value!r}")
        if self.low is not None and any(x < self.low for x in numbers):
            raise ConfigError(f"{owner}: {self.name} must hold {kind} >= {self.low:g}, got {value!r}")
        if self.shape is not None:
            got = _shape(value)
            if got is None or len(got) != len(self.shape) or any(
                    want is not None and want != n for want, n in zip(self.shape, got)):
                raise ConfigError(f"{owner}: {self.name} must be {self.allowed()}, got {value!r}")

    def allowed(self):
        what = "integers" if self.integer else "numbers"
        if self.shape is None:
            return f"{'an integer' if self.integer else 'a number'} or a list of {what}"
        if self.shape == ():
            return "an integer" if self.integer else "a number"
        dims = " x ".join("n" if n is None else str(n) for n in self.shape)
        return f"a {dims} list of {what}" if len(self.shape) > 1 else f"a list of {dims} {what}"


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _is_number(x, integral) -> bool:
    if isinstance(x, bool) or not isinstance(x, _Number):
        return False
    return isinstance(x, Integral) if integral else math.isfinite(x)


def _shape(value) -> tuple | None:
    """The dimensions of a nested list (None where it is ragged)."""
    if not isinstance(value, (list, tuple)):
        return ()
    inner = {_shape(v) for v in value}
    if len(inner) > 1 or None in inner:
        return None
    return (len(value), *(inner.pop() if inner else ()))


@dataclass(frozen=True)
class Choice(Setting):
    """One of a fixed set of values."""

    options: tuple = ()

    def check(self, owner, value):
        choice(owner, self.name, value, self.options)

    def allowed(self):
        return "one of " + ", ".join(map(json.dumps, self.options))  # as a spec writes them


class Settings(tuple):
    """An ordered set of declared settings; `a + b` is a with b's entries added or replacing."""

    def __new__(cls, *settings: Setting):
        return super().__new__(cls, settings)

    def __add__(self, other: "Settings") -> "Settings":
        names = {s.name for s in other}
        return Settings(*(s for s in self if s.name not in names), *other)

    def with_defaults(self, **defaults) -> "Settings":
        """The same declarations with other defaults."""
        unknown = sorted(set(defaults) - set(self.names))
        if unknown:
            raise KeyError(f"no declared setting(s) {', '.join(unknown)}")
        return Settings(*(replace(s, default=defaults[s.name]) if s.name in defaults else s for s in self))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self)

    @property
    def defaults(self) -> dict:
        return {s.name: s.default for s in self}

    def resolve(self, owner: str, given: dict) -> dict:
        """The given values with defaults filled in, each checked against its declaration; an
        unknown name is refused with the closest declared one (`validate.no_extra`)."""
        no_extra(owner, given, self.names)
        missing = [s for s in self if s.default is REQUIRED and s.name not in given]
        if missing:
            raise ConfigError(f"{owner}: " + "; ".join(f"{s.name} must be given: {s.doc} ({s.allowed()})"
                                                       for s in missing))
        values = {**self.defaults, **given}
        for s in self:
            s.validate(owner, values[s.name])
        return values

    def kept(self) -> "Settings":
        """The settings an instance keeps in its configuration (those `stored`)."""
        return Settings(*(s for s in self if s.stored))

    def help_lines(self) -> list[str]:
        return [s.help() for s in self]


class UncheckedSettingsWarning(UserWarning):
    """A plugin takes settings it does not declare (no SETTINGS): its keys are not checked."""


_warned: set = set()


def warn_unchecked(kind: str, name: str, config) -> None:
    """Warn, once per plugin, that a plugin declaring no SETTINGS was given settings."""
    if config and (kind, name) not in _warned:
        _warned.add((kind, name))
        warnings.warn(f"{kind} {name!r} declares no SETTINGS: its keys {', '.join(map(repr, config))} are not "
                      "checked (a misspelled key is ignored or fails late)", UncheckedSettingsWarning, stacklevel=3)


__all__ = ["REQUIRED", "Array", "Choice", "Flag", "Integer", "Real", "Setting", "Settings", "Text", "UncheckedSettingsWarning",
           "warn_unchecked"]
