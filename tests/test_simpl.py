"""SIMPL plugin: each step against an independent computation, the generator's statistics against
their closed forms, and a small end-to-end fit recorded in the run store."""
import argparse
import inspect

import numpy as np
import pytest

import tcnet
from tcnet import ConfigError, store
from tcnet.cli import main as cli_main, parser as cli_parser
from tcnet.resume import resume
from tcnet.store import RunWriter, list_runs, read_run
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.estep import expected_counts, gaussian_moments, likelihood_moments, overrelax, smooth
from tcnet_plugins.simpl.metrics import align, metrics, validation_mask
from tcnet_plugins.simpl.mstep import interpolate, kde_fields, latent_kernels, spike_sums
from tcnet_plugins.simpl.space import Space, wrap
from tcnet_plugins.simpl import SIMPL, SimplLatent, fit
from tcnet_plugins.simpl.estimator import RENAMED
from tcnet_plugins.simpl.optimizer import SimplEM
from test_store_failures import StopAt  # a recorder that presses Ctrl-C at a step

SMALL = {"n_cells": 60, "duration": 300.0}


def test_kde_matches_direct_sum():
    rng = np.random.default_rng(1)
    T, N, h, dt = 40, 3, 0.07, 0.1
    x = rng.uniform(0, 1, size=(T, 2))
    y = rng.poisson(1.5, size=(T, N))
    mask = rng.uniform(size=(T, N)) > 0.3
    grid = (np.linspace(0, 1, 4), np.linspace(-0.1, 1.1, 5))
    got = kde_fields(latent_kernels(x, grid, h), y, mask, dt, floor=1e-9)
    assert got.shape == (N, 4, 5)
    want = np.zeros((N, 4, 5))
    for n in range(N):
        for i, gx in enumerate(grid[0]):
            for j, gy in enumerate(grid[1]):
                k = [np.exp(-((gx - x[t, 0]) ** 2 + (gy - x[t, 1]) ** 2) / (2 * h * h)) for t in range(T)]
                num = sum(k[t] * y[t, n] for t in range(T) if mask[t, n])
                den = sum(k[t] for t in range(T) if mask[t, n])
                want[n, i, j] = num / (dt * den)
    np.testing.assert_allclose(got, want, rtol=2e-5)


def test_spike_sums_by_tiles_match_the_whole_product():
    """The tiled numerator (mstep.spike_sums) equals sum_t w_tn kx[t, i] ky[t, j] computed whole in
    float64, on a grid many kernel widths wide (the kernels cut to 0 beyond CUTOFF bandwidths, so
    each tile covers a few columns) with a latent that leaves part of the grid, and some tiles,
    empty."""
    rng = np.random.default_rng(11)
    T, N = 3000, 4
    x = np.c_[rng.uniform(0, 1, T), rng.uniform(0, 0.6, T)]
    grid = (np.linspace(-0.05, 1.05, 111), np.linspace(-0.05, 1.05, 97))
    kernels = latent_kernels(x, grid, 0.01)
    assert (kernels[0] > 0).sum(axis=0).max() < T / 5  # the cut makes each grid column see few bins
    w = rng.poisson(0.3, size=(T, N)) * (rng.uniform(size=(T, N)) > 0.1)
    want = np.einsum("tn,it,jt->nij", w.astype(float), kernels[0].astype(float), kernels[1].astype(float))
    np.testing.assert_allclose(spike_sums(kernels, w).reshape(want.shape), want, rtol=1e-5, atol=1e-6)


def test_circular_kde_matches_the_direct_sum_over_images():
    """On the circle the kernel is the wrapped Gaussian: a direct sum over many images of 2 pi."""
    rng = np.random.default_rng(11)
    T, N, h, dt = 50, 2, 0.9, 0.1  # a wide kernel, so that the images +-2 pi matter
    x = rng.uniform(0, 2 * np.pi, size=(T, 1))
    y = rng.poisson(2.0, size=(T, N))
    mask = np.ones((T, N), bool)
    grid = (np.arange(12) * 2 * np.pi / 12,)
    got = kde_fields(latent_kernels(x, grid, h, angular=True), y, mask, dt, floor=1e-9)
    k = sum(np.exp(-0.5 * ((grid[0][:, None] - x[None, :, 0] + 2 * np.pi * j) / h) ** 2) for j in range(-6, 7))
    want = (k @ y).T / (dt * k.sum(axis=1))
    np.testing.assert_allclose(got, want, rtol=2e-5)
    assert got.shape == (N, 12)


def test_rate_floor_applies_where_no_data():
    x = np.full((5, 2), 0.5)
    got = kde_fields(latent_kernels(x, (np.linspace(0, 1, 3),) * 2, 0.02), np.zeros((5, 2)), np.ones((5, 2), bool), 0.1, 0.3)
    np.testing.assert_array_equal(got, 0.3)


def test_bilinear_interpolation_is_exact_for_linear_fields():
    grid = (np.linspace(0, 1, 6), np.linspace(-0.5, 1.5, 9))
    gx, gy = np.meshgrid(*grid, indexing="ij")
    fields = np.stack([2 + 3 * gx - gy, 1 + gx * 0 + 0.5 * gy])
    pts = np.random.default_rng(2).uniform([0, -0.5], [1, 1.5], size=(50, 2))
    want = np.stack([2 + 3 * pts[:, 0] - pts[:, 1], 1 + 0.5 * pts[:, 1]], axis=1)
    np.testing.assert_allclose(interpolate(fields, grid, pts), want, rtol=1e-12)
    line = (np.linspace(-1, 2, 7),)
    u = np.random.default_rng(3).uniform(-1, 2, size=(20, 1))
    np.testing.assert_allclose(interpolate(np.stack([4 - 2 * line[0]]), line, u)[:, 0], 4 - 2 * u[:, 0], rtol=1e-12)


def test_interpolation_on_the_circle_joins_the_last_grid_point_to_the_first():
    grid = (np.arange(8) * 2 * np.pi / 8,)
    fields = np.arange(8.0)[None]
    last = 7 * 2 * np.pi / 8
    x = np.array([[last + 0.25 * 2 * np.pi / 8], [last + 0.25 * 2 * np.pi / 8 - 2 * np.pi], [0.5 * 2 * np.pi / 8]])
    np.testing.assert_allclose(interpolate(fields, grid, x, angular=True)[:, 0], [7 - 0.25 * 7, 7 - 0.25 * 7, 0.5])


def test_factored_poisson_maps_match_direct_formula():
    rng = np.random.default_rng(3)
    T, N, G = 6, 4, 7
    y = rng.poisson(2.0, size=(T, N))
    mask = rng.uniform(size=(T, N)) > 0.4
    rate_dt = rng.uniform(0.1, 3.0, size=(N, G))
    offsets, run_of = expected_counts(mask, rate_dt.astype(np.float32))
    got = (y * mask) @ np.log(rate_dt) + offsets[run_of]
    want = np.array([[sum(y[t, n] * np.log(rate_dt[n, g]) - rate_dt[n, g] for n in range(N) if mask[t, n])
                      for g in range(G)] for t in range(T)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


BITS = 1 / np.log(2)  # gaussian_moments takes log-likelihoods in bits


def test_moment_matching_recovers_a_gaussian_log_likelihood():
    s = 0.01
    gx, gy = np.arange(-0.5, 0.5 + s / 2, s), np.arange(-0.4, 0.6 + s / 2, s)
    points = np.stack([a.ravel() for a in np.meshgrid(gx, gy, indexing="ij")], axis=1)
    mean = np.array([0.03, 0.12])
    cov = np.array([[0.004, 0.0015], [0.0015, 0.002]])
    d = points - mean
    ll = -0.5 * np.einsum("gi,ij,gj->g", d, np.linalg.inv(cov), d) + 7.0
    z, R = gaussian_moments((ll[None] * BITS).astype(np.float32), (gx, gy))
    np.testing.assert_allclose(z[0], mean, atol=1e-6)  # float32 log-likelihoods
    # a finely sampled Gaussian has the continuous covariance; the floor adds s^2/12 per axis
    np.testing.assert_allclose(R[0], cov + np.eye(2) * s * s / 12, rtol=2e-3)


def test_moment_matching_in_one_dimension_and_on_the_circle():
    s = 0.01
    line = np.arange(-1, 1 + s / 2, s)[:, None]
    ll = -0.5 * (line[:, 0] - 0.2) ** 2 / 0.003
    z, R = gaussian_moments(ll[None] * BITS, (line[:, 0],))
    np.testing.assert_allclose(z[0], [0.2], atol=1e-9)
    np.testing.assert_allclose(R[0], [[0.003 + s * s / 12]], rtol=2e-3)
    # an added log prior is a second Gaussian factor: the precision-weighted product
    prior = -0.5 * (line[:, 0] + 0.1) ** 2 / 0.006
    z, R = gaussian_moments(ll[None] * BITS, (line[:, 0],), offsets=prior[None] * BITS, run_of=np.zeros(1, int))
    np.testing.assert_allclose(z[0], [(0.2 / 0.003 - 0.1 / 0.006) / (1 / 0.003 + 1 / 0.006)], atol=1e-9)
    np.testing.assert_allclose(R[0], [[1 / (1 / 0.003 + 1 / 0.006) + s * s / 12]], rtol=2e-3)
    # a von Mises likelihood kappa cos(x - mu): its wrapped-normal variance is -2 log(I1(kappa) / I0(kappa))
    from scipy.special import i0e, i1e

    n, kappa, mu = 720, 3.0, 0.25 * np.pi
    circle = (np.arange(n) * 2 * np.pi / n)[:, None]
    z, R = gaussian_moments(BITS * kappa * np.cos(circle[:, 0] - mu)[None], (circle[:, 0],), angular=True)
    np.testing.assert_allclose(z[0], [mu], atol=1e-12)  # the circular mean
    want = -2 * np.log(i1e(kappa) / i0e(kappa)) + (2 * np.pi / n) ** 2 / 12
    np.testing.assert_allclose(R[0, 0, 0], want, rtol=1e-5)


def test_a_tempered_likelihood_is_the_map_times_the_exponent():
    """Annealing's E-step: a mask of beta instead of 1 gives the moments of exp(beta L_t) pi, L_t
    the direct Poisson log-likelihood map and pi the (untempered) occupancy prior."""
    rng = np.random.default_rng(6)
    grid = (np.linspace(0, 1, 6), np.linspace(0, 0.5, 4))
    fields = rng.uniform(0.5, 20, size=(5, 6, 4))
    y = rng.poisson(1.5, size=(3, 5))
    mask = rng.uniform(size=y.shape) > 0.3
    log_prior = np.log(rng.uniform(0.1, 1, size=24))
    beta, dt = 0.4, 0.1
    z, R = likelihood_moments(y, beta * mask, fields, grid, dt, log_prior=log_prior)
    points = np.stack([a.ravel() for a in np.meshgrid(*grid, indexing="ij")], axis=1)
    rate_dt = fields.reshape(5, -1) * dt
    for t in range(len(y)):
        ll = sum(y[t, n] * np.log(rate_dt[n]) - rate_dt[n] for n in range(5) if mask[t, n])
        w = np.exp(beta * ll + log_prior - np.max(beta * ll + log_prior))
        mean = w @ points / w.sum()
        d = points - mean
        cov = (w[:, None, None] * d[:, :, None] * d[:, None, :]).sum(axis=0) / w.sum()
        np.testing.assert_allclose(z[t], mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(R[t], cov + np.diag([0.2**2, (0.5 / 3) ** 2]) / 12, rtol=1e-4, atol=1e-6)


def test_the_annealing_exponent_rises_geometrically_to_one():
    rule = tcnet.registry().get("optimizer", "simpl")
    plane = SimplLatent.create(generator={"n_cells": 5, "duration": 20.0})
    circle = SimplLatent.create(generator={"kind": "head_direction", "n_cells": 5, "duration": 20.0})
    beta = [rule(temper=0.25).exponent(plane, t) for t in range(10)]  # the default: all 10 E-steps but the last
    np.testing.assert_allclose(beta, [0.25 ** (1 - t / 9) for t in range(9)] + [1])
    beta = [rule(anneal=4, temper=0.5).exponent(plane, t) for t in range(6)]
    np.testing.assert_allclose(beta, [0.5, 0.5**0.75, 0.5**0.5, 0.5**0.25, 1, 1])
    np.testing.assert_allclose([rule(steps=4, anneal=20).exponent(plane, t) for t in range(4)],
                               [0.25, 0.25 ** (2 / 3), 0.25 ** (1 / 3), 1])  # at most all steps but the last
    assert rule(anneal=0).exponent(plane, 0) == rule().exponent(circle, 0) == 1.0


def test_silent_bins_get_uninformative_noise():
    grid = (np.linspace(0, 1, 5), np.linspace(0, 1, 5))
    fields = np.random.default_rng(4).uniform(1, 5, size=(3, 5, 5))
    y = np.array([[0, 0, 0], [1, 0, 2]])
    _, R = likelihood_moments(y, np.ones_like(y, bool), fields, grid, 0.1)
    np.testing.assert_array_equal(R[0], 1e6 * np.eye(2))
    assert R[1, 0, 0] < 1


def test_likelihood_moments_match_float64_maps_across_chunks_and_threads(monkeypatch):
    """Three bins per chunk, groups of GROUP chunks shared by 3 threads, a validation mask in blocks
    and an occupancy prior: the moments equal those of the maps computed directly in float64."""
    from tcnet_plugins.simpl import estep

    monkeypatch.setattr(estep, "CHUNK_ENTRIES", 3 * 42)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert estep.workers() == 3
    rng = np.random.default_rng(5)
    grid = (np.linspace(0, 1, 7), np.linspace(-0.5, 0.5, 6))
    T, N = 100, 5
    fields = rng.uniform(0.5, 20, size=(N, 7, 6))
    y = rng.poisson(1.0, size=(T, N))
    mask = ~validation_mask(T, N, 4, 0.25, 1)
    log_prior = np.log(rng.uniform(0.1, 1, size=42))
    z, R = likelihood_moments(y, mask, fields, grid, 0.1, log_prior=log_prior)
    rate = fields.reshape(N, -1) * 0.1
    ll = (y * mask) @ np.log(rate) - mask @ rate + log_prior
    w = np.exp(ll - ll.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    points = np.stack([a.ravel() for a in np.meshgrid(*grid, indexing="ij")], axis=1)
    mean = w @ points
    d = points[None] - mean[:, None]
    cov = np.einsum("tg,tgi,tgj->tij", w, d, d) + np.diag([(a[1] - a[0]) ** 2 / 12 for a in grid])
    silent = (y * mask).sum(axis=1) == 0
    cov[silent] = 1e6 * np.eye(2)
    np.testing.assert_allclose(z[~silent], mean[~silent], atol=1e-5)  # float32 maps
    np.testing.assert_allclose(R, cov, rtol=1e-4, atol=1e-7)


def test_runs_cut_each_run_of_equal_mask_rows_from_its_start():
    from tcnet_plugins.simpl.mstep import runs

    mask = np.repeat(np.array([[1, 0], [1, 1], [0, 0], [0, 1]], bool), [10, 3, 20, 1], axis=0)
    np.testing.assert_array_equal(runs(mask, 16), [0, 10, 13, 29, 33])
    np.testing.assert_array_equal(runs(mask, 100), [0, 10, 13, 33])


def dense_posterior_mean(z, R, q, m0, P0, starts):
    """The posterior mean by one dense solve: precision and linear term of
    prod_segments N(x_start | m0, P0) prod_t N(z_t | x_t, R_t) prod_links N(x_t - x_t-1 | 0, q I)."""
    T, D = z.shape
    Lam = np.zeros((D * T, D * T))
    b = np.zeros(D * T)
    for t in range(T):
        sl = slice(D * t, D * t + D)
        Ri = np.linalg.inv(R[t])
        Lam[sl, sl] += Ri
        b[sl] += Ri @ z[t]
        if t in starts:
            Lam[sl, sl] += np.linalg.inv(P0)
            b[sl] += np.linalg.solve(P0, m0)
        else:
            prev = slice(D * (t - 1), D * t)
            for a, c, sign in ((sl, sl, 1), (prev, prev, 1), (sl, prev, -1), (prev, sl, -1)):
                Lam[a, c] += sign * np.eye(D) / q
    return np.linalg.solve(Lam, b).reshape(T, D)


@pytest.mark.parametrize("D", [1, 2])
@pytest.mark.parametrize("starts", [(0,), (0, 4, 5)])
def test_smoother_equals_dense_gaussian_posterior(D, starts):
    rng = np.random.default_rng(5)
    T, q = 9, 0.03
    z = rng.normal(size=(T, D))
    L = rng.normal(size=(T, D, D)) * 0.4
    R = L @ L.transpose(0, 2, 1) + 0.05 * np.eye(D)
    m0 = np.array([0.2, -0.1])[:D]
    P0 = np.array([[0.5, 0.1], [0.1, 0.3]])[:D, :D]
    want = dense_posterior_mean(z, R, q, m0, P0, starts)
    np.testing.assert_allclose(smooth(z, R, q, m0, P0, starts), want, rtol=1e-9, atol=1e-12)


def test_a_time_gap_splits_the_smoother_into_independent_segments():
    rng = np.random.default_rng(9)
    z = rng.normal(size=(12, 2))
    R = np.tile(np.eye(2) * 0.2, (12, 1, 1))
    m0, P0 = np.zeros(2), np.eye(2)
    split = smooth(z, R, 0.01, m0, P0, starts=(0, 7))
    np.testing.assert_allclose(split[:7], smooth(z[:7], R[:7], 0.01, m0, P0), rtol=1e-12)
    np.testing.assert_allclose(split[7:], smooth(z[7:], R[7:], 0.01, m0, P0), rtol=1e-12)
    from tcnet_plugins.simpl.estep import segment_starts

    time = np.r_[np.arange(7) * 0.1, 5.0 + np.arange(5) * 0.1]
    np.testing.assert_array_equal(segment_starts(time, 0.1), [0, 7])


def test_alignment_recovers_a_known_affine_map():
    rng = np.random.default_rng(6)
    latent = rng.normal(size=(200, 2))
    M, c = np.array([[1.3, -0.4], [0.2, 0.8]]), np.array([0.5, -0.25])
    aligned, coef = align(latent, latent @ M + c)
    assert coef.shape == (3, 2)  # constant and the two standardized coordinates
    np.testing.assert_allclose(aligned, latent @ M + c, atol=1e-12)


def test_polynomial_alignment_undoes_a_smooth_warp_seen_through_noisy_behaviour():
    rng = np.random.default_rng(7)
    truth = rng.uniform(0, 1, size=(20000, 2))
    # an invertible cubic warp: the latent is the truth seen through a smooth distortion
    latent = truth + 0.08 * np.stack([np.sin(2 * truth[:, 1]) * truth[:, 0], truth[:, 0] ** 3], axis=1)
    exact, coef = align(latent, truth, degree=3)
    assert coef.shape == (10, 2)
    warp_cm = [100 * np.linalg.norm(align(latent, truth, degree=d)[0] - truth, axis=1).mean() for d in (1, 3, 5)]
    assert warp_cm[0] > 0.5 and warp_cm[2] < warp_cm[1] < warp_cm[0] / 5  # cubic terms carry the warp
    # through behaviour = truth + independent noise (sd 16 cm per axis) the fit finds the same map up
    # to the regression's sampling error, about 16 cm * sqrt(10 coefficients / 20000 samples) per axis,
    # and lands closer to the truth than even the exact affine map does
    behaviour = truth + rng.normal(scale=0.16, size=truth.shape)
    noisy = align(latent, behaviour, degree=3)[0]
    assert 100 * np.linalg.norm(noisy - exact, axis=1).mean() < 2 * 16 * np.sqrt(10 / 20000) * np.sqrt(2)
    assert 100 * np.linalg.norm(noisy - truth, axis=1).mean() < warp_cm[0]


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_alignment_on_the_circle_is_a_rotation_or_a_reflection(sign):
    rng = np.random.default_rng(10)
    latent = rng.uniform(0, 2 * np.pi, size=(500, 1))
    behaviour = np.mod(sign * latent + 2.0 + rng.normal(scale=0.1, size=latent.shape), 2 * np.pi)
    aligned, (s, phi) = align(latent, behaviour, angular=True)
    assert s == sign and abs(wrap(phi - 2.0)) < 0.02
    assert np.abs(wrap(aligned - np.mod(sign * latent + 2.0, 2 * np.pi))).max() < 0.02


def test_metrics_match_scipy_log_pmf_sums():
    from scipy.stats import poisson

    rng = np.random.default_rng(8)
    T, N, dt = 300, 4, 0.1
    rates = rng.uniform(0.5, 20.0, size=(T, N))
    y = rng.poisson(rates * dt)
    val = validation_mask(T, N, 10, 0.2, 3)
    latent, truth = rng.normal(size=(T, 2)), rng.normal(size=(T, 2))
    got = metrics(y, rates, dt, val, latent, truth, Space("linear", 2))
    logp = poisson.logpmf(y, rates * dt)
    assert got["train_ll"] == pytest.approx(logp[~val].sum() / y[~val].sum(), rel=1e-12)
    assert got["val_ll"] == pytest.approx(logp[val].sum() / y[val].sum(), rel=1e-12)
    mean = np.array([y[~val[:, n], n].mean() for n in range(N)])
    ref = sum(poisson.logpmf(y[val[:, n], n], mean[n]).sum() for n in range(N))
    assert got["bits_per_spike"] == pytest.approx((logp[val].sum() - ref) / (y[val].sum() * np.log(2)), rel=1e-10)
    assert got["latent_error"] == pytest.approx(np.mean(np.hypot(*(latent - truth).T)), rel=1e-12)
    circle = Space("angular", 1)
    assert circle.error(np.array([[0.1], [6.2]]), np.array([[6.2], [0.1]])) == pytest.approx(2 * np.pi - 6.1)


def test_validation_mask_holds_out_whole_blocks_per_cell():
    val = validation_mask(1003, 7, 10, 0.1, seed=0)
    n_blocks = 101
    for n in range(7):
        blocks = val[:1000, n].reshape(100, 10)
        assert np.all(blocks.all(axis=1) | ~blocks.any(axis=1))  # whole blocks only
        assert val[:, n].reshape(-1)[::10].sum() == round(0.1 * n_blocks)
    assert not np.array_equal(val[:, 0], val[:, 1])  # drawn per cell


def test_generator_statistics_match_their_closed_forms():
    # a box so large that no wall is hit: velocity is the stationary OU process
    d = simdata.generate(3, n_cells=3, duration=6000.0, box=1000.0, field_bins=2)
    v = np.diff(d["truth"], axis=0) / 0.1
    assert np.linalg.norm(v, axis=1).mean() == pytest.approx(0.08, rel=0.05)
    lag = 7  # 0.7 s: autocorrelation exp(-1)
    r = (v[:-lag] * v[lag:]).sum() / (v * v).sum()
    assert r == pytest.approx(np.exp(-1), abs=0.06)
    err = np.linalg.norm(d["behaviour"] - d["truth"], axis=1).mean()
    assert err == pytest.approx(0.2, rel=0.15)


def test_generator_in_the_unit_box_and_peak_rates():
    d = simdata.generate(0, n_cells=9, duration=200.0, field_bins=2)
    assert d["truth"].min() >= 0 and d["truth"].max() <= 1
    rng = np.random.default_rng(0)
    scales = [0.3, 0.5, 0.8]
    k, phase, module_of = simdata.grid_parameters(rng, 9, scales)
    lam = np.array(scales)[module_of]
    np.testing.assert_allclose(np.linalg.norm(k, axis=2), np.outer(2 * np.pi / lam, np.ones(3)))  # RatInABox scale
    # a rectified-cosine grid cell peaks with max_rate at its phase and at every point of its
    # triangular lattice: spacing 2 lambda / sqrt(3), neighbours 60 degrees apart
    for n in range(9):
        theta = np.arctan2(k[n, 0, 1], k[n, 0, 0]) + np.pi / 6 + np.arange(6) * np.pi / 3
        peaks = phase[n] + 2 * lam[n] / np.sqrt(3) * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        rates = simdata.grid_rates(np.vstack([phase[n], peaks]), k[n : n + 1], phase[n : n + 1], 10.0)
        np.testing.assert_allclose(rates[:, 0], 10.0)
        midway = simdata.grid_rates((phase[n] + peaks[0]) / 2, k[n : n + 1], phase[n : n + 1], 10.0)
        assert midway[0, 0] < 10.0
    assert d["counts"].dtype == np.int32 and d["counts"].shape == (2000, 9)


def test_hdf5_roundtrip(tmp_path):
    d = simdata.generate(2, n_cells=6, duration=50.0, field_bins=10)
    simdata.save(tmp_path / "b.h5", d)
    back = simdata.load(tmp_path / "b.h5")
    for key in ("counts", "truth", "behaviour", "time", "fields"):
        np.testing.assert_array_equal(back[key], d[key])
    for a, b in zip(back["field_axes"], d["field_axes"]):
        np.testing.assert_array_equal(a, b)
    assert back["settings"] == d["settings"] and back["seed"] == 2


@pytest.mark.parametrize("kind", ["linear_track", "head_direction"])
def test_one_dimensional_generators_match_their_settings(kind):
    d = simdata.generate(4, kind=kind, n_cells=5, duration=3000.0, field_bins=8)
    s = d["settings"]
    assert d["truth"].shape == d["behaviour"].shape == (30000, 1) and d["fields"].shape == (5, 8)
    space = Space(simdata.space_of(s), 1)
    step = space.difference(d["truth"][1:], d["truth"][:-1])[:, 0] / s["dt"]
    if kind == "head_direction":  # free rotation: mean |angular velocity| is the setting
        assert np.abs(step).mean() == pytest.approx(s["speed"], rel=0.05)
        assert d["truth"].min() >= 0 and d["truth"].max() < 2 * np.pi
    else:
        assert d["truth"].min() >= 0 and d["truth"].max() <= s["box"]
    # behaviour noise: mean |error| along the space (half-normal mean)
    assert space.error(d["behaviour"], d["truth"]) == pytest.approx(s["noise_mean"], rel=0.15)
    # counts are Poisson at the tuning curve: mean count per bin equals the mean rate times dt
    centre = d["centres"]
    x = d["truth"][:, 0]
    if kind == "head_direction":
        rates = s["max_rate"] * np.exp(s["concentration"] * (np.cos(x[:, None] - centre) - 1))
    else:
        rates = s["max_rate"] * np.exp(-0.5 * ((x[:, None] - centre) / s["width"]) ** 2)
    np.testing.assert_allclose(d["counts"].mean(axis=0), rates.mean(axis=0) * s["dt"], rtol=0.1, atol=0.002)


def test_bad_settings_name_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match="bandwidth"):
        SimplLatent.create(generator=SMALL, bandwidth=-1.0)
    with pytest.raises(ConfigError, match="n_cells"):
        SimplLatent.create(generator={"n_cells": 0})
    with pytest.raises(ConfigError, match="kind must be one of"):
        SimplLatent.create(generator={"kind": "place"})
    with pytest.raises(ConfigError, match="unknown setting"):
        SimplLatent.create(generator=SMALL, smoothing=3)
    with pytest.raises(ConfigError, match="not both"):
        SimplLatent.create(generator=SMALL, data="recording.h5")
    with pytest.raises(ConfigError, match="simpl_nll: unknown setting 'splt' \\(did you mean 'split'\\?\\)"):
        tcnet.run({"dynamics": {"name": "simpl_latent"}, "loss": [{"name": "simpl_nll", "splt": "train"}],
                   "optimizer": {"name": "simpl"}}, progress=False)
    with pytest.raises(ConfigError, match="SIMPL: unknown setting 'iteration' \\(did you mean 'iterations'\\?\\)"):
        SIMPL(iteration=3)
    with pytest.raises(ConfigError, match="does not exist"):
        SimplLatent.create(data=str(tmp_path / "missing.h5"))
    with pytest.raises(ConfigError, match="speed"):
        tcnet.registry().get("optimizer", "simpl")(speed=0)
    with pytest.raises(ConfigError, match="align_degree"):
        SIMPL(align_degree=-1)
    with pytest.raises(ConfigError, match="temper"):
        SIMPL(temper=0)
    with pytest.raises(ConfigError, match="anneal"):
        SIMPL(anneal=-1)
    with pytest.raises(ConfigError, match="angular latent has 1 dimension"):
        Space("angular", 2)


def test_behaviour_speed_is_the_rms_step_per_axis_within_segments():
    """A walk at constant velocity (0.3, 0.4) m/s in two segments: the speed is the root mean
    squared step per axis over dt, sqrt((0.3^2 + 0.4^2) / 2), whatever the jump across the gap."""
    dt, T = 0.1, 400
    time = np.r_[np.arange(200), np.arange(300, 500)] * dt
    behaviour = np.outer(np.arange(T) * dt, [0.3, 0.4]) + np.where(np.arange(T) < 200, 0.0, 5.0)[:, None]
    counts = np.random.default_rng(0).poisson(1.0, size=(T, 3))
    net = SimplLatent.from_arrays(counts, behaviour, time)
    assert net.behaviour_speed == pytest.approx(np.sqrt((0.3**2 + 0.4**2) / 2), rel=1e-12)
    rule = tcnet.registry().get("optimizer", "simpl")
    assert rule().speed(net) == net.behaviour_speed and rule(speed=0.2).speed(net) == 0.2
    assert SIMPL(iterations=0).fit(counts, behaviour, time).speed_ == net.behaviour_speed
    circle = SimplLatent.from_arrays(counts, np.mod(behaviour[:, :1], 2 * np.pi), time, space="angular")
    assert rule().speed(circle) == pytest.approx(0.3, rel=1e-9)  # 0.03 rad a bin, across 0/2 pi too


def test_overrelaxation_moves_the_smoothed_step_within_each_segment():
    """A move constant within each segment is its own smoothing: x + (1 + gamma) (mu - x) on each
    side of a gap, however different the two moves; a move alternating from bin to bin (noise)
    is smoothed away, away from the ends; on the circle the move is the wrapped difference."""
    T, gap = 200, 120
    x = np.zeros((T, 2))
    mu = np.where(np.arange(T)[:, None] < gap, [0.01, -0.02], [0.05, 0.03])
    got = overrelax(Space("linear", 2), x, mu, 0.5, 10.0, np.array([0, gap]))
    np.testing.assert_allclose(got, x + 1.5 * mu, atol=1e-15)
    noise = 0.01 * (-1.0) ** np.arange(T)[:, None] * np.ones((1, 2))
    got = overrelax(Space("linear", 2), x, noise, 1.0, 10.0, np.array([0]))
    assert np.abs(got - noise)[40:-40].max() < 1e-6  # 4 widths from the ends, where the padding is
    circle = Space("angular", 1)
    x, mu = np.full((T, 1), 6.2), np.full((T, 1), 0.1)  # a move of 0.1 + 2 pi - 6.2 across zero
    move = 0.1 + 2 * np.pi - 6.2
    np.testing.assert_allclose(overrelax(circle, x, mu, 1.0, 5.0, np.array([0])), np.mod(6.2 + 2 * move, 2 * np.pi))


def test_an_overrelaxed_point_is_kept_only_when_validation_rises():
    """accelerate = 1000 throws the latent far off: the validation log-likelihood falls there, so
    the E-step's own point is taken and EM goes on plain, exactly as accelerate = 0 (one
    evaluation more: the rejected point's); with the default, the kept points are evaluated once."""
    plain = fit(SMALL, iterations=3, accelerate=0)
    wild = fit(SMALL, iterations=3, accelerate=1000.0)
    for a, b in zip(plain.history_, wild.history_, strict=True):
        np.testing.assert_array_equal(a["latent"], b["latent"])
    assert wild.result_.result.evaluations == plain.result_.result.evaluations + 1
    default = fit(SMALL, iterations=3)
    assert default.result_.result.evaluations == len(default.history_)
    val = [h["val_ll"] for h in default.history_]
    assert all(b > a for a, b in zip(val, val[1:]))


def test_gradient_optimizers_are_refused():
    spec = {"dynamics": {"name": "simpl_latent", "generator": {"n_cells": 5, "duration": 20.0}},
            "loss": [{"name": "simpl_nll"}], "optimizer": {"name": "lbfgs", "max_iter": 2}}
    with pytest.raises(ConfigError, match="not differentiable"):
        tcnet.run(spec, progress=False)


def test_small_fit_improves_and_is_recorded_in_the_store(tmp_path):
    model = fit(SMALL, iterations=3, store=tmp_path / "runs.h5")
    steps = model.result_.history.steps
    err = [h["latent_error"] for h in model.history_]
    val = [h["val_ll"] for h in model.history_]
    assert 0.15 < err[0] < 0.25  # behaviour: about 20 cm from the truth
    assert min(err[1:]) < err[0] - 0.02
    assert val[1] > val[0]
    assert [s.loss for s in steps] == pytest.approx([-v for v in val])
    assert all(np.isnan(s.grad_norm) for s in steps)  # EM has no gradient to report
    # the returned latent is the last iterate; the run ends early only where the rise stopped
    np.testing.assert_array_equal(model.latent_, model.history_[-1]["latent"])
    assert model.result_.result.status == ("converged" if len(val) < 4 else "max_steps")
    assert all(b > a for a, b in zip(val[:-2], val[1:-1]))
    rec = read_run(tmp_path / "runs.h5", model.run_id_)
    assert rec.status == "finished"
    np.testing.assert_allclose(rec.history["extra/latent_error"], err)
    np.testing.assert_allclose(rec.history["extra/val_ll"], val)
    np.testing.assert_allclose(rec.final.arrays["latent"], model.latent_)
    # the stored network holds the data: its M-step gives the fitted tuning curves again, bitwise
    # (the estimator takes them from the run's last evaluation, not from a final M-step of its own)
    assert model.result_.evaluation is not None
    again = rec.final.state()
    np.testing.assert_array_equal(again.fields, model.fields_)
    np.testing.assert_array_equal(again.log_occupancy, model.log_occupancy_)
    assert all(np.array_equal(a, b) for a, b in zip(again.axes, model.axes_, strict=True))
    assert list_runs(tmp_path / "runs.h5") == [model.run_id_]


def test_the_stored_spec_holds_the_speed_anneal_and_gain_the_fit_used(tmp_path):
    """speed, anneal and accelerate left None are stored as the numbers the fit used, so that a
    resumed run uses them whatever the defaults become: on the plane behaviour's root mean squared
    step per axis over dt (computed here from the generated data, which has no time gaps), all
    E-steps but the last and a gain of 1; on the circle behaviour's root mean squared angular step
    (each the angle of exp(i step), in (-pi, pi]) over dt, no annealing and plain EM. Given values
    are stored as given."""
    path = tmp_path / "runs.h5"
    plane, circle = {"n_cells": 20, "duration": 60.0}, {"kind": "head_direction", "n_cells": 20, "duration": 60.0}
    behaviour = simdata.generate(0, **plane)["behaviour"]
    rms = np.sqrt(np.mean(np.diff(behaviour, axis=0) ** 2)) / simdata.COMMON["dt"]
    heading = simdata.generate(0, **circle)["behaviour"]
    turning = np.sqrt(np.mean(np.angle(np.exp(1j * np.diff(heading[:, 0]))) ** 2)) / simdata.COMMON["dt"]
    for generator, given, used in [(plane, {}, {"speed": rms, "anneal": 2, "accelerate": 1.0}),
                                   (circle, {}, {"speed": turning, "anneal": 0, "accelerate": 0.0}),
                                   (plane, {"speed": 0.2, "anneal": 1, "accelerate": 0.5},
                                    {"speed": 0.2, "anneal": 1, "accelerate": 0.5})]:
        writer = RunWriter(path)
        tcnet.run({"dynamics": {"name": "simpl_latent", "generator": generator}, "loss": [{"name": "simpl_nll"}],
                   "optimizer": {"name": "simpl", "steps": 3, **given}}, recorders=[writer], progress=False)
        stored = read_run(path, writer.run_id).spec["optimizer"]
        assert {k: stored[k] for k in used} == pytest.approx(used, rel=1e-12)


def test_estimator_keywords_and_cli_flags_are_the_declared_settings():
    """SIMPL's keywords and `tcnet simpl fit`'s flags are the settings simpl_latent keeps and the
    simpl optimizer's (renamed by RENAMED), with their declared defaults; the flags have the
    setting's type and doc; besides them only the estimator's own keywords and the command's own
    flags. A setting declared but not mirrored, or a mirror without a declaration, fails here."""
    dynamics = {s.name: s for s in SimplLatent.SETTINGS if s.stored}
    optimizer = {RENAMED.get(s.name, s.name): s for s in SimplEM.SETTINGS}
    assert not set(dynamics) & set(optimizer)  # one keyword per setting
    declared = {**dynamics, **optimizer}
    defaults = {**{k: s.default for k, s in declared.items()}, "seed": 0, "store": None, "progress": False}
    params = inspect.signature(SIMPL).parameters
    assert {k: p.default for k, p in params.items()} == defaults
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    assert SIMPL(iterations=2, rate_floor=0.5).get_params() == {**defaults, "iterations": 2, "rate_floor": 0.5}

    def subparser(p, name):
        (action,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        return action.choices[name]

    fit_flags = subparser(subparser(cli_parser(tcnet.registry()), "simpl"), "fit")
    flags = {a.dest: a for a in fit_flags._actions if a.option_strings and a.dest not in ("help", "plugin")}
    assert set(flags) - set(declared) == {"truth", "series", "dry_run", "seed", "store", "out", "figures", "force"}
    assert set(declared) <= set(flags)
    types = {"Real": float, "Integer": int, "Array": float, "Choice": None}
    for name, s in declared.items():
        flag = flags[name]
        assert flag.option_strings == ["--" + name.replace("_", "-")], name
        assert flag.default == s.default and s.doc in flag.help and s.unit in flag.help, name
        assert flag.type is types[type(s).__name__], name
        assert flag.choices == (s.options if type(s).__name__ == "Choice" else None), name


def test_bad_flag_values_are_refused_in_one_line_before_the_file_is_read(tmp_path, capsys):
    """Each bad value is named in one line with exit 2; the file does not exist, and that is not
    what is reported: the settings are checked first."""
    absent = str(tmp_path / "absent.h5")
    for flags, message in [(["--space", "circle"], "invalid choice: 'circle'"),
                           (["--iterations", "1.5"], "invalid int value: '1.5'"),
                           (["--grid-margin", "-1"], "grid_margin must be"),
                           (["--rate-floor", "0"], "rate_floor must be"),
                           (["--anneal", "-1"], "anneal must be"), (["--speed", "0"], "speed must be"),
                           (["--extent", "0", "1", "0"], "--extent takes a LOW HIGH pair per axis, got 3 number(s)"),
                           (["--seed", "-1"], "seed must be")]:
        try:
            code = cli_main(["simpl", "fit", absent, *flags])
        except SystemExit as usage_error:  # argparse's, for a value of the wrong type
            code = usage_error.code
        assert code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "does not exist" not in err, (flags, err)


def test_grid_margin_and_rate_floor_flags_reach_the_fit(tmp_path, capsys):
    data, runs = tmp_path / "bench.h5", tmp_path / "runs.h5"
    assert cli_main(["simpl", "generate", str(data), "--cells", "20", "--duration", "60"]) == 0
    assert cli_main(["simpl", "fit", str(data), "--iterations", "0", "--grid-margin", "0.1", "--rate-floor", "0.05",
                     "--store", str(runs)]) == 0
    config = read_run(runs, list_runs(runs)[0]).initial.config
    assert (config["grid_margin"], config["rate_floor"]) == (0.1, 0.05)


def test_stored_network_round_trips_through_the_run_spec(tmp_path):
    """A run built from the spec (generator settings) is recorded and resumable like any other."""
    writer = RunWriter(tmp_path / "runs.h5")
    spec = {"dynamics": {"name": "simpl_latent", "generator": {"n_cells": 20, "duration": 60.0}},
            "loss": [{"name": "simpl_nll"}], "optimizer": {"name": "simpl", "steps": 1}}
    res = tcnet.run(spec, recorders=[writer], progress=False)
    rec = read_run(tmp_path / "runs.h5", writer.run_id)
    np.testing.assert_array_equal(rec.initial.data["counts"], res.initial.data["counts"])
    assert rec.initial.config["space"] == "linear"
    # the space's defaults are stored as numbers: a later change of a default leaves this fit as it was
    assert (rec.initial.config["bandwidth"], rec.initial.config["grid_spacing"]) == (0.02, 0.02)


@pytest.mark.parametrize("accelerate", [1.0, 1000.0])
def test_a_resumed_fit_equals_the_uninterrupted_one(tmp_path, accelerate):
    """Interrupted after its second E-step and resumed from the store: the same iterates bitwise as
    without the interruption, with over-relaxation kept (1) or switched off by a rejection before
    the interruption (1000: the switch is in the checkpoint, so the resumed run does not try, and
    evaluate, it again)."""
    spec = {"dynamics": {"name": "simpl_latent", "generator": SMALL},
            "loss": [{"name": "simpl_nll"}], "optimizer": {"name": "simpl", "steps": 4, "accelerate": accelerate}}
    ref = tcnet.run(spec, recorders=[RunWriter(tmp_path / "ref.h5")], progress=False)
    if accelerate == 1000.0:  # the start, 4 E-steps' points, and the one rejected over-relaxed point
        assert ref.result.evaluations == 1 + 4 + 1
    path = tmp_path / "runs.h5"
    with pytest.raises(KeyboardInterrupt):
        tcnet.run(spec, recorders=[RunWriter(path, flush_steps=1), StopAt(2)], progress=False)
    resume(path, "run-0001")
    rec = read_run(path, "run-0001")
    assert rec.status == "finished" and list(rec.attrs["resumed_at"]) == [2]
    np.testing.assert_array_equal(rec.final.arrays["latent"], ref.final.arrays["latent"])
    np.testing.assert_array_equal(rec.history["loss"], ref.history.column("loss"))
    # one evaluation more: the resumed session evaluates its starting point (the checkpoint's) again
    assert rec.attrs["evaluations"] == ref.result.evaluations + 1


def test_cli_generate_and_fit(tmp_path, capsys):
    data = tmp_path / "bench.h5"
    assert cli_main(["simpl", "generate", str(data), "--cells", "30", "--duration", "120"]) == 0
    assert cli_main(["simpl", "fit", str(data), "--truth", "--iterations", "1",
                     "--figures", str(tmp_path / "fig"), "--out", str(tmp_path / "fit.npz")]) == 0
    out = capsys.readouterr().out
    assert "error (cm)" in out and "simpl_metrics.png" in out
    speed = SimplLatent.from_arrays(*(simdata.generate(0, n_cells=30, duration=120.0)[k]
                                      for k in ("counts", "behaviour", "time"))).behaviour_speed
    assert f"random-walk speed {speed:.3g} m/s (measured from behaviour)" in out
    for name in ("simpl_trajectories.png", "simpl_tuning_curves.png", "simpl_metrics.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 1000
    with np.load(tmp_path / "fit.npz") as f:
        assert f["latent"].shape == (1200, 2) and f["fields"].shape[1:] == (f["axis_0"].size, f["axis_1"].size)
    # without --truth there is no error column; nothing existing is replaced
    assert cli_main(["simpl", "fit", str(data), "--iterations", "0"]) == 0
    assert "error" not in capsys.readouterr().out
    before = data.stat().st_mtime_ns
    assert cli_main(["simpl", "generate", str(data), "--cells", "3", "--duration", "10"]) == 2
    assert cli_main(["simpl", "fit", str(data), "--iterations", "0", "--out", str(tmp_path / "fit.npz")]) == 2
    assert cli_main(["simpl", "fit", str(data), "--iterations", "0", "--figures", str(tmp_path / "fig")]) == 2
    err = capsys.readouterr().err
    assert err.count("exists already") == 3 and "Traceback" not in err
    assert data.stat().st_mtime_ns == before
    assert cli_main(["simpl", "fit", str(data), "--iterations", "0", "--out", str(tmp_path / "fit.npz"),
                     "--figures", str(tmp_path / "fig"), "--force"]) == 0
    with np.load(tmp_path / "fit.npz") as f:
        assert f["latent"].shape == (1200, 2)


def test_grid_covers_the_latent_with_margin_or_the_given_extent():
    x = np.array([[0.1, -0.2], [0.7, 0.4]])
    gx, gy = Space("linear", 2).axes(x, 0.05, 0.1)
    assert gx[0] == pytest.approx(0.0) and gx[-1] >= 0.8 and gy[0] == pytest.approx(-0.3) and gy[-1] >= 0.5
    assert np.allclose(np.diff(gx), 0.05)
    gx, gy = Space("linear", 2, ((0, 1), (0, 2))).axes(x, 0.05, 0.1)
    assert gx[0] == 0 and gx[-1] >= 1 and gy[-1] >= 2
    (circle,) = Space("angular", 1).axes(x[:, :1], 2 * np.pi / 90, 0.1)
    assert circle.size == 90 and circle[0] == 0 and circle[-1] < 2 * np.pi


@pytest.mark.slow
def test_benchmark_reaches_the_published_accuracy_in_ten_iterations():
    """The project's benchmark (200 cells, 1 hour, behaviour 20 cm off): below 5 cm within 10
    iterations with validation log-likelihood rising at every one (published: 19.4 -> 4.3 cm),
    with the polynomial alignment."""
    model = fit({}, iterations=10, align_degree=5)
    err = [h["latent_error"] for h in model.history_]
    val = [h["val_ll"] for h in model.history_]
    assert 0.18 < err[0] < 0.22 and len(err) == 11
    assert err[-1] < 0.05
    assert all(b > a for a, b in zip(val, val[1:]))


# Affine alignment (the published default), 10 iterations: the error bound (m) per data seed, the
# issue's target being 5 cm on every seed. These bounds are what the method reaches now, about
# 0.2 cm above the measured errors (docs/SIMPL.md, "Accuracy": seed 0 was 6.77 cm before the
# occupancy prior, 5.82 cm before the annealing, 5.37 cm before the measured speed, the longer
# annealing and the over-relaxation).
AFFINE = {0: 0.044, 1: 0.032, 2: 0.034}


@pytest.mark.slow
@pytest.mark.parametrize("seed", sorted(AFFINE))
def test_benchmark_with_the_affine_alignment(seed):
    """The project's benchmark, data seeds 0, 1, 2, the defaults (affine alignment): the validation
    log-likelihood rises and the error falls at every iteration, and ends below the bound."""
    model = fit({}, data_seed=seed, iterations=10)
    err = [h["latent_error"] for h in model.history_]
    val = [h["val_ll"] for h in model.history_]
    print(f"data seed {seed}: latent error per iteration (cm)", np.round(100 * np.array(err), 2))
    assert len(err) == 11 and all(b < a for a, b in zip(err, err[1:]))
    assert all(b > a for a, b in zip(val, val[1:]))
    assert err[-1] < AFFINE[seed] < 0.05
