"""SIMPL's E-step: per-bin Poisson likelihood maps, Gaussian moment matching, smoothing under a
random-walk prior.

Likelihood map of bin t at grid point g (training entries only, constants in y dropped):

    L_t(g) = sum_n m_tn [ y_tn log(f_n(g) dt) - f_n(g) dt ]
           = (M*Y)_t . log(F dt)(g) - M_t . (F dt)(g)

i.e. one BLAS product (T x N)(N x G) for the spikes and, since the mask is constant over runs of
bins (the validation blocks), one much smaller product for the expected counts (a row per run,
mstep.runs), done in time chunks so that the (Tc x G) block is the only large array.

Each map, times the occupancy prior pi(g) (the latent's density over the grid, fitted in the
M-step: mstep.log_occupancy), is turned into a Gaussian observation by moment matching: z_t = the
mean and R_t = the covariance of the normalized exp(L_t) pi over the grid, plus spacing^2/12 per
axis (the variance of a uniform distribution over one grid cell, so that a map peaked on a single
point still has a finite, resolution-limited noise). On the circle z_t is the circular mean and
the variance the wrapped-normal one, -2 log |E exp(i x)|: one (T x G)(G x K) product of the
exponentiated maps with the K moment features per grid point.

Why the occupancy prior and the mean (docs/SIMPL.md, "Accuracy"): a bin decoded into a region the
latent rarely visits meets tuning curves fitted mostly to its own spikes there, so it stays; in the
first decode the curves fitted to noisy behaviour make every position near a wall about equally
likely far beyond it. pi(x) is the stationary distribution of the latent that the random walk
alone does not know, and with it, under the path prior prod_t pi(x_t) N(x_t - x_t-1; 0, q I), each
bin's factor is L_t(x) pi(x); of that factor the mean is the moment-matched observation, where the
mode (the published choice) lands anywhere on a flat ridge.

The latent prior is a random walk x_t = x_{t-1} + w_t, w_t ~ N(0, q I), with q = (sigma dt)^2 for
a speed scale sigma (units per second), restarted from N(m0, P0) at the first bin of each segment
(a time gap - between trials or sessions - is not bridged). The posterior mean given the
observations z_t ~ N(x_t, R_t) is what the Kalman filter and RTS smoother compute; here it is the
solution of one sparse linear system, the posterior precision Lambda (block tridiagonal:
R_t^-1 on the diagonal blocks, the random walk's -I/q between neighbours) times the mean equal to
sum_t R_t^-1 z_t plus the prior's P0^-1 m0 at segment starts. Ordered (x_0, y_0, x_1, y_1, ...) it
is a band matrix of half-width D, so LAPACK's banded Cholesky solves it in O(T D^2).
"""
import numpy as np
from scipy.linalg import solveh_banded

from tcnet_plugins.simpl.mstep import PIECE, runs
from tcnet_plugins.simpl.space import TURN

CHUNK_ENTRIES = 2**21  # time bins x grid points per chunk (8 MB of float32, reused)
LOG_FLOOR = -80.0  # relative log-likelihood below which a grid point's weight is taken as e^-80
SILENT_VARIANCE = 1e6  # observation variance of a bin without spikes (uninformative, as published)


def grid_points(axes) -> np.ndarray:
    """All grid points (G, D), C order over the axes."""
    return np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)


def poisson_maps(y, mask, log_rate_dt, rate_dt, out=None):
    """Log-likelihood maps of counts y (T, N) under rates (N, G) per bin, masked entries only, in
    factored form: map_t = spikes[t] + offsets[run_of[t]], with spikes (T, G) float32 the one BLAS
    product (written into `out` when given) and offsets (P, G) the expected-count term
    -M_t . (F dt) of each run of equal mask rows (mstep.runs)."""
    spikes = np.matmul((y * mask).astype(np.float32), log_rate_dt, out=out)
    starts = runs(mask, PIECE)
    offsets = -(mask[starts].astype(np.float32) @ rate_dt)
    run_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(spikes)]))
    return spikes, offsets, run_of


def moment_features(points, angular=False) -> np.ndarray:
    """Per grid point (G, K): 1, x_i and x_i x_j (i <= j) on a line or plane; 1, cos x, sin x on the
    circle. Their exp(map)-weighted sums give the normalized map's moments."""
    if angular:
        return np.stack([np.ones(len(points)), np.cos(points[:, 0]), np.sin(points[:, 0])], axis=1)
    D = points.shape[1]
    pairs = [points[:, i] * points[:, j] for i in range(D) for j in range(i, D)]
    return np.column_stack([np.ones(len(points)), points] + pairs)


def gaussian_moments(spikes, points, spacing, angular=False, offsets=None, run_of=None):
    """Mean (T, D) and covariance (T, D, D) of the normalized exp(map) over the grid `points` (G, D),
    map_t = spikes[t] (+ offsets[run_of[t]], see poisson_maps); `spikes` is overwritten. On the
    circle the circular mean and the wrapped-normal variance -2 log |E exp(i x)|. The
    covariance gets spacing_i^2 / 12 added on the diagonal."""
    T, D = spikes.shape[0], points.shape[1]
    if offsets is not None:
        bounds = np.flatnonzero(np.diff(run_of)) + 1
        for a, b in zip(np.r_[0, bounds], np.r_[bounds, T]):
            spikes[a:b] += offsets[run_of[a]]
    spikes -= spikes.max(axis=1)[:, None]
    np.maximum(spikes, LOG_FLOOR, out=spikes)  # weights below e^-80 do not matter; subnormals would slow BLAS
    np.exp(spikes, out=spikes)
    m = (spikes @ moment_features(points, angular).astype(spikes.dtype)).astype(float)
    m /= m[:, :1]
    if angular:
        var = -2 * np.log(np.clip(np.hypot(m[:, 1], m[:, 2]), 1e-300, 1.0))
        mean = np.mod(np.arctan2(m[:, 2], m[:, 1]), TURN)[:, None]
        return mean, (var + spacing[0] ** 2 / 12)[:, None, None]
    mean = m[:, 1 : 1 + D]
    R = np.empty((T, D, D))
    k = 1 + D
    for i in range(D):
        for j in range(i, D):
            R[:, i, j] = R[:, j, i] = m[:, k] - mean[:, i] * mean[:, j]
            k += 1
    R[:, np.arange(D), np.arange(D)] += np.asarray(spacing) ** 2 / 12
    return mean, R


def likelihood_moments(y, mask, fields, axes, dt, angular=False, log_prior=None):
    """Observations z (T, D) and noise covariances R (T, D, D): the moments of the likelihood maps
    of the masked counts under fields (N, *grid) (Hz), times the prior exp(log_prior) (G,) over the
    grid when given. Bins without a single masked-in spike carry no information about position
    beyond the fields' total rate; as in the published method they get an uninformative
    R = SILENT_VARIANCE I."""
    rate_dt = (fields.reshape(fields.shape[0], -1) * dt).astype(np.float32)  # (N, G)
    log_rate_dt = np.log(rate_dt)
    points = grid_points(axes)
    spacing = [a[1] - a[0] for a in axes]
    T, D = y.shape[0], len(axes)
    z = np.empty((T, D))
    R = np.empty((T, D, D))
    step = max(1, CHUNK_ENTRIES // points.shape[0])
    buffer = np.empty((min(step, T), points.shape[0]), dtype=np.float32)  # reused: no fresh pages per chunk
    for s in range(0, T, step):
        chunk = slice(s, s + step)
        spikes, offsets, run_of = poisson_maps(y[chunk], mask[chunk], log_rate_dt, rate_dt,
                                               out=buffer[: min(step, T - s)])
        if log_prior is not None:
            offsets += log_prior.astype(np.float32)
        z[chunk], R[chunk] = gaussian_moments(spikes, points, spacing, angular, offsets, run_of)
    silent = (y * mask).sum(axis=1) == 0
    R[silent] = SILENT_VARIANCE * np.eye(D)
    return z, R


def smooth(z, R, q, m0, P0, starts=(0,)):
    """Posterior mean (T, D) of x given z_t ~ N(x_t, R_t), the random walk with step covariance
    q I inside each segment, and x ~ N(m0, P0) at each segment's first bin (`starts`, beginning
    with 0)."""
    T, D = z.shape
    Rinv = np.linalg.inv(R)
    P0inv = np.linalg.inv(np.atleast_2d(P0))
    first = np.zeros(T, dtype=bool)
    first[list(starts)] = True
    linked = ~first[1:]  # bin t + 1 continues bin t
    neighbours = np.zeros(T)
    neighbours[1:] += linked
    neighbours[:-1] += linked
    blocks = Rinv + (neighbours / q)[:, None, None] * np.eye(D)
    blocks[first] += P0inv
    rhs = np.einsum("tij,tj->ti", Rinv, z)
    rhs[first] += P0inv @ np.asarray(m0, dtype=float)
    # upper band storage: ab[D + i - j, j] = Lambda[i, j] for i <= j, unknowns ordered t * D + axis
    ab = np.zeros((D + 1, T * D))
    for k in range(D):  # within-bin entries at distance k
        for i in range(D - k):
            ab[D - k, i + k :: D] = blocks[:, i, i + k]
    ab[0, D:] = np.repeat(np.where(linked, -1.0 / q, 0.0), D)  # x_t,i with x_t+1,i: distance D
    return solveh_banded(ab, rhs.ravel(), check_finite=False).reshape(T, D)


def segment_starts(time, dt, gap=1.5) -> np.ndarray:
    """First bin of each segment: 0 and every bin that follows a step longer than gap * dt."""
    return np.concatenate([[0], np.flatnonzero(np.diff(time) > gap * dt) + 1])
