"""Figures (matplotlib, Agg backend, PNG files).

This module fixes the backend once for all of tcnet and its plugins: figure code imports
`plt` from here (``from tcnet.plot import plt``) rather than choosing a backend itself. The backend
is Agg (files only, no window), unless one was chosen through MPLBACKEND: Jupyter kernels set it
to their inline backend, so figures drawn in a notebook show there.

Studies: `study_lines` draws metrics (mean ± std over repeats) against one swept key, one line per
value of the other swept keys; by default the final loss and the headline metrics the dynamics
declares (`Dynamics.labels`, tcnet.labels). `study_tradeoff` draws, for a swept loss weight, the
final value of that term against another term, one point per weight: the trade-off the weight
controls. `study_figures` picks both for a study and its table. Axis labels and units come from the
dynamics' declaration (`Table.labels`); an undeclared key is shown as it is.
"""
import json
import math
import os
from pathlib import Path

import matplotlib

if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tcnet.validate import ConfigError  # noqa: E402


def save_figure(fig, path, *, force: bool, dpi: int = 120) -> Path:
    """Lay out `fig`, write it to `path` (format from the suffix; PNG without one) and close it: the
    one way tcnet and its plugins save a figure. It goes through tcnet.store.new_file, so the file
    is written under a temporary name and renamed into place: a kill or an error while writing
    leaves `path` as it was, never a partial figure. An existing `path` is replaced only with
    `force`, and never while a tcnet writer holds it."""
    from tcnet.store import new_file
    try:
        fig.tight_layout()
        with new_file(path, force) as partial:
            fig.savefig(partial, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _log_scale(values) -> bool:
    """Log axis when every value is positive and they span more than 1.5 decades."""
    v = [x for x in values if math.isfinite(x)]
    return bool(v) and min(v) > 0 and max(v) / min(v) > 10**1.5


def default_x(table) -> str:
    """The swept numeric key with the most distinct values (ties: the last one in the file)."""
    best, count = None, 0
    for k in table.keys:
        values = {json.dumps(r[k]) for r in table.rows}
        if _numeric([r[k] for r in table.rows]) and len(values) >= count:
            best, count = k, len(values)
    if best is None:
        raise ConfigError("plot-study: no swept key has numeric values to put on the x axis")
    return best


def default_metrics(table) -> list[str]:
    """Final loss plus the headline summary metrics the dynamics declares, else the final terms."""
    headline = [f"summary/{k}" for k in table.labels.headline if f"summary/{k}" in table.metrics]
    return ["loss", *(headline or [m for m in table.metrics if m.startswith("terms/")])]


def label(table, key: str) -> str:
    """Axis label of a swept key or a table metric, from the dynamics' declared labels."""
    if key.startswith("summary/"):
        return f"{table.labels.of_summary(key[8:])} (final network)"
    if key.startswith("terms/"):
        return f"final {key[6:]}"
    if key.startswith("dynamics."):
        return table.labels.of_config(key[9:])
    return "final loss" if key == "loss" else key


def setting_name(table, key: str) -> str:
    """A swept key as a legend names it: a dynamics setting by its declared label, a loss term's
    setting as '<term> <setting>' (loss.smoothness.weight: 'smoothness weight'), else the key."""
    parts = key.split(".")
    if parts[0] == "dynamics":
        return table.labels.of_config(key[9:])
    if parts[0] == "loss" and len(parts) == 3:
        return f"{parts[1]} {parts[2]}"
    return key


def by_others(table, others) -> dict[str, list]:
    """The table's rows grouped by their values of the swept keys `others`, each group named
    '<setting> = <value>, ...' (every setting named, so the legend says what is swept)."""
    lines: dict[str, list] = {}
    for r in table.rows:
        lines.setdefault(", ".join(f"{setting_name(table, k)} = {r[k]:g}" if isinstance(r[k], float) else
                                   f"{setting_name(table, k)} = {r[k]}" for k in others), []).append(r)
    return lines


def study_lines(table, path, x=None, metrics=None, title="") -> Path:
    """One panel per metric: mean ± std against swept key `x`, one line per other-key combination."""
    x = x or default_x(table)
    metrics = metrics or default_metrics(table)
    if x not in table.keys:
        raise ConfigError(f"plot-study: x must be a swept key ({', '.join(table.keys)}), got {x!r}")
    unknown = [m for m in metrics if m not in table.metrics]
    if unknown:
        raise ConfigError(f"plot-study: unknown metric(s) {', '.join(unknown)}; the table has {', '.join(table.metrics)}")
    others = [k for k in table.keys if k != x]
    lines = by_others(table, others)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for name, rows in lines.items():
            rows = sorted(rows, key=lambda r: r[x])
            ax.errorbar([r[x] for r in rows], [r[f"{m}:mean"] for r in rows],
                        yerr=[0 if math.isnan(r[f"{m}:std"]) else r[f"{m}:std"] for r in rows],
                        marker="o", ms=4, capsize=3, label=name or None)
        ax.set_xlabel(label(table, x))
        ax.set_ylabel(label(table, m))
        if _log_scale([r[f"{m}:mean"] for r in table.rows]):
            ax.set_yscale("log")
        if others:
            ax.legend(fontsize=8, title=", ".join(setting_name(table, k) for k in others), title_fontsize=8)
    fig.suptitle(title or f"mean ± std over repeats (n per point: {sorted({r['n'] for r in table.rows})})")
    return save_figure(fig, path, force=True)


def study_tradeoff(table, path, weight_key, versus=None, title="") -> Path:
    """Term `<label>` (whose weight `weight_key` = loss.<label>.weight is swept) against the term
    `versus` (default: the first other term), one point per weight (mean ± std), annotated."""
    term = weight_key.split(".")[1]
    y = f"terms/{term}"
    x = versus or next((m for m in table.metrics if m.startswith("terms/") and m != y), None)
    if y not in table.metrics or x is None:
        raise ConfigError(f"plot-study: the trade-off needs the term values {y} and another term")
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    others = [k for k in table.keys if k != weight_key]
    for name, rows in by_others(table, others).items():  # one line per value of the other swept keys
        rows = sorted(rows, key=lambda r: r[weight_key])
        xs, ys = [r[f"{x}:mean"] for r in rows], [r[f"{y}:mean"] for r in rows]
        ax.errorbar(xs, ys, xerr=[_finite(r[f"{x}:std"]) for r in rows], yerr=[_finite(r[f"{y}:std"]) for r in rows],
                    marker="o", capsize=3, label=name or None)
        for r, xv, yv in zip(rows, xs, ys):
            ax.annotate(f"{r[weight_key]:g}", (xv, yv), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel(label(table, x))
    ax.set_ylabel(label(table, y))
    if _log_scale([r[f"{x}:mean"] for r in table.rows]):
        ax.set_xscale("log")
    if _log_scale([r[f"{y}:mean"] for r in table.rows]):
        ax.set_yscale("log")
    if others:
        ax.legend(fontsize=8, title=", ".join(setting_name(table, k) for k in others), title_fontsize=8)
    ax.set_title(title or f"trade-off as the {setting_name(table, weight_key)} varies (point labels)", fontsize=10)
    return save_figure(fig, path, force=True)


def _finite(v):
    return 0.0 if math.isnan(v) else v


def study_figures(table, prefix, x=None, metrics=None) -> list[Path]:
    """The standard figures of a study: metrics against `x` (when a numeric key is swept) and a
    trade-off figure for every swept loss weight (when there is another term). Files are `<prefix>_<what>.png`."""
    out = []
    numeric = [k for k in table.keys if _numeric([r[k] for r in table.rows])]
    if x or numeric:
        x = x or default_x(table)
        out.append(study_lines(table, f"{prefix}_vs_{x.split('.')[-1]}.png", x, metrics))
    for k in table.keys:
        parts = k.split(".")
        terms = [m for m in table.metrics if m.startswith("terms/")]
        if len(parts) == 3 and parts[0] == "loss" and parts[2] == "weight" and len(terms) > 1:
            out.append(study_tradeoff(table, f"{prefix}_tradeoff_{parts[1]}.png", k))
    return out
