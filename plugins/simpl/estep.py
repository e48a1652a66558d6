"""SIMPL's E-step: per-bin Poisson likelihood maps, Gaussian moment matching, Kalman smoothing.

Likelihood map of bin t at grid point g (training entries only, constants in y dropped):

    L_t(g) = sum_n m_tn [ y_tn log(f_n(g) dt) - f_n(g) dt ]
           = (M*Y)_t . log(F dt)(g) - M_t . (F dt)(g)

i.e. two BLAS products (T x N)(N x G), done in time chunks so that the (Tc x G) block is the only
large array. Each map is turned into a Gaussian observation: z_t = the grid point of maximal
likelihood (the mode), R_t = the covariance of the normalized likelihood exp(L_t) over the grid
plus spacing^2/12 per axis (the variance of a uniform distribution over one grid cell, so that a
map peaked on a single point still has a finite, resolution-limited noise).

The latent prior is a random walk x_t = x_{t-1} + w_t, w_t ~ N(0, q I), with q = (sigma dt)^2 for
a speed scale sigma (m/s). The Kalman filter and Rauch-Tung-Striebel smoother for this 2-D model
are written out with scalars (2 x 2 symmetric matrices as three numbers): a Python loop over
plain floats runs the whole hour (36000 bins) in a fraction of a second.
"""
import numpy as np

CHUNK_ENTRIES = 2**23  # time bins x grid points per chunk
LOG_FLOOR = -80.0  # relative log-likelihood below which a grid point's weight is taken as e^-80


def poisson_maps(y, mask, log_rate_dt, rate_dt):
    """Log-likelihood maps (T, G) of counts y (T, N) under rates (N, G) per bin, masked entries only."""
    out = (y * mask).astype(np.float32) @ log_rate_dt
    out -= mask.astype(np.float32) @ rate_dt
    return out


def gaussian_moments(ll, points, spacing):
    """Mode (T, 2) and covariance (T, 2, 2) of the normalized exp(ll) over the grid `points` (G, 2);
    `ll` (T, G) is overwritten. The covariance gets spacing_i^2 / 12 added on the diagonal."""
    best = ll.argmax(axis=1)
    ll -= ll[np.arange(ll.shape[0]), best][:, None]
    np.maximum(ll, LOG_FLOOR, out=ll)  # weights below e^-80 do not matter; subnormals would slow BLAS
    np.exp(ll, out=ll)
    px, py = points[:, 0], points[:, 1]
    features = np.stack([np.ones_like(px), px, py, px * px, px * py, py * py], axis=1).astype(ll.dtype)
    m = (ll @ features).astype(float)
    m /= m[:, :1]
    R = np.empty((ll.shape[0], 2, 2))
    R[:, 0, 0] = m[:, 3] - m[:, 1] ** 2 + spacing[0] ** 2 / 12
    R[:, 0, 1] = R[:, 1, 0] = m[:, 4] - m[:, 1] * m[:, 2]
    R[:, 1, 1] = m[:, 5] - m[:, 2] ** 2 + spacing[1] ** 2 / 12
    return points[best], R


def likelihood_moments(y, mask, fields, grid, dt):
    """Observations z (T, 2) and noise covariances R (T, 2, 2) of the likelihood maps of the
    masked counts under fields (N, Gx, Gy) (Hz). Bins without a single masked-in spike carry no
    information about position beyond the fields' total rate; as in the published method they
    get an uninformative R = 1e6 I."""
    gx, gy = grid
    rate_dt = (fields.reshape(fields.shape[0], -1) * dt).astype(np.float32)  # (N, G)
    log_rate_dt = np.log(rate_dt)
    points = np.stack([a.ravel() for a in np.meshgrid(gx, gy, indexing="ij")], axis=1)
    spacing = (gx[1] - gx[0], gy[1] - gy[0])
    T = y.shape[0]
    z = np.empty((T, 2))
    R = np.empty((T, 2, 2))
    step = max(1, CHUNK_ENTRIES // points.shape[0])
    for s in range(0, T, step):
        ll = poisson_maps(y[s : s + step], mask[s : s + step], log_rate_dt, rate_dt)
        z[s : s + step], R[s : s + step] = gaussian_moments(ll, points, spacing)
    silent = (y * mask).sum(axis=1) == 0
    R[silent] = 1e6 * np.eye(2)
    return z, R


def kalman_smoother(z, R, q, m0, P0):
    """Smoothed means (T, 2) and covariances (T, 2, 2) of x given z_t ~ N(x_t, R_t), the random
    walk with step covariance q I, and the prior x_0 ~ N(m0, P0)."""
    T = z.shape[0]
    zl = z.tolist()
    Rl = R[:, [0, 0, 1], [0, 1, 1]].tolist()  # (r11, r12, r22) per bin
    mf = [None] * T  # filtered means and covariances (a, b, c) = [[a, b], [b, c]]
    Pf = [None] * T
    mx, my = float(m0[0]), float(m0[1])
    a, b, c = float(P0[0][0]), float(P0[0][1]), float(P0[1][1])
    for t in range(T):
        if t:
            a += q
            c += q
        r1, r2, r3 = Rl[t]
        s1, s2, s3 = a + r1, b + r2, c + r3
        det = s1 * s3 - s2 * s2
        i1, i2, i3 = s3 / det, -s2 / det, s1 / det  # S^-1
        k11, k12 = a * i1 + b * i2, a * i2 + b * i3  # K = P S^-1
        k21, k22 = b * i1 + c * i2, b * i2 + c * i3
        ex, ey = zl[t][0] - mx, zl[t][1] - my
        mx, my = mx + k11 * ex + k12 * ey, my + k21 * ex + k22 * ey
        a, b, c = a - (k11 * a + k12 * b), b - (k11 * b + k12 * c), c - (k21 * b + k22 * c)
        mf[t] = (mx, my)
        Pf[t] = (a, b, c)
    ms = np.empty((T, 2))
    Ps = np.empty((T, 2, 2))
    sx, sy = mx, my
    sa, sb, sc = a, b, c
    ms[T - 1] = (sx, sy)
    Ps[T - 1] = ((sa, sb), (sb, sc))
    for t in range(T - 2, -1, -1):
        fa, fb, fc = Pf[t]
        pa, pb, pc = fa + q, fb, fc + q  # predicted covariance of t + 1
        det = pa * pc - pb * pb
        i1, i2, i3 = pc / det, -pb / det, pa / det
        g11, g12 = fa * i1 + fb * i2, fa * i2 + fb * i3  # G = Pf Pp^-1
        g21, g22 = fb * i1 + fc * i2, fb * i2 + fc * i3
        fx, fy = mf[t]
        dx, dy = sx - fx, sy - fy
        sx, sy = fx + g11 * dx + g12 * dy, fy + g21 * dx + g22 * dy
        da, db, dc = sa - pa, sb - pb, sc - pc  # Ps(t+1) - Pp(t+1)
        # G D G^T with D = [[da, db], [db, dc]]
        u11, u12 = g11 * da + g12 * db, g11 * db + g12 * dc
        u21, u22 = g21 * da + g22 * db, g21 * db + g22 * dc
        sa = fa + u11 * g11 + u12 * g12
        sb = fb + u11 * g21 + u12 * g22
        sc = fc + u21 * g21 + u22 * g22
        ms[t] = (sx, sy)
        Ps[t] = ((sa, sb), (sb, sc))
    return ms, Ps
