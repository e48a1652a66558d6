"""Settings declared once: name, default, allowed values and one line saying what it does.

A class that takes settings (an optimizer, a dynamics' configuration) declares them as a
`Settings` tuple of `Real`, `Integer`, `Choice`, `Text` or plain `Setting` entries, as nengo
declares its parameters::

    SETTINGS = Iterative.SETTINGS + Settings(
        Real("lr", 0.01, "gradient step", low=0, low_open=True),
        Real("beta1", 0.9, "decay of the first-moment average", low=0, high=1, high_open=True),
    )

From that one declaration follow the defaults, the validation of given values (one line naming
the setting and what is allowed), the saved configuration (the values with defaults filled in)
and the help text (`help_lines`, printed by `tcnet plugins NAME`). Adding Settings replaces
entries of the same name, so a subclass changes a default by declaring the setting again, or with
`with_defaults(steps=3000)`. Checks that relate several settings stay in the class's `check()`.
"""
from dataclasses import dataclass, replace

from tcnet.validate import ConfigError, choice, integer, no_extra, real


@dataclass(frozen=True)
class Setting:
    """A setting with any value (JSON-serializable); subclasses restrict the values."""

    name: str
    default: object
    doc: str

    def check(self, owner: str, value) -> None:
        """Raise ConfigError naming the setting if `value` is not allowed."""

    def allowed(self) -> str:
        return "any value"

    def help(self) -> str:
        return f"{self.name}: {self.doc} ({self.allowed()}; default {self.default!r})"


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
class Choice(Setting):
    """One of a fixed set of values."""

    options: tuple = ()

    def check(self, owner, value):
        choice(owner, self.name, value, self.options)

    def allowed(self):
        return "one of " + ", ".join(map(repr, self.options))


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
        """The given values with defaults filled in, each checked against its declaration."""
        no_extra(owner, given, self.names)
        values = {**self.defaults, **given}
        for s in self:
            s.check(owner, values[s.name])
        return values

    def help_lines(self) -> list[str]:
        return [s.help() for s in self]


__all__ = ["Choice", "Integer", "Real", "Setting", "Settings", "Text"]
