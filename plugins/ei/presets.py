"""Published parameter sets of K-population rate circuits (`ei_circuit`), each with its source.

Every preset gives, per population (in order): name, type ("E" or "I": the sign of its outgoing
weights), tau (ms), gain g, threshold theta, exponent n, smoothness s, external input h, set
point; the K x K weight magnitudes W (row: postsynaptic, column: presynaptic), which
connections exist, and the protocol that decides the steady state (a kick added to the inputs
for kick_duration ms from rest, then settle ms). The transfer is
r_ss = g [x]_+^n for s = 0 and r_ss = g x / (1 - exp(-x/s)) for s > 0, x = sum_j +-W_kj r_j + h_k - theta_k.

- "paradoxical", "non_paradoxical": the two-population model of `tcnet_plugins.ei.model` (the
  parameter sets of the original notebooks behind Soldado-Magraner et al. 2022), K = 2, the
  kicked trial of `model.QSS_KICK`: ei_rate as a circuit.
- "del_molino_low", "del_molino_high": E, PV, SST, VIP of Garcia del Molino, Yang, Mejias & Wang
  (2017, eLife 6:e29742), the low and high baseline-activity circuits of their Fig. 1 (response
  reversal: the same top-down input to VIP raises E at low baseline and lowers it at high
  baseline). The numbers are those of the Open Source Brain re-implementation
  (github.com/OpenSourceBrain/del-Molino2017, Python/delMolino.py): connectivity W (pA/Hz),
  background currents, leak conductances g_L = (6.25, 10, 5, 5) nS, membrane time constants
  (28.8, 8, 16, 16) ms, V_L = -70, V_th = -50, V_r = -60 mV, sigma_V = 1 mV, rate time
  constant 2 ms, with the f-I curve phi(V) = (V - V_th) / (tau_m (V_th - V_r)(1 - exp(-(V -
  V_th)/sigma_V))), V = V_L + I/g_L. In this module's form: theta = g_L (V_th - V_L),
  g = 1 / (g_L tau_m (V_th - V_r)), s = g_L sigma_V. The baseline rates (1, 10, 3, 2) Hz (low)
  and (30, 50, 30, 20) Hz (high) are those the background currents were chosen for (the set
  points here); the re-implementation notes that the high-baseline currents are not given in
  the paper. These values were not checked against the paper's own tables (not available to
  us); tests/test_ei_circuit.py checks that each preset's steady state is its baseline rates
  and that the reversal holds.
"""
import numpy as np

from tcnet_plugins.ei import model as ei

FIELDS = ("populations", "types", "tau", "gain", "threshold", "exponent", "smoothness", "input", "set_points",
          "connections", "kick", "kick_duration", "settle")
"""The configuration keys a preset fills in (with W, the initial weights)."""


def _two_population(name: str) -> dict:
    p, W = ei.PRESETS[name]["params"], ei.PRESETS[name]["W"]
    return {"populations": ["E", "I"], "types": ["E", "I"], "tau": [p["tau_E"], p["tau_I"]],
            "gain": [p["g_E"], p["g_I"]], "threshold": [p["Theta_E"], p["Theta_I"]], "exponent": [1.0, 1.0],
            "smoothness": [0.0, 0.0], "input": [p["I_ext"], 0.0], "set_points": [p["E_set"], p["I_set"]],
            "connections": [[1, 1], [1, 1]], "kick": [ei.QSS_KICK[0], 0.0], "kick_duration": ei.QSS_KICK[1],
            "settle": 3000.0, "W": [[W[0], W[1]], [W[2], W[3]]]}


_DM_W = np.array([[2.4167, 0.3329, 0.8039, 0.0],
                  [2.9706, 3.4554, 2.1291, 0.0],
                  [4.6440, 0.0, 0.0, 2.7896],
                  [0.7162, 0.0, 0.1560, 0.0]])
_DM_GL = np.array([6.25, 10.0, 5.0, 5.0])  # nS
_DM_TAU_M = np.array([28.8, 8.0, 16.0, 16.0]) * 1e-3  # s: rates in Hz
_DM_VL, _DM_VTH, _DM_VR, _DM_SV = -70.0, -50.0, -60.0, 1.0  # mV


def _del_molino(inputs, rates) -> dict:
    return {"populations": ["E", "PV", "SST", "VIP"], "types": ["E", "I", "I", "I"], "tau": [2.0] * 4,
            "gain": (1.0 / (_DM_GL * _DM_TAU_M * (_DM_VTH - _DM_VR))).tolist(),
            "threshold": (_DM_GL * (_DM_VTH - _DM_VL)).tolist(), "exponent": [1.0] * 4,
            "smoothness": (_DM_GL * _DM_SV).tolist(), "input": list(inputs), "set_points": list(rates),
            "connections": (_DM_W > 0).astype(int).tolist(), "kick": [0.0] * 4, "kick_duration": 0.0,
            "settle": 500.0, "W": _DM_W.tolist()}


PRESETS = {
    "paradoxical": _two_population("paradoxical"),
    "non_paradoxical": _two_population("non_paradoxical"),
    "del_molino_low": _del_molino((115.03, 233.66, 94.31, 89.91), (1.0, 10.0, 3.0, 2.0)),
    "del_molino_high": _del_molino((147.2512, 386.7281, 40.2657, 98.4368), (30.0, 50.0, 30.0, 20.0)),
}
