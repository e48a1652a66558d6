"""SIMPL's M-step: tuning curves by Gaussian kernel density estimation on a grid.

For neuron n, training mask m_tn (1 where the bin is used for fitting), counts y_tn, latent x_t,
bin width dt and kernel K(d) = exp(-|d|^2 / (2 h^2)):

    f_n(g) = sum_t m_tn y_tn K(g - x_t) / (dt sum_t m_tn K(g - x_t))      (Hz)

at every grid point g. The kernel is separable, K(g - x) = prod_i k(g_i - x_i), and the two sums
are computed so that no (grid x time x cell) product is needed:

- numerator: only bins with spikes contribute; in 2-D, cell n's sum is one matrix product
  (kx[:, S_n] * w_n) @ ky[:, S_n]^T over its training bins with spikes S_n (kx, ky: the 1-D
  kernels (B, T)), i.e. (grid x spikes) work instead of (grid x bins x cells);
- denominator: the mask is constant over runs of bins (the validation mask over its blocks), so
  the kernel is first summed over each run (pieces of at most PIECE bins, in 2-D a small product
  kx[:, piece] @ ky[:, piece]^T each, batched), then one (cells x pieces)(pieces x grid) product.

On the circle k is the wrapped Gaussian, sum_j k(d + 2 pi j) over the images
j = -1, 0, 1 of the wrapped difference d in [-pi, pi) (the next images weigh below
exp(-(3 pi)^2 / (2 h^2)), under e^-44 for any h up to 1 rad): a circular KDE. Each 1-D kernel is cut
to 0 beyond CUTOFF = 8 bandwidths (weight e^-32): this keeps every float32 product above the
subnormal range, where BLAS runs about five times slower, and changes no estimate near data by more
than e^-32 relative. Rates are floored at `floor` (Hz): where the latent never came within the cut
the estimate is 0/0, and a zero rate would make any spike there infinitely unlikely (the published
implementation, whose ratio carries a small regularizer, also returns about zero there).

The M-step also fits the latent's occupancy density (`log_occupancy`, the E-step's prior) and,
at the behaviour, the random walk's speed (`random_walk_speed`).
"""
import numpy as np
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from tcnet.validate import ConfigError
from tcnet_plugins.simpl.space import TURN, wrap

CUTOFF = 8.0  # kernel support, in bandwidths per axis
PIECE = 16  # longest run of bins whose kernels are summed before the mask product
PIECES_PER_CHUNK = 1024  # pieces whose kernel sums (pieces x grid) are held at once


def kernel_1d(g, x, bandwidth, angular=False, dtype=np.float32):
    """k(g_i - x_t) for grid coordinates g (B,) and latent coordinates x (Tc,): (B, Tc), cut to 0
    beyond CUTOFF bandwidths; wrapped on the circle when `angular`. The differences in float64,
    the exponential in `dtype`, in place: (B, T) float64 temporaries are fresh pages each."""
    d = g[:, None] - x[None, :]
    shifts = (0.0,)
    if angular:
        d = wrap(d)
        shifts = (-TURN, 0.0, TURN)
    out = None
    for s in shifts:
        half_u2 = np.add(d, s)
        half_u2 *= 1 / bandwidth
        np.square(half_u2, out=half_u2)
        half_u2 *= -0.5
        k = np.exp(half_u2.astype(dtype))
        k *= half_u2 > -0.5 * CUTOFF**2
        out = k if out is None else np.add(out, k, out=out)
    return out


def runs(mask, longest) -> np.ndarray:
    """Starts of the pieces of consecutive time bins that share one mask row, each at most
    `longest` bins long: each run of equal rows cut from its own start (so a run of 10 bins is one
    piece for any longest >= 10)."""
    change = np.r_[0, np.flatnonzero(np.any(mask[1:] != mask[:-1], axis=1)) + 1]
    pieces = -(-np.diff(np.r_[change, mask.shape[0]]) // longest)  # per run
    within = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    return np.repeat(change, pieces) + longest * within


def kernel_sums(kernels, starts, ends, longest) -> np.ndarray:
    """sum_{t in [start, end)} K(g - x_t) for each piece: (P, G), from the per-axis kernels
    (B_i, T); pieces padded to `longest` bins with zero columns."""
    idx = starts[:, None] + np.arange(longest)
    valid = idx < ends[:, None]
    idx = np.minimum(idx, ends[-1] - 1)
    if len(kernels) == 1:
        return (kernels[0][:, idx] * valid).sum(axis=2).T
    kx, ky = kernels
    a = (kx[:, idx] * valid).transpose(1, 0, 2)  # (P, Bx, L)
    b = (ky[:, idx] * valid).transpose(1, 2, 0)  # (P, L, By)
    return (a @ b).reshape(len(starts), -1)


def spike_sums(kernels, w) -> np.ndarray:
    """sum_t w_tn K(g - x_t) for every cell n: (N, G), over the bins where w_tn > 0.

    In 2-D, per cell a product (kx[S] w)^T ky[S] over its bins with spikes S, with kx, ky the
    kernels' transposes (T, B) (row gathers are contiguous). A kernel row is non-zero only within
    CUTOFF bandwidths of its bin's position (17 of the benchmark's 101 grid points per axis), so the
    bins are first grouped into tiles by where their rows start on each axis (tiles as wide as a
    kernel's typical span) and each tile's product gathers and covers only the columns its rows
    reach: 0.62 -> 0.28 s CPU on the benchmark, the same sums to float32 rounding."""
    if len(kernels) == 1:
        return (kernels[0] @ w.astype(np.float32)).T
    kx, ky = (np.ascontiguousarray(k.T) for k in kernels)
    spans = [_nonzero_span(k) for k in (kx, ky)]
    (tx, ty) = (first // max(1, int(np.median(last - first))) for first, last in spans)
    tile = tx * (ty.max() + 1) + ty
    order = np.argsort(tile, kind="stable")
    bounds = np.r_[np.unique(tile[order], return_index=True)[1], len(order)]  # each tile's rows in `order`
    columns = [tuple(slice(first[order[a:b]].min(), last[order[a:b]].max()) for first, last in spans)
               for a, b in zip(bounds[:-1], bounds[1:])]
    out = np.zeros((w.shape[1], kx.shape[1], ky.shape[1]))
    for n in range(w.shape[1]):
        spiking = np.flatnonzero(w[order, n])  # positions in `order`, ascending tile
        cuts = np.searchsorted(spiking, bounds)
        for (cx, cy), a, b in zip(columns, cuts[:-1], cuts[1:]):
            if b > a:
                s = order[spiking[a:b]]
                out[n, cx, cy] += (kx[s, cx] * w[s, n, None].astype(np.float32)).T @ ky[s, cy]
    return out.reshape(w.shape[1], -1)


def _nonzero_span(k) -> tuple[np.ndarray, np.ndarray]:
    """Per row of k (T, B): the first non-zero column and one past the last."""
    nonzero = k > 0
    return np.argmax(nonzero, axis=1), k.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)


def latent_kernels(x, axes, bandwidth, angular=False) -> list:
    """The 1-D kernels k(g_i - x_ti) of latent x (T, D) on each grid axis: D arrays (B_i, T)."""
    return [kernel_1d(a, x[:, i], bandwidth, angular) for i, a in enumerate(axes)]


@threadpool_limits.wrap(limits=1, user_api="blas")  # as the E-step: no BLAS thread spinning through numpy work
def kde_fields(kernels, y, mask, dt, floor):
    """Rates (N, *grid) in Hz of the masked KDE above from the latent's kernels (latent_kernels);
    y and mask (T, N)."""
    T, N = y.shape
    numer = spike_sums(kernels, y * mask)
    starts = runs(mask, PIECE)
    ends = np.r_[starts[1:], T]
    denom = np.zeros_like(numer)
    for c in range(0, len(starts), PIECES_PER_CHUNK):
        piece = slice(c, c + PIECES_PER_CHUNK)
        sums = kernel_sums(kernels, starts[piece], ends[piece], PIECE)
        denom += mask[starts[piece]].T.astype(np.float32) @ sums
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(denom > 0, numer / (dt * denom), 0.0)
    return np.maximum(rate, floor).reshape(N, *(k.shape[0] for k in kernels))


@threadpool_limits.wrap(limits=1, user_api="blas")
def log_occupancy(kernels, angular=False) -> np.ndarray:
    """log of the latent's density over the grid (G,), C order: the KDE sum_t K(g - x_t) normalized
    to sum 1 over the grid; -inf beyond the kernels' reach (CUTOFF bandwidths from every x_t).
    It is the M-step of the latent's stationary distribution, the E-step's occupancy prior.

    Uniform on the circle (`angular`): the prior keeps bins from being decoded beyond the walls of
    a track or an arena (docs/SIMPL.md, "Accuracy"); a circle has none, and there it measurably
    does not help."""
    if angular:
        return np.full(kernels[0].shape[0], -np.log(kernels[0].shape[0]))
    density = kernels[0].sum(axis=1, dtype=float) if len(kernels) == 1 else (kernels[0] @ kernels[1].T).astype(float)
    with np.errstate(divide="ignore"):
        return np.log(density.ravel() / density.sum())


def random_walk_speed(latent, starts, dt, space) -> float:
    """The random-walk speed scale sigma (units/s) of a latent's own steps: the root mean squared
    step per axis within segments (beginning at `starts`; on the circle each step wrapped into
    [-pi, pi), so a crossing of 0/2 pi is the short step it is), over dt, i.e. the M-step of the
    step variance q = (sigma dt)^2 at that latent. SIMPL's default prior takes it at latent =
    behaviour, on every space: measured, not assumed, since a track animal at 15 cm/s, an arena
    animal at 8 cm/s and a head turning at 1.3 or 3 rad/s need different priors (docs/SIMPL.md,
    "Accuracy"). Tracking jitter from bin to bin would inflate it; give `speed` for such behaviour."""
    steps = space.difference(latent[1:], latent[:-1])
    linked = np.ones(len(steps), dtype=bool)
    linked[starts[1:] - 1] = False  # the step across a gap is not a step
    if not linked.any():
        raise ConfigError("simpl: behaviour has no two consecutive bins to measure its speed from; give speed")
    speed = float(np.sqrt(np.mean(steps[linked] ** 2)) / dt)
    if speed == 0:
        raise ConfigError("simpl: behaviour does not move, so it gives no random-walk speed; give speed")
    return speed


def interpolate(fields, axes, x, angular=False):
    """Multilinear interpolation of fields (N, *grid) at positions x (T, D): rates (T, N).
    On a line, positions outside the grid take the value at the nearest edge; on the circle the
    last grid point neighbours the first. The interpolation is a sparse (T, G) matrix, 2^D
    weights per row, times the fields (G, N): (T x N x 2^D) work in one pass, no (T, N)
    temporaries per corner."""
    corners = []  # per axis: (lower index, upper index, weight of the upper)
    for i, g in enumerate(axes):
        step = g[1] - g[0]
        if angular:
            u = np.mod(x[:, i] - g[0], TURN) / step
            lo = np.floor(u).astype(int) % g.size
            corners.append((lo, (lo + 1) % g.size, u - np.floor(u)))
        else:
            u = np.clip((x[:, i] - g[0]) / step, 0, g.size - 1)
            lo = np.minimum(np.floor(u).astype(int), g.size - 2)
            corners.append((lo, lo + 1, u - lo))
    shape = tuple(g.size for g in axes)
    index, weight = [], []
    for corner in np.ndindex(*(2,) * len(axes)):
        index.append(np.ravel_multi_index(tuple(c[b] for c, b in zip(corners, corner)), shape))
        weight.append(np.prod([c[2] if b else 1 - c[2] for c, b in zip(corners, corner)], axis=0))
    T, K = x.shape[0], len(index)
    W = csr_matrix((np.stack(weight, axis=1).ravel(), np.stack(index, axis=1).ravel(), np.arange(0, T * K + 1, K)),
                   shape=(T, int(np.prod(shape))))
    return W @ fields.reshape(fields.shape[0], -1).T
