"""tcnet.integrate: the discrete adjoint against autograd traced through a plain Python loop of the
same scheme, the schemes' order against a closed form (expm), and the checks of its arguments."""
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.linalg
from autograd import grad

from tcnet.integrate import ORDER, SCHEMES, VectorField, interpolate, refine, solve
from tcnet.validate import ConfigError


class Tanh(VectorField):
    """f = tanh(x) A^T - x + u B^T: nonlinear, with inputs; autograd's VJPs per stage."""

    def rhs(self, x, u, params):
        A, B = params
        out = anp.dot(anp.tanh(x), anp.transpose(A)) - x
        return out if u is None else out + anp.dot(u, anp.transpose(B))


def loop(field, params, x0, t, u, scheme, dt):
    """The same scheme written as a plain loop, for autograd to trace step by step."""
    tableau = SCHEMES[scheme]
    h, index = refine(t, dt)
    if u is not None and len(h) != len(t) - 1:
        u = interpolate(u, index)
    xs, x = [x0], x0
    for n, hn in enumerate(h):
        ks = []
        for i, row in enumerate(tableau.a):
            s = x
            for j, a in row:
                s = s + hn * a * ks[j]
            c = tableau.c[i]
            ks.append(field.rhs(s, None if u is None else (1 - c) * u[n] + c * u[n + 1], params))
        x = x + hn * sum(b * k for b, k in zip(tableau.b, ks))
        xs.append(x)
    return anp.stack(xs)[index]


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    N, C, m = 4, 3, 2
    t = np.sort(rng.uniform(0, 1, 9))
    return {"A": rng.normal(size=(N, N)), "B": rng.normal(size=(N, m)), "x0": rng.normal(size=(C, N)),
            "u": rng.normal(size=(len(t), C, m)), "t": t, "w": rng.normal(size=(len(t), C, N))}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("dt", [None, 0.03])
@pytest.mark.parametrize("inputs", [True, False])
def test_discrete_adjoint_equals_autograd_through_the_loop(problem, scheme, dt, inputs):
    p = problem
    u = p["u"] if inputs else None

    def loss(integrator):
        return lambda A, B, x0, u: anp.sum(p["w"] * anp.sin(integrator(Tanh(), (A, B), x0, p["t"], u, scheme, dt)))

    args = (p["A"], p["B"], p["x0"], u)
    fast, slow = loss(solve), loss(loop)
    assert fast(*args) == pytest.approx(slow(*args), rel=1e-13)
    for k in range(4 if inputs else 3):
        if k == 1 and not inputs:
            continue
        g, ref = grad(fast, k)(*args), grad(slow, k)(*args)
        assert np.max(np.abs(g - ref)) <= 1e-10 * np.max(np.abs(ref)), f"argument {k}"


def test_parameter_cotangents_are_collected_across_blocks(problem, monkeypatch):
    """Blocks of one step each give the gradient of one block of all steps."""
    p = problem
    f = lambda A: anp.sum(p["w"] * solve(Tanh(), (A, p["B"]), p["x0"], p["t"], p["u"], "rk4"))  # noqa: E731
    whole = grad(f)(p["A"])
    monkeypatch.setattr("tcnet.integrate.BLOCK", 1)
    assert np.allclose(grad(f)(p["A"]), whole, rtol=1e-13, atol=0)


class Linear(VectorField):
    def rhs(self, x, u, params):
        return anp.dot(x, anp.transpose(params[0]))


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_order_of_accuracy_against_expm(scheme):
    """Halving the step divides the error at T by about 2^order."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 3)) - 2 * np.eye(3)
    x0 = rng.normal(size=(1, 3))
    exact = x0[0] @ scipy.linalg.expm(A * 1.0).T
    errors = [np.linalg.norm(solve(Linear(), (A,), x0, [0.0, 1.0], None, scheme, dt)[-1, 0] - exact)
              for dt in (0.02, 0.01)]
    assert errors[0] / errors[1] == pytest.approx(2 ** ORDER[scheme], rel=0.1)


def test_without_a_trace_it_is_a_plain_simulation(problem):
    p = problem
    x = solve(Tanh(), (p["A"], p["B"]), p["x0"], p["t"], p["u"], "rk4", 0.05)
    assert isinstance(x, np.ndarray) and x.shape == (len(p["t"]), 3, 4)
    assert np.array_equal(x[0], p["x0"])


@pytest.mark.parametrize("kwargs, message", [
    ({"t": [0.0, 0.0]}, "t must be a 1-D array of at least 2 strictly increasing"),
    ({"scheme": "rk45"}, "scheme must be one of euler, rk4"),
    ({"dt": -1.0}, "dt must be a finite number > 0"),
    ({"x0": np.zeros(4)}, "x0 must have shape (conditions, states)"),
    ({"u": np.zeros((2, 3, 1))}, "u must have shape (len(t), conditions, inputs)"),
])
def test_bad_arguments_are_one_line(problem, kwargs, message):
    p = problem
    args = {"x0": p["x0"], "t": p["t"], "u": None, "scheme": "rk4", "dt": None, **kwargs}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        solve(Tanh(), (p["A"], p["B"]), args["x0"], args["t"], args["u"], args["scheme"], args["dt"])
