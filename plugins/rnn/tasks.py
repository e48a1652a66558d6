"""Tasks to start from: `motif`, a readout motif produced from a preparatory state.

Condition c gets a brief pulse on input c (the first `pulse` seconds), which sets a preparatory
state; the readout must then follow condition c's target curve, a smooth bump-windowed sinusoid,
and return to zero, where it stays. The pulse itself is masked out of the readout error.
"""
import numpy as np

from tcnet.task import Task
from tcnet.validate import integer, positive


def motif(conditions: int = 2, duration: float = 0.2, dt: float = 0.002, pulse: float = 0.02,
          amplitude: float = 0.5) -> Task:
    """The motif task (module docstring): one input per condition, one readout; times in s."""
    integer("motif", "conditions", conditions, low=1)
    for name, value in (("duration", duration), ("dt", dt), ("pulse", pulse), ("amplitude", amplitude)):
        positive("motif", name, value)
    t = np.arange(int(round(duration / dt)) + 1) * dt
    u = np.zeros((conditions, len(t), conditions))
    on = t < pulse
    for c in range(conditions):
        u[c, on, c] = 1.0
    start, stop = 2 * pulse, 0.75 * duration  # the motif's window
    s = np.clip((t - start) / (stop - start), 0.0, 1.0)
    window = np.sin(np.pi * s) ** 2
    target = np.stack([amplitude * window * np.sin(2 * np.pi * (c + 1) * s) for c in range(conditions)])[:, :, None]
    mask = np.broadcast_to((t >= pulse).astype(float), (conditions, len(t))).copy()
    return Task(t, u, target, mask=mask)
