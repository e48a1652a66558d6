"""SIMPL's M-step: tuning curves by Gaussian kernel density estimation on a spatial grid.

For neuron n, training mask m_tn (1 where the bin is used for fitting), counts y_tn, latent x_t,
bin width dt and kernel K(d) = exp(-|d|^2 / (2 h^2)):

    f_n(g) = sum_t m_tn y_tn K(g - x_t) / (dt sum_t m_tn K(g - x_t))      (Hz)

at every grid point g. The kernel is separable, K(g - x) = k(g_x - x_x) k(g_y - x_y), so a time
chunk's kernel matrix (G x Tc) is an outer product per bin and both sums are BLAS matrix products
with (Tc x N) matrices. Each 1-D kernel is cut to 0 beyond CUTOFF = 8 bandwidths (weight e^-32):
this keeps every float32 product kx * ky above the subnormal range, where BLAS runs about five times
slower, and changes no estimate near data by more than e^-32 relative. Rates are floored at `floor`
(Hz): where the latent never came within the cut the estimate is 0/0, and a zero rate would make any
spike there infinitely unlikely (the published implementation, whose ratio carries a small
regularizer, also returns about zero there).
"""
import numpy as np

CHUNK_ENTRIES = 2**23  # grid points x time bins per chunk (~32 MB in float32)
CUTOFF = 8.0  # kernel support, in bandwidths per axis


def make_grid(x, spacing, margin):
    """Bin centres along each axis covering the range of x (T, 2) plus `margin`, `spacing` apart."""
    lo = x.min(axis=0) - margin
    hi = x.max(axis=0) + margin
    n = np.maximum(2, np.ceil((hi - lo) / spacing).astype(int) + 1)
    return tuple(lo[i] + spacing * np.arange(n[i]) for i in range(2))


def kernel_1d(g, x, bandwidth, dtype=np.float32):
    """k(g_i - x_t) for grid coordinates g (B,) and latent coordinates x (Tc,): (B, Tc), cut to 0
    beyond CUTOFF bandwidths."""
    d = (g[:, None] - x[None, :]) / bandwidth
    return np.where(np.abs(d) < CUTOFF, np.exp(-0.5 * d * d), 0.0).astype(dtype)


def kde_fields(x, y, mask, dt, grid, bandwidth, floor):
    """Rates (N, Gx, Gy) in Hz of the masked KDE above; x (T, 2), y and mask (T, N)."""
    gx, gy = grid
    n_grid = gx.size * gy.size
    weighted = (y * mask).astype(np.float32)
    mask32 = mask.astype(np.float32)
    numer = np.zeros((n_grid, y.shape[1]))
    denom = np.zeros((n_grid, y.shape[1]))
    step = max(1, CHUNK_ENTRIES // n_grid)
    for s in range(0, x.shape[0], step):
        kx = kernel_1d(gx, x[s : s + step, 0], bandwidth)
        ky = kernel_1d(gy, x[s : s + step, 1], bandwidth)
        k = (kx[:, None, :] * ky[None, :, :]).reshape(n_grid, -1)
        numer += k @ weighted[s : s + step]
        denom += k @ mask32[s : s + step]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(denom > 0, numer / (dt * denom), 0.0)
    return np.maximum(rate, floor).T.reshape(y.shape[1], gx.size, gy.size)


def interpolate(fields, grid, x):
    """Bilinear interpolation of fields (N, Gx, Gy) at positions x (T, 2): rates (T, N).
    Positions outside the grid take the value at the nearest edge."""
    out = np.zeros((x.shape[0], fields.shape[0]))
    index, weight = [], []
    for axis in range(2):
        g = grid[axis]
        u = np.clip((x[:, axis] - g[0]) / (g[1] - g[0]), 0, g.size - 1)
        i = np.minimum(np.floor(u).astype(int), g.size - 2)
        index.append(i)
        weight.append(u - i)
    flat = fields.reshape(fields.shape[0], -1)
    ny = grid[1].size
    for di in (0, 1):
        for dj in (0, 1):
            w = (weight[0] if di else 1 - weight[0]) * (weight[1] if dj else 1 - weight[1])
            out += w[:, None] * flat[:, (index[0] + di) * ny + index[1] + dj].T
    return out
