"""What a dynamics' numbers mean to a reader: labels, units and headline metrics.

The framework knows no model, so it cannot know in which unit a model's time runs, that its
state has named entries, or which of its `summary()` numbers a study of it is about. A `Dynamics`
subclass declares these as its class attribute `labels` (a `Labels`); tables (`tcnet study`),
figures (`tcnet plot-study`), the `simulate` printout and the labelled arrays of `tcnet.open`
show what it declares, and fall back to the raw key names where it declares nothing::

    class EIRate(Dynamics):
        labels = Labels(time=Quantity("t", "ms"), state=Quantity("rate", "Hz"), axis="population",
                        entries=("E", "I"), summary={"E_up": Quantity("Up-state rate E", "Hz")},
                        headline=("E_up",))
"""
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class Quantity:
    """A number as a person reads it: what it is (`label`) and its unit ('' for none)."""

    label: str
    unit: str = ""

    def __str__(self):
        return f"{self.label} ({self.unit})" if self.unit else self.label


@dataclass(frozen=True)
class Labels:
    """A dynamics' declaration of how its numbers are shown.

    time: the time axis of `simulate`; state: the value of one state entry; axis: the name of a
    state's last dimension (e.g. "unit", "population"); entries: the names of a state's entries
    when they have fixed names (e.g. ("E", "I")), else () and they are numbered; config, summary:
    labels of configuration keys and `summary()` keys; headline: the `summary()` keys that tables
    and study figures show by default (in this order)."""

    time: Quantity = Quantity("time")
    state: Quantity = Quantity("x")
    axis: str = "state"
    entries: tuple[str, ...] = ()
    config: Mapping[str, Quantity] = field(default_factory=dict)
    summary: Mapping[str, Quantity] = field(default_factory=dict)
    headline: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
        object.__setattr__(self, "summary", MappingProxyType(dict(self.summary)))

    def of_config(self, key: str) -> str:
        """The label of configuration key `key` (the key itself when undeclared)."""
        return str(self.config.get(key, key))

    def of_summary(self, key: str) -> str:
        """The label of summary key `key` (the key itself when undeclared)."""
        return str(self.summary.get(key, key))
