"""The algebra of the five homeostatic learning rules of the E/I rate model, and when learning
has converged.

The rules follow the Up state's sensitivities dr/dW = -A^-1 (dA/dW) r, linear in (E, I)
(`tcnet_plugins.ei.model`, where A, D, AA, BB, CC, DD are defined), exactly or in an expansion.
Every rule has the form
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

`error_response` and `natural_scale` linearize a rule's step near the set point, so that the
rules can learn at comparable rates; `within` and `streak` are the one definition of convergence
that the optimizers and the study share. Everything accepts weights of shape (..., 4) and
broadcasts, with autograd.numpy so that autograd traces it.
"""
import autograd.numpy as anp
import numpy as np

from tcnet_plugins.ei.model import linear_up, sensitivities, set_point_weights, split_weights, up_coefficients

RULES = ("exact", "small_weight", "up_state", "cross_homeostatic", "homeostatic")


def rule_factors(rule, E, I, W, p, reference=None):
    """(P, Q) of a learning rule (see the module docstring) at rates (E, I) and weights W.

    `reference` = (W_EE, W_IE) fixes the expansion point of `up_state`; None uses the current
    W_EE, W_IE (the set-point weights sharing them), so the rule stays local in time.
    """
    W_EE, W_EI, W_IE, W_II = split_weights(W)
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


def error_response(rule, p, W_EE, W_IE):
    """M (2x2): near the set point (E_set, I_set) at the set-point weights with these W_EE, W_IE,
    one step of a rule with rate eta changes the rate error e = r_set - r by -eta M e.

    dW = eta G e to first order in e, with G = diag(E_set, -I_set, E_set, -I_set) times the
    rule's (P, Q) coefficients (P, Q are linear in e); the rates respond by S dW, S = d(E, I)/dW
    (`sensitivities`), so M = S G. For `exact` M = S S^T.
    """
    W_EI, W_II = set_point_weights(W_EE, W_IE, p)
    W = np.array([W_EE, W_EI, W_IE, W_II], dtype=float)
    Es, Is = p["E_set"], p["I_set"]
    C = np.array([rule_factors(rule, Es - 1.0, Is, W, p), rule_factors(rule, Es, Is - 1.0, W, p)]).T
    G = np.array([Es, -Is, Es, -Is])[:, None] * np.repeat(C, 2, axis=0)
    return sensitivities(Es, Is, W, p) @ G


def natural_scale(rule, p, W_EE, W_IE):
    """eta / lr of a rule on the natural scale: rho(M_cross) / rho(M_rule) (`error_response`,
    rho the spectral radius), so that with eta = lr natural_scale every rule removes the rate
    error at the same rate along its fastest direction near the set point, and the
    cross-homeostatic rule's eta is lr itself. Step counts then compare the rules' directions
    (how well they treat the slow direction), not their step sizes, which differ by a factor of
    about D between the rules with the 1/D of the implicit derivative and those without."""
    rho = [np.abs(np.linalg.eigvals(error_response(r, p, W_EE, W_IE))).max() for r in (rule, "cross_homeostatic")]
    return float(rho[1] / rho[0])


def within(E, I, p, rtol):
    """True where both rates are within rtol (relative) of the set points."""
    return (np.abs(E - p["E_set"]) <= rtol * p["E_set"]) & (np.abs(I - p["I_set"]) <= rtol * p["I_set"])


def streak(start, ok, k):
    """Convergence, one definition for the optimizers and the study: a run has converged at step
    k0 once its rates are within tolerance with a stable Up state at every step from k0 on, for
    `hold` steps. Given the streak's first step before step k (-1: none) and whether step k is
    within, the streak's first step after it (-1 if step k is not within)."""
    return np.where(ok, np.where(np.asarray(start) < 0, k, start), -1)
