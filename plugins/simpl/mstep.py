"""SIMPL's M-step: tuning curves by Gaussian kernel density estimation on a grid.

For neuron n, training mask m_tn (1 where the bin is used for fitting), counts y_tn, latent x_t,
bin width dt and kernel K(d) = exp(-|d|^2 / (2 h^2)):

    f_n(g) = sum_t m_tn y_tn K(g - x_t) / (dt sum_t m_tn K(g - x_t))      (Hz)

at every grid point g. The kernel is separable, K(g - x) = prod_i k(g_i - x_i), so a time chunk's
kernel matrix (G x Tc) is an outer product per bin and both sums are BLAS matrix products with
(Tc x N) matrices. On the circle k is the wrapped Gaussian, sum_j k(d + 2 pi j) over the images
j = -1, 0, 1 of the wrapped difference d in [-pi, pi) (the next images weigh below
exp(-(3 pi)^2 / (2 h^2)), under e^-44 for any h up to 1 rad): a circular KDE. Each 1-D kernel is cut
to 0 beyond CUTOFF = 8 bandwidths (weight e^-32): this keeps every float32 product above the
subnormal range, where BLAS runs about five times slower, and changes no estimate near data by more
than e^-32 relative. Rates are floored at `floor` (Hz): where the latent never came within the cut
the estimate is 0/0, and a zero rate would make any spike there infinitely unlikely (the published
implementation, whose ratio carries a small regularizer, also returns about zero there).
"""
import numpy as np

from tcnet_plugins.simpl.space import TURN, wrap

CHUNK_ENTRIES = 2**23  # grid points x time bins per chunk (~32 MB in float32)
CUTOFF = 8.0  # kernel support, in bandwidths per axis


def kernel_1d(g, x, bandwidth, angular=False, dtype=np.float32):
    """k(g_i - x_t) for grid coordinates g (B,) and latent coordinates x (Tc,): (B, Tc), cut to 0
    beyond CUTOFF bandwidths; wrapped on the circle when `angular`."""
    d = g[:, None] - x[None, :]
    shifts = (0.0,)
    if angular:
        d = wrap(d)
        shifts = (-TURN, 0.0, TURN)
    out = np.zeros(d.shape)
    for s in shifts:
        u = (d + s) / bandwidth
        out += np.where(np.abs(u) < CUTOFF, np.exp(-0.5 * u * u), 0.0)
    return out.astype(dtype)


def kernel_matrix(axes, x, bandwidth, angular=False) -> np.ndarray:
    """K(g - x_t) for every grid point g (C order over `axes`) and latent x (Tc, D): (G, Tc)."""
    k = kernel_1d(axes[0], x[:, 0], bandwidth, angular)
    for i in range(1, len(axes)):
        ki = kernel_1d(axes[i], x[:, i], bandwidth, angular)
        k = (k[:, None, :] * ki[None, :, :]).reshape(-1, x.shape[0])
    return k


def kde_fields(x, y, mask, dt, axes, bandwidth, floor, angular=False):
    """Rates (N, *grid) in Hz of the masked KDE above; x (T, D), y and mask (T, N)."""
    n_grid = int(np.prod([a.size for a in axes]))
    weighted = (y * mask).astype(np.float32)
    mask32 = mask.astype(np.float32)
    numer = np.zeros((n_grid, y.shape[1]))
    denom = np.zeros((n_grid, y.shape[1]))
    step = max(1, CHUNK_ENTRIES // n_grid)
    for s in range(0, x.shape[0], step):
        k = kernel_matrix(axes, x[s : s + step], bandwidth, angular)
        numer += k @ weighted[s : s + step]
        denom += k @ mask32[s : s + step]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(denom > 0, numer / (dt * denom), 0.0)
    return np.maximum(rate, floor).T.reshape(y.shape[1], *(a.size for a in axes))


def interpolate(fields, axes, x, angular=False):
    """Multilinear interpolation of fields (N, *grid) at positions x (T, D): rates (T, N).
    On a line, positions outside the grid take the value at the nearest edge; on the circle the
    last grid point neighbours the first."""
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
    flat = fields.reshape(fields.shape[0], -1)
    shape = tuple(g.size for g in axes)
    out = np.zeros((x.shape[0], fields.shape[0]))
    for corner in np.ndindex(*(2,) * len(axes)):
        index = np.ravel_multi_index(tuple(c[b] for c, b in zip(corners, corner)), shape)
        w = np.prod([c[2] if b else 1 - c[2] for c, b in zip(corners, corner)], axis=0)
        out += w[:, None] * flat[:, index].T
    return out
