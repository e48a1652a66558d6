"""E/I rate model whose weights learn from a homeostatic loss (seeds/ei_learning_rule_from_loss.md).

- `model`: closed forms of the two-population model (Up state, every fixed point, the regime a
  kicked trial reaches, stability, set-point weights, sensitivities);
- `rules`: the five learning rules' dW, their natural scale, and when learning has converged;
- `trials`: the integrators (RK45 and the compiled noisy Euler trial) and the trial protocol;
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
