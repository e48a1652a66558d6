"""The loss `simpl_nll`: minus the mean Poisson log-likelihood per spike (nats) of the validation
entries (`split="val"`, default) or of the training entries, under the tuning curves fitted to the
training entries at the state's latent.

It is a plain numpy function and NOT differentiable (the KDE through a 36000-bin latent would be a
huge autograd tape): gradient optimizers reject it with a ConfigError (`SimplState.latent`); the
`simpl` optimizer evaluates it directly. Its side results hand the optimizer's E-step the M-step it
starts from, and the loop the metrics it records.
"""
from tcnet import ConfigError, Loss
from tcnet.settings import Choice, Settings

from tcnet_plugins.simpl.dynamics import SimplState


class SimplNLL(Loss):
    """Minus the Poisson log-likelihood per spike (nats) of the `split` entries (see module doc).
    Side results (aux): the state's metrics and its M-step, `fields` and the grid `axis_<i>`,
    which the `simpl` optimizer's E-step starts from."""

    name = "simpl_nll"
    SETTINGS = Settings(Choice("split", "val", "whose log-likelihood: the held-out entries ('val', which stopping "
                               "reads) or the training entries ('train', which the M-step fits)",
                               options=("val", "train")))

    def __call__(self, state):
        if not isinstance(state, SimplState):
            raise ConfigError("simpl_nll: needs the dynamics simpl_latent")
        aux = {**state.metrics, "fields": state.fields, "log_occupancy": state.log_occupancy,
               **{f"axis_{i}": a for i, a in enumerate(state.axes)}}
        return -state.metrics[f"{self.config['split']}_ll"], aux
