"""SIMPL's E-step: per-bin Poisson likelihood maps, Gaussian moment matching, smoothing under a
random-walk prior.

Likelihood map of bin t at grid point g (training entries only, constants in y dropped):

    L_t(g) = sum_n m_tn [ y_tn log(f_n(g) dt) - f_n(g) dt ]
           = (M*Y)_t . log(F dt)(g) - M_t . (F dt)(g)

i.e. one BLAS product (T x N)(N x G) for the spikes and, since the mask is constant over runs of
bins (the validation blocks), one much smaller product for the expected counts (a row per run,
mstep.runs), done in time chunks so that the (Tc x G) block is the only large array. The maps are
kept in bits (base-2 logs), as numpy's float32 exp2 takes half the time of exp.

Each map, times the occupancy prior pi(g) (the latent's density over the grid, fitted in the
M-step: mstep.log_occupancy), is turned into a Gaussian observation by moment matching: z_t = the
mean and R_t = the covariance of the normalized exp(L_t) pi over the grid, plus spacing^2/12 per
axis (the variance of a uniform distribution over one grid cell, so that a map peaked on a single
point still has a finite, resolution-limited noise). On the circle z_t is the circular mean and
the variance the wrapped-normal one, -2 log |E exp(i x)|. The moments are weighted sums of 1, x,
x^2 per axis (1, cos x, sin x on the circle), separable over a 2-D grid: per bin a (3 x B_x)(B_x
x B_y) product (weighted_sums), where a product with the 6 moment features per grid point would
be a skinny (T x G)(G x 6) one, which BLAS does at a fraction of its speed. In float32 they match a
float64 computation to 1e-5 m in the mean and 0.3 % in the standard deviations on the benchmark
(docs/SIMPL.md, "Speed"); the coordinates are centred on the grid so that E[x^2] - E[x]^2
cancels less.

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

`decode` is the whole E-step of one latent: moments, (on the circle) unwrapping, smoothing.
`overrelax` is the accelerated E-step the `simpl` optimizer tries from its second iteration on.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.linalg import solveh_banded
from scipy.ndimage import gaussian_filter1d
from threadpoolctl import threadpool_limits

from tcnet.threads import environment_threads

from tcnet_plugins.simpl.inputs import GAP
from tcnet_plugins.simpl.mstep import runs
from tcnet_plugins.simpl.space import TURN, wrap

CHUNK_ENTRIES = 2**21  # time bins x grid points per chunk (8 MB of float32, reused)
LOG_FLOOR = -80.0  # relative log-likelihood below which a grid point's weight is taken as e^-80
LOG2E = float(1 / np.log(2))  # nats to bits (a Python float: a numpy float64 scalar would promote float32 work)
SILENT_VARIANCE = 1e6  # observation variance of a bin without spikes (uninformative, as published)
GROUP = 16  # chunks whose expected-count rows are computed in one product (amortizes BLAS packing)


def workers() -> int:
    """Threads sharing the E-step's time chunks: the BLAS thread count the user set in the
    environment (tcnet.threads.environment_threads), else one per core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return environment_threads() or cores


def expected_counts(mask, rate_dt):
    """The expected-count term -M_t . (F dt) of the likelihood maps (module doc) under rates
    rate_dt (N, G) per bin, once per run of equal mask rows (mstep.runs): offsets (P, G) and the
    run of each bin, run_of (T,). The map of bin t is (M*Y)_t . log(F dt) + offsets[run_of[t]]."""
    starts = runs(mask, len(mask))
    offsets = -(mask[starts].astype(np.float32) @ rate_dt)
    run_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(mask)]))
    return offsets, run_of


def axis_features(a, angular=False) -> np.ndarray:
    """Per grid coordinate (B, 3): 1, u, u^2 with u = a - the axis' midpoint on a line (centred, so
    that E[u^2] - E[u]^2 cancels less in float32); 1, cos a, sin a on the circle. Weighted sums of
    their products over the grid give the moments of a map."""
    if angular:
        return np.stack([np.ones_like(a), np.cos(a), np.sin(a)], axis=1)
    u = a - 0.5 * (a[0] + a[-1])
    return np.stack([np.ones_like(u), u, u * u], axis=1)


def weighted_sums(weights, axes, angular=False) -> np.ndarray:
    """S[t, j, k] = sum_g weights[t, g] f_j(g_first) f_k(g_last) (T, 3, 3) in 2-D, S[t, j] (T, 3)
    in 1-D, for the axis features f (axis_features). The grid is separable: per bin one small BLAS
    product (3 x B_first)(B_first x B_last) in the weights' precision, then a float64 contraction
    over the last axis; no (T x G x K) work."""
    T = weights.shape[0]
    last = axis_features(axes[-1], angular)
    if len(axes) == 1:
        return (weights @ last.astype(weights.dtype)).astype(float)
    first = axis_features(axes[0], angular).T.astype(weights.dtype)
    partial = np.matmul(first, weights.reshape(T, len(axes[0]), len(axes[1]))).astype(float)  # (T, 3, B_last)
    return (partial.reshape(-1, len(axes[1])) @ last).reshape(T, 3, 3)


def gaussian_moments(maps, axes, angular=False, offsets=None, run_of=None):
    """Mean (T, D) and covariance (T, D, D) of the normalized 2^map over the grid `axes`, for
    log-likelihood maps in bits (base-2 logs: numpy's float32 exp2 takes half the time of exp),
    map_t = maps[t] (+ offsets[run_of[t]], see expected_counts); `maps` (T, G) is overwritten. On the
    circle the circular mean and the wrapped-normal variance -2 log |E exp(i x)|. The covariance
    gets spacing_i^2 / 12 added on the diagonal."""
    T, D = maps.shape[0], len(axes)
    spacing = np.array([a[1] - a[0] for a in axes])
    if offsets is not None:
        bounds = np.flatnonzero(np.diff(run_of)) + 1
        for a, b in zip(np.r_[0, bounds], np.r_[bounds, T]):
            maps[a:b] += offsets[run_of[a]]
    maps -= maps.max(axis=1)[:, None]
    np.maximum(maps, LOG_FLOOR * LOG2E, out=maps)  # weights below e^-80 do not matter; subnormals would slow BLAS
    np.exp2(maps, out=maps)
    S = weighted_sums(maps, axes, angular)
    if angular:
        c, s = S[:, 1] / S[:, 0], S[:, 2] / S[:, 0]
        var = -2 * np.log(np.clip(np.hypot(c, s), 1e-300, 1.0))
        mean = np.mod(np.arctan2(s, c), TURN)[:, None]
        return mean, (var + spacing[0] ** 2 / 12)[:, None, None]
    centre = np.array([0.5 * (a[0] + a[-1]) for a in axes])
    if D == 1:
        total, first, second = S[:, 0], S[:, 1:2], S[:, 2][:, None, None]
    else:  # S[:, j, k]: j the power of the first coordinate, k of the second
        total = S[:, 0, 0]
        first = np.stack([S[:, 1, 0], S[:, 0, 1]], axis=1)
        second = np.stack([S[:, 2, 0], S[:, 1, 1], S[:, 1, 1], S[:, 0, 2]], axis=1).reshape(T, 2, 2)
    mean = first / total[:, None]
    R = second / total[:, None, None] - mean[:, :, None] * mean[:, None, :]
    R[:, np.arange(D), np.arange(D)] += spacing ** 2 / 12
    return mean + centre, R


def likelihood_moments(y, mask, fields, axes, dt, angular=False, log_prior=None):
    """Observations z (T, D) and noise covariances R (T, D, D): the moments of the likelihood maps
    of the masked counts under fields (N, *grid) (Hz), times the prior exp(log_prior) (G,) over the
    grid when given. Bins without a single masked-in spike carry no information about position
    beyond the fields' total rate; as in the published method they get an uninformative
    R = SILENT_VARIANCE I.

    Time chunks of CHUNK_ENTRIES map entries each go to one of `workers()` threads, each with its own
    reused buffer, with BLAS held to one thread: every operation on a chunk (the product, the
    exponential, the moments) then runs in parallel, and no BLAS thread spins idle through the
    element-wise work, which otherwise about doubles the CPU time (tests/benchmarks)."""
    rate_dt = (fields.reshape(fields.shape[0], -1) * dt).astype(np.float32)  # (N, G)
    log_rate_dt = np.log2(rate_dt)  # maps in bits (gaussian_moments)
    rate_dt *= LOG2E
    prior = 0 if log_prior is None else (log_prior * LOG2E).astype(np.float32)
    T, D, G = y.shape[0], len(axes), rate_dt.shape[1]
    z = np.empty((T, D))
    R = np.empty((T, D, D))
    step = max(1, CHUNK_ENTRIES // G)
    groups = [range(s, min(s + GROUP * step, T), step) for s in range(0, T, GROUP * step)]

    def work(mine):
        buffer = np.empty((min(step, T), G), dtype=np.float32)  # reused: no fresh pages per chunk
        for group in mine:
            start, stop = group.start, group.stop
            offsets, run_of = expected_counts(mask[start:stop], rate_dt)
            offsets += prior
            for s in group:
                chunk = slice(s, min(s + step, T))
                maps = np.matmul((y[chunk] * mask[chunk]).astype(np.float32), log_rate_dt,
                                 out=buffer[: chunk.stop - s])
                z[chunk], R[chunk] = gaussian_moments(maps, axes, angular, offsets, run_of[s - start : chunk.stop - start])

    n = workers()
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(n) as pool:
        list(pool.map(work, [groups[i::n] for i in range(n)]))
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


def segment_starts(time, dt, gap=GAP) -> np.ndarray:
    """First bin of each segment: 0 and every bin that follows a step longer than gap * dt."""
    return np.concatenate([[0], np.flatnonzero(np.diff(time) > gap * dt) + 1])


def segment_prior(behaviour, space) -> tuple[np.ndarray, np.ndarray]:
    """Mean m0 and covariance P0 of the latent at a segment's first bin: behaviour's (T, D), on a
    line or plane; uninformative on the circle (no single mean fits every unwrapped segment)."""
    if space.angular:
        return np.zeros(1), np.array([[SILENT_VARIANCE]])
    return behaviour.mean(axis=0), np.atleast_2d(np.cov(behaviour.T))


def decode(counts, mask, fields, axes, log_prior, dt, space, starts, speed, prior, reference=None,
           beta=1.0) -> np.ndarray:
    """The E-step: the random-walk-smoothed latent (T, D) of the `mask`ed `counts` under `fields`,
    the Poisson likelihood raised to the power `beta` (tempering; the maps are linear in the mask's
    entries, so a mask of beta instead of 1 gives beta times each map), and the occupancy prior
    `log_prior` (G,); random walk of speed scale `speed` (q = (speed dt)^2) within the segments
    beginning at `starts`, restarted from `prior` = (m0, P0) (segment_prior). On the circle the
    observations are first moved within pi of `reference` (unwrapped), or of a smoothed circular
    mean of themselves (see space.circular_reference)."""
    weights = mask if beta == 1 else beta * mask
    z, R = likelihood_moments(counts, weights, fields, axes, dt, space.angular, log_prior)
    if space.angular:
        ref = space.unwrap(reference, starts) if reference is not None else space.circular_reference(z, R, starts)
        z = space.near(z, ref)
    m0, P0 = prior
    return space.canonical(smooth(z, R, (speed * dt) ** 2, m0, P0, starts))


def overrelax(space, x, mu, gamma, width, starts) -> np.ndarray:
    """The over-relaxed E-step: mu + gamma S(mu - x), S a Gaussian smoothing in time of standard
    deviation `width` bins within each segment (segments begin at `starts`; on the circle the move
    is the wrapped difference).

    Why: the likelihood cannot see a smooth warp of the latent, so the warp made in the first
    E-steps decays only through the prior, a slow mode of EM: each E-step moves the latent a
    fraction of the way, smoothly in time, while the rest of its move (each bin's own decoding noise)
    is done in one step. Over-relaxing the smoothed move alone speeds up the slow mode without
    amplifying the noise, which over-relaxing the whole move does (docs/SIMPL.md, "Accuracy")."""
    move = mu - x
    if space.angular:
        move = wrap(move)
    bounds = np.r_[starts, len(x)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        move[a:b] = gaussian_filter1d(move[a:b], width, axis=0, mode="nearest")
    return space.canonical(mu + gamma * move)
