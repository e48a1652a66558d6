"""SIMPL bookkeeping: the speckled validation mask, linear alignment to behaviour, and the metrics
reported per iteration (log-likelihood per spike, bits per spike, latent error)."""
import numpy as np
from scipy.special import gammaln


def validation_mask(n_bins, n_cells, block, fraction, seed):
    """Boolean (T, N): True on held-out entries. Time is cut into blocks of `block` bins; for each
    cell, round(fraction * n_blocks) blocks drawn at random (independently per cell) are held out."""
    rng = np.random.default_rng(seed)
    n_blocks = -(-n_bins // block)
    n_val = int(round(fraction * n_blocks))
    held = np.zeros((n_blocks, n_cells), dtype=bool)
    for n in range(n_cells):
        held[rng.choice(n_blocks, size=n_val, replace=False), n] = True
    return np.repeat(held, block, axis=0)[:n_bins]


def align(latent, behaviour):
    """The affine image [latent, 1] A of latent closest to behaviour in least squares, and A (3, 2)."""
    design = np.column_stack([latent, np.ones(latent.shape[0])])
    A, *_ = np.linalg.lstsq(design, behaviour, rcond=None)
    return design @ A, A


def poisson_ll(y, rate_dt, where):
    """Sum of the Poisson log-probabilities log P(y | rate dt) over the entries where `where`."""
    terms = y * np.log(rate_dt) - rate_dt - gammaln(y + 1)
    return float(terms[where].sum())


def metrics(y, rates, dt, val, latent, truth):
    """Per-iteration scalars from counts y (T, N), rates at the latent (T, N, Hz), mask val (T, N):
    train_ll and val_ll (nats per spike of that split), bits_per_spike (validation information
    gain over each cell's mean training rate) and latent_error_cm (mean |latent - truth|)."""
    train = ~val
    rate_dt = rates * dt
    n_train, n_val = y[train].sum(), y[val].sum()
    ll_train = poisson_ll(y, rate_dt, train)
    ll_val = poisson_ll(y, rate_dt, val)
    mean_rate_dt = (y * train).sum(axis=0) / train.sum(axis=0)
    ll_const = poisson_ll(y, np.broadcast_to(np.maximum(mean_rate_dt, 1e-12), y.shape), val)
    out = {
        "train_ll": float(ll_train / n_train),
        "val_ll": float(ll_val / n_val),
        "bits_per_spike": float((ll_val - ll_const) / (n_val * np.log(2))),
    }
    if truth is not None:
        out["latent_error_cm"] = float(100 * np.linalg.norm(latent - truth, axis=1).mean())
    return out
