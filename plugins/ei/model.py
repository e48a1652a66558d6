"""Closed forms of the two-population E/I rate model and its homeostatic learning rules.

Model (times in ms), weights W = (W_EE, W_EI, W_IE, W_II) >= 0:

    tau_E dE/dt = -E + g_E [W_EE E - W_EI I - Theta_E + I_ext]_+
    tau_I dI/dt = -I + g_I [W_IE E - W_II I - Theta_I]_+

Up state. With both brackets positive the fixed point solves the linear system A r = b,

    A = [[1 - g_E W_EE, g_E W_EI], [-g_I W_IE, 1 + g_I W_II]],  b = (g_E (I_ext - Theta_E), -g_I Theta_I),
    D = det A = (1 - g_E W_EE)(1 + g_I W_II) + g_E g_I W_EI W_IE,
    E_up = [g_E (I_ext - Theta_E)(1 + g_I W_II) + g_E g_I W_EI Theta_I] / D,
    I_up = g_I [g_E W_IE (I_ext - Theta_E) + (g_E W_EE - 1) Theta_I] / D.

It exists when E_up > 0 and I_up > 0 (then both brackets equal r/g > 0).

Every fixed point. The model is linear in each of four regions (REGIONS: rest, E only, I only,
Up), and the fixed point of a region is the Up-state formula with the gain of each inactive
population set to 0 (`gated`); it exists when it lies in its region (`fixed_points`). E.g. E
alone: E = g_E (I_ext - Theta_E) / (1 - g_E W_EE) with W_IE E <= Theta_I. The QSS
(`steady_state`) is the fixed point a kicked trial from rest ends at (`reached_regime`), NaN
where that trial runs away.
Jacobian at the Up state: [[(g_E W_EE - 1)/tau_E, -g_E W_EI/tau_E], [g_I W_IE/tau_I,
-(1 + g_I W_II)/tau_I]]; trace < 0 and det = D/(tau_E tau_I) > 0 is stability. Paradoxical: the
coefficient of Theta_I in I_up, g_I (g_E W_EE - 1)/D, is positive (raising the inhibitory
threshold raises I); for a stable Up state (D > 0) that is g_E W_EE > 1.

Set-point weights: E_up = E_set, I_up = I_set solved for W_EI, W_II given W_EE, W_IE:
    W_EI = [g_E (W_EE E_set - Theta_E + I_ext) - E_set] / (g_E I_set)   (> 0 iff AA > 0),
    W_II = [g_I (W_IE E_set - Theta_I) - I_set] / (g_I I_set)            (> 0 iff g_I BB > I_set),
    AA = g_E (W_EE E_set - Theta_E + I_ext) - E_set,  BB = W_IE E_set - Theta_I,
    CC = g_E W_EE - 1 (the paradoxical condition),     DD = g_E W_IE (I_ext - Theta_E) + CC Theta_I.
At those weights D = g_I DD / I_set, so DD > 0 is the numerator of I_up.

Sensitivities. Differentiating A r = b by each weight gives dr/dW = -A^-1 (dA/dW) r, linear in
(E, I) (`sensitivities`): the exact learning rule and the expansions of the others
(`tcnet_plugins.ei.rules`) are built on it.

Everything here accepts weights of shape (..., 4) and broadcasts, with autograd.numpy so that
autograd traces it. The regime of a trial is found in closed form where it can be; the few
weights where it cannot are simulated with `trials.Trial` (the model's integrators live there).
"""
from functools import lru_cache

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from tcnet_plugins.ei.trials import Trial

PARAMETERS = ("g_E", "g_I", "Theta_E", "Theta_I", "I_ext", "tau_E", "tau_I", "E_set", "I_set")
WEIGHTS = ("W_EE", "W_EI", "W_IE", "W_II")
"""The names of the components of W, in order (the history columns of a learning run's weights)."""

_PARADOXICAL = {"g_E": 1.0, "g_I": 4.0, "Theta_E": 4.8, "Theta_I": 25.0, "I_ext": 0.0,
                "tau_E": 10.0, "tau_I": 2.0, "E_set": 5.0, "I_set": 14.0}
PRESETS = {
    "paradoxical": {"params": _PARADOXICAL, "W": (5.0, 2.0, 10.0, 2.0)},
    "non_paradoxical": {"params": {**_PARADOXICAL, "g_E": 0.5, "I_ext": 8.0}, "W": (1.5, 1.0, 15.0, 2.0)},
}

REGIONS = ("rest", "E only", "I only", "Up")
"""The linear regions, indexed by which populations are active: 1 for E, plus 2 for I."""
RUNAWAY = -1
"""The regime of a trial whose rates grow without bound (or keep moving)."""
QSS_KICK = (10.0, 10.0)
"""The kick (amplitude, duration in ms, from t = 0) of the trial whose end state is the QSS: the
trial mode's default."""


def split_weights(W):
    """(W_EE, W_EI, W_IE, W_II), each of shape (...), from weights of shape (..., 4)."""
    return W[..., 0], W[..., 1], W[..., 2], W[..., 3]


def linear_up(W, p):
    """(E_up, I_up, D): the solution of the suprathreshold linear system and its determinant."""
    W_EE, W_EI, W_IE, W_II = split_weights(W)
    a = 1.0 - p["g_E"] * W_EE
    d = 1.0 + p["g_I"] * W_II
    D = a * d + p["g_E"] * p["g_I"] * W_EI * W_IE
    D_safe = anp.where(D == 0.0, 1.0, D)  # keeps the unused branch finite (and its gradient)
    drive_E = p["g_E"] * (p["I_ext"] - p["Theta_E"])
    E = (d * drive_E + p["g_E"] * p["g_I"] * W_EI * p["Theta_I"]) / D_safe
    I = p["g_I"] * (W_IE * drive_E - a * p["Theta_I"]) / D_safe
    return E, I, D


def up_exists(W, p):
    """True where the Up state exists (E_up > 0, I_up > 0, non-singular system)."""
    E, I, D = linear_up(W, p)
    return (E > 0) & (I > 0) & (D != 0)


def gated(p, region):
    """The parameters of one linear region: the gain of each population the region holds inactive
    set to 0, so that `linear_up`, `trace_det` and `sensitivities` give that region's fixed point,
    Jacobian and implicit derivative. `region` may be an array (per weight vector)."""
    region = np.asarray(region)
    return {**p, "g_E": p["g_E"] * (region & 1), "g_I": p["g_I"] * ((region >> 1) & 1)}


def inputs(E, I, W, p):
    """The bracketed inputs (x_E, x_I) of the rate equations at rates (E, I)."""
    W_EE, W_EI, W_IE, W_II = split_weights(W)
    return W_EE * E - W_EI * I - p["Theta_E"] + p["I_ext"], W_IE * E - W_II * I - p["Theta_I"]


def region_of(E, I, W, p):
    """The linear region holding rates (E, I): 1 if x_E > 0, plus 2 if x_I > 0 (see REGIONS)."""
    x_E, x_I = inputs(E, I, W, p)
    return (np.asarray(getval(x_E)) > 0) * 1 + (np.asarray(getval(x_I)) > 0) * 2


def fixed_points(W, p):
    """Every fixed point: (E, I, exists, stable), each of shape (..., 4), indexed by REGIONS.

    In each region the model is linear: the active populations follow the Up-state system, an
    inactive one decays to 0 (`gated`). The region's solution is a fixed point when it is
    consistent: every active population's rate > 0 (its input x = r/g > 0), every inactive one's
    input x <= 0. Stable: trace < 0 and det > 0 of the region's Jacobian. A singular region
    (D = 0: a line of equilibria or none) is left out. Traceable in E and I.
    """
    region = np.arange(4)  # the four regions along a new last axis, in one pass
    q, W = gated(p, region), W[..., None, :]
    E, I, D = linear_up(W, q)
    x_E, x_I = (np.asarray(getval(x)) for x in inputs(E, I, W, p))
    ok_E = np.where(region & 1, np.asarray(getval(E)) > 0, x_E <= 0)
    ok_I = np.where(region & 2, np.asarray(getval(I)) > 0, x_I <= 0)
    exists = ok_E & ok_I & (np.asarray(getval(D)) != 0)
    tr, det = (np.asarray(getval(v)) for v in trace_det(W, q))
    return E, I, exists, exists & (tr < 0) & (det > 0)


def _rise(u, a, g, tau, t):
    """E after time t from E = 0 under the drive u with I silent (tau E' = -a E + g u where the
    bracket is positive; it stays so from E = 0 when u > 0). E = 0 for u <= 0."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        E = np.where(a == 0, g * u * t / tau, g * u / a * (1.0 - np.exp(-a * t / tau)))
    return np.where(u > 0, E, 0.0)


def reached_regime(W, p, kick=QSS_KICK[0], duration=QSS_KICK[1]):
    """The regime a trial from rest ends in when `kick` is added to E's input for `duration` ms.

    While I is silent (W_IE E <= Theta_I) E alone is a one-dimensional linear system, solved in
    closed form: during the kick it rises to E_k (`_rise`); afterwards it relaxes monotonically to
    its own fixed point E* = g_E (I_ext - Theta_E) / (1 - g_E W_EE) when 1 - g_E W_EE > 0 (rest if
    E* <= 0), or, when 1 - g_E W_EE <= 0, grows without bound if E_k is past the saddle E* and
    decays to rest otherwise. If E never wakes I the trial ends there: rest or E alone (regime 0
    or 1; RUNAWAY if E grows and W_IE = 0). If E wakes I, inhibition can only hold E below that
    path: where E alone decays the trial ends at rest; where E alone grows it ends in the Up state
    if that is stable, and otherwise inhibition may quench E or not: those weights alone are
    simulated (`_simulated_regime`); where E alone settles it ends in the Up state if stable,
    else at E alone if that is stable (a kick that overshot), else nowhere (RUNAWAY: the rates
    keep moving). For Theta_I <= 0 (I active at rest) the choice falls back to the most excited
    stable state. Not traceable (a region index); tests/test_ei_fixed_points.py checks it against
    simulated trials on a grid of weights for both presets.
    """
    W = np.asarray(getval(W), dtype=float)
    if W.shape == (4,):
        return _regime_of_one(tuple(W), tuple(sorted(p.items())), kick, duration)
    return _regimes(W, p, kick, duration)


@lru_cache(maxsize=64)
def _regime_of_one(W, p_items, kick, duration):
    """`reached_regime` of one weight vector, cached: a learning step asks for it twice, for its
    measurement and in the loss's traced state (about a fifth of a QSS step each time)."""
    return int(_regimes(np.array(W), dict(p_items), kick, duration))


def _regimes(W, p, kick, duration):
    """`reached_regime` of an array of weight vectors (..., 4)."""
    W_EE, W_IE = W[..., 0], W[..., 2]
    g, tau, c = p["g_E"], p["tau_E"], p["I_ext"] - p["Theta_E"]
    a = 1.0 - g * W_EE
    E_k = _rise(c + kick, a, g, tau, duration)
    with np.errstate(divide="ignore", invalid="ignore"):
        E_star = g * c / a
    grows = np.where(a > 0, False, np.where(a == 0, c > 0, E_k > E_star))
    E_end = np.where(grows, np.inf, np.where(a > 0, np.maximum(E_star, 0.0), 0.0))
    with np.errstate(invalid="ignore"):
        wakes_I = W_IE * np.maximum(E_k, E_end) > p["Theta_I"]  # inf * 0 is NaN: False
    E, _, _, stable = fixed_points(W, p)
    if p["Theta_I"] <= 0:
        score = np.where(stable, np.asarray(getval(E)), -np.inf)
        return np.where(stable.any(axis=-1), np.argmax(score, axis=-1), RUNAWAY)
    settled_up = np.where(stable[..., 3], 3, np.where(stable[..., 1], 1, RUNAWAY))
    excited = np.where(grows, 3, np.where(E_end > 0, settled_up, 0))
    quiet = np.where(grows, RUNAWAY, np.where(E_end > 0, 1, 0))
    regime = np.where(wakes_I, excited, quiet)
    unsure = wakes_I & grows & ~stable[..., 3]  # I may quench E (rest) or not (runaway)
    if np.any(unsure):
        regime = np.array(regime)
        unsure = np.broadcast_to(unsure, regime.shape)
        for idx in np.ndindex(regime.shape):
            if unsure[idx]:
                regime[idx] = _simulated_regime(tuple(W[idx]), tuple(sorted(p.items())), kick, duration)
    return regime


@lru_cache(maxsize=4096)
def _simulated_regime(W, p_items, kick, duration, T=3000.0, r_max=1e4):
    """The regime a kicked trial from rest ends in, by T ms of the compiled noise-free Euler trial
    (`trials.Trial`, dt = 0.1 ms): the stable fixed point within 1e-4 of its last 10 ms, else
    RUNAWAY (above r_max, or still moving). Cached: a learning run that is stuck asks for the same
    weights at every step."""
    p = dict(p_items)
    trial = Trial.from_settings("ei_rate", {"integrator": "euler", "trial_length": T, "kick": kick,
                                            "kick_duration": duration, "average": 10.0, "r_max": r_max})
    end, _, _ = trial.run(np.array(W), p)
    E, I, _, stable = fixed_points(np.array(W), p)
    for region in np.flatnonzero(stable):
        if np.allclose(end, [E[region], I[region]], rtol=1e-4, atol=1e-4):
            return int(region)
    return RUNAWAY


def steady_state(W, p):
    """The QSS (E, I, regime): the fixed point of the regime a trial from rest reaches with the
    trial mode's default kick (`reached_regime`); NaN rates where it runs away. Traceable in E, I:
    only the reached region's linear system is traced (the regime itself is not differentiable),
    which gives the values and gradient of `fixed_points` in that region at a seventh of the cost."""
    regime = reached_regime(W, p)
    E, I, _ = linear_up(W, gated(p, np.maximum(regime, 0)))
    runaway = regime == RUNAWAY
    return anp.where(runaway, np.nan, E), anp.where(runaway, np.nan, I), regime


def fixed_point(W, p):
    """The QSS rates (E, I) of `steady_state` (NaN where the rates run away). Traceable."""
    E, I, _ = steady_state(W, p)
    return E, I


def jacobian(W, p):
    """The Jacobian of the rate ODE in the suprathreshold region, shape (..., 2, 2)."""
    W_EE, W_EI, W_IE, W_II = split_weights(W)
    row_E = anp.stack([(p["g_E"] * W_EE - 1.0) / p["tau_E"], -p["g_E"] * W_EI / p["tau_E"]], axis=-1)
    row_I = anp.stack([p["g_I"] * W_IE / p["tau_I"], -(1.0 + p["g_I"] * W_II) / p["tau_I"]], axis=-1)
    return anp.stack([row_E, row_I], axis=-2)


def trace_det(W, p):
    """(trace, det) of the Up-state Jacobian; stable iff trace < 0 and det > 0."""
    W_EE, W_EI, W_IE, W_II = split_weights(W)
    tr = (p["g_E"] * W_EE - 1.0) / p["tau_E"] - (1.0 + p["g_I"] * W_II) / p["tau_I"]
    det = linear_up(W, p)[2] / (p["tau_E"] * p["tau_I"])
    return tr, det


def stable_up(W, p):
    """True where the Up state exists and is linearly stable."""
    tr, det = trace_det(W, p)
    return up_exists(W, p) & (tr < 0) & (det > 0)


def paradoxical_coefficient(W, p):
    """dI_up/dTheta_I = g_I (g_E W_EE - 1) / D; positive means paradoxical."""
    W_EE = W[..., 0]
    D = linear_up(W, p)[2]
    return p["g_I"] * (p["g_E"] * W_EE - 1.0) / anp.where(D == 0.0, np.nan, D)


def set_point_weights(W_EE, W_IE, p):
    """(W_EI, W_II) placing the Up state at (E_set, I_set) for the given W_EE, W_IE."""
    Es, Is = p["E_set"], p["I_set"]
    W_EI = (p["g_E"] * (W_EE * Es - p["Theta_E"] + p["I_ext"]) - Es) / (p["g_E"] * Is)
    W_II = (p["g_I"] * (W_IE * Es - p["Theta_I"]) - Is) / (p["g_I"] * Is)
    return W_EI, W_II


def up_coefficients(W_EE, W_IE, p):
    """The seed's AA, BB, CC, DD at the set-point weights with these W_EE, W_IE."""
    Es = p["E_set"]
    AA = p["g_E"] * (W_EE * Es - p["Theta_E"] + p["I_ext"]) - Es
    BB = W_IE * Es - p["Theta_I"]
    CC = p["g_E"] * W_EE - 1.0
    DD = p["g_E"] * W_IE * (p["I_ext"] - p["Theta_E"]) + CC * p["Theta_I"]
    return AA, BB, CC, DD


def sensitivities(E, I, W, p):
    """The exact d(E, I)/dW as a (..., 2, 4) array, from the implicit derivative at rates (E, I)."""
    W_EE, W_EI, W_IE, W_II = split_weights(W)
    gE, gI = p["g_E"], p["g_I"]
    D = linear_up(W, p)[2]
    d, a = 1.0 + gI * W_II, 1.0 - gE * W_EE
    dE = anp.stack([gE * d * E, -gE * d * I, -gE * gI * W_EI * E, gE * gI * W_EI * I], axis=-1) / D[..., None]
    dI = anp.stack([gE * gI * W_IE * E, -gE * gI * W_IE * I, gI * a * E, -gI * a * I], axis=-1) / D[..., None]
    return anp.stack([dE, dI], axis=-2)
