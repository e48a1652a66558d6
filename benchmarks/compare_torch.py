"""The preparatory-network loss and its gradient in PyTorch (torch.linalg.eig autograd, complex128)
next to tcnet's fused and lyapunov backends, as ratios to one bare numpy.linalg.eig of the same J.

Loss: L1 + alpha L2 + beta L3 (alpha 1e5, beta 0.01, tau 0.01) of J = J0 + U V from the
linear_decay network (seed 0, n/N = 0.1); value and gradient with respect to J. Prints, per N,
the minimum wall time of each path over a few repeats divided by that of numpy.linalg.eig, and
the relative difference of torch's gradient from tcnet's (Frobenius norm).

Torch is optional: without it the script says so and exits with status 0.

    .venv/bin/python benchmarks/compare_torch.py [--sizes 100 300 500 1000] [--repeats 5]
"""
import argparse
import sys
import time

import numpy as np

ALPHA, BETA, TAU = 1e5, 0.01, 0.01


def torch_loss(torch, J, w, tau=TAU):
    """L1 + alpha L2 + beta L3 by the eigenbasis formulas of DESIGN.md, through torch.linalg.eig."""
    lam, R = torch.linalg.eig(J)
    N = J.shape[0]
    gamma = (lam - 1) / tau
    R_inv = torch.linalg.inv(R)
    M = R_inv @ R_inv.conj().T
    F = -1 / (gamma[:, None] + gamma.conj()[None, :])
    G = gamma[:, None] * gamma.conj()[None, :] * F
    RH = R.conj().T
    L1 = torch.real(torch.sum(F * M * (RH @ R).T)) / (N * tau)  # Tr(R (M o F) R^H)
    L2 = torch.sum(torch.clamp(gamma.real, min=0) ** 2)
    u = RH @ w.to(R.dtype)
    L3 = tau * torch.real(u.conj() @ (M * G) @ u)
    return L1 + ALPHA * L2 + BETA * L3


def best(f, repeats):
    f()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 500, 1000])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("compare_torch: PyTorch is not installed; skipping the comparison (pip install torch to run it).")
        return 0
    from autograd import value_and_grad

    from tcnet_plugins.preparatory.backends import preparatory_losses
    from tcnet_plugins.preparatory.dynamics import LinearDecay

    weights = np.array([1.0, ALPHA, BETA])
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}")
    print(f"{'N':>6}{'torch/eig':>11}{'fused/eig':>11}{'lyapunov/eig':>14}{'eig (s)':>10}"
          f"{'|g_torch - g_fused|/|g_fused|':>32}{'|g_lyap - g_fused|/|g_fused|':>30}")
    for N in args.sizes:
        net = LinearDecay.create(seed=0, N=N, n_frac=0.1)
        J, w = np.array(net.state().J), net.arrays["w"]
        repeats = args.repeats if N <= 500 else max(2, args.repeats // 2)

        Jt, wt = torch.tensor(J, dtype=torch.float64, requires_grad=True), torch.tensor(w)

        def torch_value_and_grad():
            Jt.grad = None
            value = torch_loss(torch, Jt, wt)
            value.backward()
            return value.item(), Jt.grad.numpy().copy()

        fast = {b: value_and_grad(lambda J, b=b: np.dot(weights, preparatory_losses(J, w, TAU, b)))
                for b in ("fused", "lyapunov")}
        t_eig = best(lambda: np.linalg.eig(J), repeats)
        t_torch = best(torch_value_and_grad, repeats)
        t_fused = best(lambda: fast["fused"](J), repeats)
        t_lyap = best(lambda: fast["lyapunov"](J), repeats)
        (v_t, g_t), (v_f, g_f), (v_l, g_l) = torch_value_and_grad(), fast["fused"](J), fast["lyapunov"](J)
        assert np.isclose(v_t, v_f, rtol=1e-8) and np.isclose(v_l, v_f, rtol=1e-8), (v_t, v_f, v_l)
        d_t = np.linalg.norm(g_t - g_f) / np.linalg.norm(g_f)
        d_l = np.linalg.norm(g_l - g_f) / np.linalg.norm(g_f)
        print(f"{N:>6}{t_torch / t_eig:>11.2f}{t_fused / t_eig:>11.2f}{t_lyap / t_eig:>14.2f}{t_eig:>10.3f}"
              f"{d_t:>32.1e}{d_l:>30.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
