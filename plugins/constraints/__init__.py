"""Constraint methods (seeds/constraint_methods_slides.md): minimize f while g = 0 holds.

- `methods`: the `Equality` constraint loss and the optimizers `alternating`, `lagrangian`, `penalty`;
- `toy_gaussian`: the slides' 2-D oriented-Gaussian problem, its closed-form optimum and stability bounds;
- `basin`: `tcnet basin-map`, which starting points each method brings to the optimum.
"""
from tcnet import hookimpl
from tcnet_plugins.constraints.methods import Alternating, Equality, Lagrangian, Penalty, StateEquality
from tcnet_plugins.constraints.toy_gaussian import ToyConstraint, ToyGaussian, ToyObjective


@hookimpl
def tcnet_dynamics():
    return [ToyGaussian]


@hookimpl
def tcnet_losses():
    return [StateEquality, ToyObjective, ToyConstraint]


@hookimpl
def tcnet_optimizers():
    return [Alternating, Lagrangian, Penalty]


@hookimpl
def tcnet_commands(subparsers):
    from tcnet_plugins.constraints.basin import add_command

    add_command(subparsers)
