"""Closed forms of the two-population E/I rate model and its homeostatic learning rules.

Model (times in ms), weights W = (W_EE, W_EI, W_IE, W_II) >= 0:

    tau_E dE/dt = -E + g_E [W_EE E - W_EI I - Theta_E + I_ext]_+
    tau_I dI/dt = -I + g_I [W_IE E - W_II I - Theta_I]_+

Up state. With both brackets positive the fixed point solves the linear system A r = b,

    A = [[1 - g_E W_EE, g_E W_EI], [-g_I W_IE, 1 + g_I W_II]],  b = (g_E (I_ext - Theta_E), -g_I Theta_I),
    D = det A = (1 - g_E W_EE)(1 + g_I W_II) + g_E g_I W_EI W_IE,
    E_up = [g_E (I_ext - Theta_E)(1 + g_I W_II) + g_E g_I W_EI Theta_I] / D,
    I_up = g_I [g_E W_IE (I_ext - Theta_E) + (g_E W_EE - 1) Theta_I] / D.

It exists when E_up > 0 and I_up > 0 (then both brackets equal r/g > 0); otherwise the QSS is the
Down state E = I = 0 (partially active states, E > 0 with I below threshold, are not modelled).
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

Learning rules. Differentiating A r = b by each weight gives dr/dW = -A^-1 (dA/dW) r, linear in
(E, I). Every rule below has the form
    dW_EE = eta E P,  dW_EI = -eta I P,  dW_IE = eta E Q,  dW_II = -eta I Q
with P, Q built from the errors e_E = E_set - E, e_I = I_set - I:
- exact:     P = g_E [(1 + g_I W_II) e_E + g_I W_IE e_I] / D,  Q = g_I [-g_E W_EI e_E + (1 - g_E W_EE) e_I] / D
             (= -eta dL/dW at the QSS, L = (e_E^2 + e_I^2)/2);
- small_weight: the coefficients of E, I expanded to first order around W = 0 (E, I kept
             unexpanded): 1/D ~ 1 + g_E W_EE - g_I W_II, so
             P = g_E [(1 + g_E W_EE) e_E + g_I W_IE e_I],  Q = g_I [-g_E W_EI e_E + (1 - g_I W_II) e_I];
- up_state:  zeroth order around the set-point weights (W_EE, W_EI^set, W_IE, W_II^set): there
             1 + g_I W_II = g_I BB / I_set, g_E W_EI = AA / I_set, D = g_I DD / I_set, hence
             P = g_E [BB e_E + W_IE I_set e_I] / DD,  Q = -[AA e_E + CC I_set e_I] / DD;
- cross_homeostatic (Soldado-Magraner et al. 2022): P = e_I, Q = -e_E;
- homeostatic (naive, each population's own error drives its inputs): P = e_E, Q = e_I.

Everything here accepts weights of shape (..., 4) and broadcasts, with autograd.numpy so that
autograd traces it; `integrate` (scipy) is plain numpy.
"""
import autograd.numpy as anp
import numpy as np
from scipy.integrate import solve_ivp

PARAMETERS = ("g_E", "g_I", "Theta_E", "Theta_I", "I_ext", "tau_E", "tau_I", "E_set", "I_set")

_PARADOXICAL = {"g_E": 1.0, "g_I": 4.0, "Theta_E": 4.8, "Theta_I": 25.0, "I_ext": 0.0,
                "tau_E": 10.0, "tau_I": 2.0, "E_set": 5.0, "I_set": 14.0}
PRESETS = {
    "paradoxical": {"params": _PARADOXICAL, "W": (5.0, 2.0, 10.0, 2.0)},
    "non_paradoxical": {"params": {**_PARADOXICAL, "g_E": 0.5, "I_ext": 8.0}, "W": (1.5, 1.0, 15.0, 2.0)},
}

RULES = ("exact", "small_weight", "up_state", "cross_homeostatic", "homeostatic")


def _split(W):
    return W[..., 0], W[..., 1], W[..., 2], W[..., 3]


def linear_up(W, p):
    """(E_up, I_up, D): the solution of the suprathreshold linear system and its determinant."""
    W_EE, W_EI, W_IE, W_II = _split(W)
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


def fixed_point(W, p):
    """QSS rates (E, I): the Up state where it exists, else the Down state (0, 0). Traceable."""
    E, I, D = linear_up(W, p)
    up = (E > 0) & (I > 0) & (D != 0)
    return anp.where(up, E, 0.0), anp.where(up, I, 0.0)


def jacobian(W, p):
    """The Jacobian of the rate ODE in the suprathreshold region, shape (..., 2, 2)."""
    W_EE, W_EI, W_IE, W_II = _split(W)
    row_E = anp.stack([(p["g_E"] * W_EE - 1.0) / p["tau_E"], -p["g_E"] * W_EI / p["tau_E"]], axis=-1)
    row_I = anp.stack([p["g_I"] * W_IE / p["tau_I"], -(1.0 + p["g_I"] * W_II) / p["tau_I"]], axis=-1)
    return anp.stack([row_E, row_I], axis=-2)


def trace_det(W, p):
    """(trace, det) of the Up-state Jacobian; stable iff trace < 0 and det > 0."""
    W_EE, W_EI, W_IE, W_II = _split(W)
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


def rule_factors(rule, E, I, W, p, reference=None):
    """(P, Q) of a learning rule (see the module docstring) at rates (E, I) and weights W.

    `reference` = (W_EE, W_IE) fixes the expansion point of `up_state`; None uses the current
    W_EE, W_IE (the set-point weights sharing them), so the rule stays local in time.
    """
    W_EE, W_EI, W_IE, W_II = _split(W)
    gE, gI = p["g_E"], p["g_I"]
    e_E, e_I = p["E_set"] - E, p["I_set"] - I
    if rule == "exact":
        D = linear_up(W, p)[2]
        P = gE * ((1.0 + gI * W_II) * e_E + gI * W_IE * e_I) / D
        Q = gI * (-gE * W_EI * e_E + (1.0 - gE * W_EE) * e_I) / D
    elif rule == "small_weight":
        P = gE * ((1.0 + gE * W_EE) * e_E + gI * W_IE * e_I)
        Q = gI * (-gE * W_EI * e_E + (1.0 - gI * W_II) * e_I)
    elif rule == "up_state":
        ref_EE, ref_IE = (W_EE, W_IE) if reference is None else reference
        AA, BB, CC, DD = up_coefficients(ref_EE, ref_IE, p)
        P = gE * (BB * e_E + ref_IE * p["I_set"] * e_I) / DD
        Q = -(AA * e_E + CC * p["I_set"] * e_I) / DD
    elif rule == "cross_homeostatic":
        P, Q = e_I, -e_E
    elif rule == "homeostatic":
        P, Q = e_E, e_I
    else:
        raise ValueError(f"unknown rule {rule!r}; rules are {', '.join(RULES)}")
    return P, Q


def rule_update(rule, E, I, W, p, eta, reference=None):
    """dW = eta (E P, -I P, E Q, -I Q), shape (..., 4)."""
    P, Q = rule_factors(rule, E, I, W, p, reference)
    return eta * anp.stack([E * P, -I * P, E * Q, -I * Q], axis=-1)


def sensitivities(E, I, W, p):
    """The exact d(E, I)/dW as a (..., 2, 4) array, from the implicit derivative at rates (E, I)."""
    W_EE, W_EI, W_IE, W_II = _split(W)
    gE, gI = p["g_E"], p["g_I"]
    D = linear_up(W, p)[2]
    d, a = 1.0 + gI * W_II, 1.0 - gE * W_EE
    dE = anp.stack([gE * d * E, -gE * d * I, -gE * gI * W_EI * E, gE * gI * W_EI * I], axis=-1) / D[..., None]
    dI = anp.stack([gE * gI * W_IE * E, -gE * gI * W_IE * I, gI * a * E, -gI * a * I], axis=-1) / D[..., None]
    return anp.stack([dE, dI], axis=-2)


def integrate(W, p, r0, t, kick=0.0, kick_duration=0.0, r_max=None, kick_onset=0.0):
    """Rates (E, I) at times t (t[0] is the start) from r0, with `kick` added to the excitatory
    input during [t[0] + kick_onset, t[0] + kick_onset + kick_duration). Returns (len(t), 2); rows
    after a runaway (E or I above r_max) are NaN. scipy's RK45 is restarted at the kick's edges
    (input discontinuities).
    """
    W_EE, W_EI, W_IE, W_II = (float(w) for w in W)
    t = np.asarray(t, dtype=float)
    out = np.full((len(t), 2), np.nan)

    def rhs(_, r, extra):
        E, I = r
        dE = (-E + p["g_E"] * max(W_EE * E - W_EI * I - p["Theta_E"] + p["I_ext"] + extra, 0.0)) / p["tau_E"]
        dI = (-I + p["g_I"] * max(W_IE * E - W_II * I - p["Theta_I"], 0.0)) / p["tau_I"]
        return [dE, dI]

    events = None
    if r_max is not None:
        def runaway(_, r, extra):
            return r_max - max(r[0], r[1])
        runaway.terminal = True
        events = runaway
    on, off = t[0] + kick_onset, t[0] + kick_onset + kick_duration
    segments = [(t[0], min(on, t[-1]), 0.0), (on, min(off, t[-1]), kick), (off, t[-1], 0.0)]
    y = np.asarray(r0, dtype=float)
    out[0] = y
    for a, b, extra in segments:
        if b <= a:
            continue
        mask = (t > a) & (t <= b)
        t_eval = np.union1d(t[mask], [b])  # b last, so the segment's end state is sol.y[:, -1]
        sol = solve_ivp(rhs, (a, b), y, method="RK45", t_eval=t_eval, args=(extra,), rtol=1e-8,
                        atol=1e-10, events=events)
        n = np.size(sol.t)
        if n:
            reached = np.isin(t_eval[:n], t[mask])
            out[np.flatnonzero(mask)[: np.count_nonzero(reached)]] = sol.y.T[reached]
        if sol.status != 0:  # runaway (event) or integration failure: the rest stays NaN
            return out
        y = sol.y[:, -1]
    return out
