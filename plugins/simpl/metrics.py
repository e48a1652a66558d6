"""SIMPL bookkeeping: the speckled validation mask, alignment to behaviour, and the metrics
reported per iteration (log-likelihood per spike, bits per spike, latent error)."""
import numpy as np
from scipy.special import gammaln

CHUNK_ROWS = 4096  # time bins per chunk of the metrics' (T, N) terms


def held_out_blocks(n_bins, block, fraction) -> tuple[int, int]:
    """(blocks held out per cell, blocks in all) of `validation_mask`: time cut into blocks of
    `block` bins, round(fraction * blocks) of them held out."""
    n_blocks = -(-n_bins // block)
    return int(round(fraction * n_blocks)), n_blocks


def validation_mask(n_bins, n_cells, block, fraction, seed):
    """Boolean (T, N): True on held-out entries. Time is cut into blocks of `block` bins; for each
    cell, round(fraction * n_blocks) blocks drawn at random (independently per cell) are held out."""
    rng = np.random.default_rng(seed)
    n_val, n_blocks = held_out_blocks(n_bins, block, fraction)
    held = np.zeros((n_blocks, n_cells), dtype=bool)
    for n in range(n_cells):
        held[rng.choice(n_blocks, size=n_val, replace=False), n] = True
    return np.repeat(held, block, axis=0)[:n_bins]


def monomials(x, degree):
    """Design matrix (T, K) of all monomials of total degree <= `degree` in the standardized
    coordinates of x (T, D), D = 1 or 2; the first column is the constant."""
    u = (x - x.mean(axis=0)) / x.std(axis=0)
    if u.shape[1] == 1:
        return u[:, 0:1] ** np.arange(degree + 1)
    return np.stack([u[:, 0] ** i * u[:, 1] ** (d - i) for d in range(degree + 1) for i in range(d, -1, -1)], axis=1)


def align(latent, behaviour, degree=1, angular=False):
    """The least-squares image of latent (T, D) in behaviour's coordinates by a polynomial map of
    total degree `degree` (1: the affine map of the published method), and its coefficients.
    On the circle (`angular`, degree 1) the map is a rotation, or a reflection and a rotation,
    whichever brings the latent closer to behaviour: the offset phi maximizing
    sum_t cos(s x_t + phi - b_t) is the angle of sum_t exp(i (b_t - s x_t)), s = +-1; the
    coefficients are (s, phi).

    Why a higher degree can help: EM's likelihood does not change under a smooth invertible warp
    of the latent (the tuning curves warp with it), so a warp picked up in the first iterations
    decays only slowly. Behaviour noise that is independent of position makes E[behaviour | latent]
    the map from the latent back to the true position, warp included; a polynomial regression
    estimates it. The price: a genuine smooth discrepancy between latent and behaviour is removed
    too, so keep degree 1 when such a discrepancy is what you are looking for."""
    if angular:
        x, b = latent[:, 0], behaviour[:, 0]
        resultants = [np.mean(np.exp(1j * (b - s * x))) for s in (1.0, -1.0)]
        k = int(np.abs(resultants[1]) > np.abs(resultants[0]))
        s, phi = (1.0, -1.0)[k], float(np.angle(resultants[k]))
        return np.mod(s * latent + phi, 2 * np.pi), np.array([s, phi])
    design = monomials(latent, degree)
    coef, *_ = np.linalg.lstsq(design, behaviour, rcond=None)
    return design @ coef, coef


def metrics(y, rates, dt, val, latent=None, truth=None, space=None, log_factorial=None):
    """Per-iteration scalars from counts y (T, N), rates at the latent (T, N, Hz), mask val (T, N):
    train_ll and val_ll (nats per spike of that split), bits_per_spike (validation information
    gain over each cell's mean training rate) and, when the truth is known, latent_error (mean
    distance |latent - truth| in the space's unit: m, or rad along the circle).

    One pass over (T, N) for the model's log-probabilities y log(r dt) - r dt - log y! (log y!
    may be passed in: it depends on the counts only), in chunks of CHUNK_ROWS bins: a (T, N)
    float64 temporary is larger than the allocator keeps for reuse, so each would be fresh pages
    that the kernel must zero, which took longer than the arithmetic. The constant-rate reference
    needs only per-cell sums of the validation entries."""
    train = ~val
    ll_all = ll_val = log_fact_val = 0.0
    for s in range(0, y.shape[0], CHUNK_ROWS):
        c = slice(s, s + CHUNK_ROWS)
        rate_dt = rates[c] * dt
        log_fact = gammaln(y[c] + 1.0) if log_factorial is None else log_factorial[c]
        log_fact_val += float(np.sum(log_fact, where=val[c]))
        terms = y[c] * np.log(rate_dt) - rate_dt - log_fact
        ll_all += float(terms.sum())
        ll_val += float(np.sum(terms, where=val[c]))
    ll_train = ll_all - ll_val
    n_val_spikes = np.sum(y, axis=0, where=val)
    n_train = float(y.sum() - n_val_spikes.sum())
    mean_rate_dt = np.maximum(np.sum(y, axis=0, where=train) / train.sum(axis=0), 1e-12)
    ll_const = float(np.sum(n_val_spikes * np.log(mean_rate_dt) - mean_rate_dt * val.sum(axis=0))) - log_fact_val
    n_val = float(n_val_spikes.sum())
    out = {
        "train_ll": ll_train / n_train,
        "val_ll": ll_val / n_val,
        "bits_per_spike": (ll_val - ll_const) / (n_val * np.log(2)),
    }
    if truth is not None:
        out["latent_error"] = space.error(latent, truth)
    return out
