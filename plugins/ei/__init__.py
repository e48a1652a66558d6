"""E/I rate model whose weights learn from a homeostatic loss (seeds/ei_learning_rule_from_loss.md).

- `model`: closed forms of the two-population model (Up state, stability, set-point weights) and
  the learning rules' factors;
- `homeostasis`: the `ei_rate` dynamics, the `homeostatic` loss and the five learning-rule optimizers;
- `study`: `tcnet ei-study`, the rules compared across initial weights, with figures.
"""
from tcnet import hookimpl
from tcnet_plugins.ei.homeostasis import (CrossHomeostatic, EIRate, Exact, Homeostatic, NaiveHomeostatic,
                                          SmallWeight, UpState)


@hookimpl
def tcnet_dynamics():
    return [EIRate]


@hookimpl
def tcnet_losses():
    return [Homeostatic]


@hookimpl
def tcnet_optimizers():
    return [Exact, SmallWeight, UpState, CrossHomeostatic, NaiveHomeostatic]


@hookimpl
def tcnet_commands(subparsers):
    from tcnet_plugins.ei.study import add_command

    add_command(subparsers)
