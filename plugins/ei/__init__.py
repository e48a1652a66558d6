"""E/I rate model whose weights learn from a homeostatic loss (seeds/ei_learning_rule_from_loss.md).

- `model`: closed forms of the two-population model (Up state, every fixed point, the regime a
  kicked trial reaches, stability, set-point weights, sensitivities);
- `rules`: the five learning rules' dW, their natural scale, and when learning has converged;
- `trials`: the integrators (RK45 and the compiled noisy Euler trial) and the trial protocol;
- `dynamics`: `ei_rate`; `losses`: `homeostatic`; `optimizers`: the five learning rules
  (plugin names are per kind, so the loss and the naive rule share the name `homeostatic`);
- `study`: the rules compared across initial weights; `figures`; `cli`: `tcnet ei-study`;
- K-population circuits: `circuit` (`ei_circuit`, steady states by tcnet.steady), `presets` (published
  circuits), `circuit_trials` (the noisy trial for K populations), `losses` (`set_points`) and
  `loss_rule` (`loss_rule`: dW = -alpha dL/dW for any loss of the steady rates), and
  `circuit_figures` (a learning run's steady rates, the response matrices dr*/dh).
"""
from tcnet import hookimpl
from tcnet_plugins.ei.circuit import EICircuit
from tcnet_plugins.ei.dynamics import EIRate
from tcnet_plugins.ei.loss_rule import LossRule
from tcnet_plugins.ei.losses import Homeostatic, SetPoints
from tcnet_plugins.ei.optimizers import CrossHomeostatic, Exact, NaiveHomeostatic, SmallWeight, UpState


@hookimpl
def tcnet_dynamics():
    return [EIRate, EICircuit]


@hookimpl
def tcnet_losses():
    return [Homeostatic, SetPoints]


@hookimpl
def tcnet_optimizers():
    return [Exact, SmallWeight, UpState, CrossHomeostatic, NaiveHomeostatic, LossRule]


@hookimpl
def tcnet_commands(subparsers):
    from tcnet_plugins.ei.cli import add_command

    add_command(subparsers)
