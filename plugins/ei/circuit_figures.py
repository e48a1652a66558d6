"""Figures of K-population circuits (`ei_circuit`): a learning run's steady rates against its steps
with the set points, and the steady-state responses dr*/dh of circuits side by side with their
counter-intuitive entries marked.

A response entry dr_k*/dh_j (row k: the population whose steady rate moves, column j: the one
that receives a small extra input; `CircuitState.response`, -A^-1 F_u of tcnet.steady) is marked

- *paradoxical* on the diagonal where an inhibitory population's own rate falls when its own
  input rises (`CircuitState.paradoxical`: an inhibition-stabilized circuit);
- *reversed* off the diagonal where a direct connection j -> k exists and the response has the
  opposite sign of that connection (an inhibitory population whose extra input raises its target,
  as VIP input raises SST in the high-baseline del Molino circuit but lowers it at low baseline:
  the response reversal; or an excitatory one whose extra input lowers its target).

`draw_*` build the figure and return it (open, for a notebook or a test to read what is drawn);
`plot_*` draw and write it through `tcnet.plot.save_figure` (tcnet.store.new_file: the file is
complete or absent).
"""
import numpy as np
from matplotlib.patches import Rectangle

from tcnet.plot import plt, save_figure


def learning_rates(steps, populations, prefix="qss") -> np.ndarray:
    """(S, K): the steady rates `loss_rule` reported at each step of a run's history (`prefix`
    "qss": the steady state of that step's weights; "r": the rates the rule saw)."""
    return np.array([[s.extra[f"{prefix}_{p}"] for p in populations] for s in steps], dtype=float)


def draw_learning(rates, populations, set_points, title="steady rates while learning"):
    """One line per population: its rates (S, K) against the step, its set point dashed in the
    same colour."""
    rates = np.asarray(rates, dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    steps = np.arange(len(rates))
    for k, (name, target) in enumerate(zip(populations, set_points)):
        ax.plot(steps, rates[:, k], color=f"C{k}", label=name)
        ax.axhline(target, color=f"C{k}", ls="--", lw=1.0)
    ax.plot([], [], color="0.4", ls="--", lw=1.0, label="set points")
    ax.set(xlabel="learning step", ylabel="steady rate [Hz]", title=title)
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_learning(rates, populations, set_points, path, force=True, **kwargs):
    """`draw_learning` written to `path` (replaced only with `force`)."""
    return save_figure(draw_learning(rates, populations, set_points, **kwargs), path, force=force, dpi=110)


def marks(response, sign, W) -> tuple[np.ndarray, np.ndarray]:
    """(paradoxical, reversed): K x K masks of the response's counter-intuitive entries (module
    docstring), for the presynaptic signs `sign` (K,) and the weight magnitudes W (K x K)."""
    response, sign, W = np.asarray(response), np.asarray(sign), np.asarray(W)
    K = len(sign)
    paradoxical = np.diag((sign < 0) & (np.diag(response) < 0))
    direct = (W > 0) & ~np.eye(K, dtype=bool)
    reversed_ = direct & (np.sign(response) == -sign[None, :])
    return paradoxical, reversed_


def draw_responses(panels, populations, title="steady-state response dr*/dh [Hz per unit input]"):
    """One heat map per (label, circuit) in `panels` (an `ei_circuit` at its weights): its
    response matrix, each entry written in its cell, paradoxical entries boxed solid and
    reversed ones dashed (gid "paradoxical" / "reversed"); one symmetric colour scale for all
    (its bar beside the last panel)."""
    responses = [np.asarray(net.state().response) for _, net in panels]
    scale = max(float(np.max(np.abs(r))) for r in responses)
    K = len(populations)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.0, 3.8), squeeze=False)
    for ax, (label, net), response in zip(axes[0], panels, responses):
        image = ax.imshow(response, cmap="RdBu_r", vmin=-scale, vmax=scale)
        for (k, j), value in np.ndenumerate(response):
            ax.text(j, k, f"{value:+.2f}", ha="center", va="center", fontsize=7)
        for gid, mask, ls in zip(("paradoxical", "reversed"), marks(response, net.sign, net.arrays["W"]),
                                 ("-", "--")):
            for k, j in zip(*np.nonzero(mask)):
                ax.add_patch(Rectangle((j - 0.45, k - 0.45), 0.9, 0.9, fill=False, lw=2.0, ls=ls, ec="k", gid=gid))
        ax.set_xticks(range(K), populations)
        ax.set_yticks(range(K), populations)
        ax.set(xlabel="input to", ylabel="rate of", title=label)
        ax.title.set_fontsize(9)
    fig.colorbar(image, ax=axes[0, -1], shrink=0.8)
    fig.suptitle(f"{title}\nsolid box: paradoxical (own input lowers own rate); dashed: reversed "
                 f"(against the direct connection's sign)", fontsize=9)
    return fig


def plot_responses(panels, populations, path, force=True, **kwargs):
    """`draw_responses` written to `path` (replaced only with `force`)."""
    return save_figure(draw_responses(panels, populations, **kwargs), path, force=force, dpi=110)
