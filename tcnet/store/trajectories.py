"""Simulated trajectory files: a format of their own beside the store (docs/FORMAT.md), created
complete or not at all (`new_h5`) and checksummed like the store."""
import numpy as np

from tcnet.store.errors import StoreError
from tcnet.store.format import as_text, member_dataset, read_array
from tcnet.store.hdf5 import create_dataset, new_h5, read_h5, set_attrs

TRAJECTORY_FORMAT = "tcnet-trajectories"


def save_trajectories(path, t, x, *, force: bool = False, **attrs) -> None:
    """Write simulated trajectories (a separate file, see docs/FORMAT.md): t (T,), x (T, n, dim),
    norms (T, n), with string/number attributes such as the source file, network and seed. An
    existing file is replaced only with `force` (see `new_file`)."""
    with new_h5(path, TRAJECTORY_FORMAT, force) as f:
        set_attrs(f, **attrs)
        create_dataset(f, "t", np.asarray(t, dtype=np.float64))
        create_dataset(f, "x", np.asarray(x, dtype=np.float64))
        create_dataset(f, "norms", np.linalg.norm(x, axis=-1))


def read_trajectories(path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A file of `save_trajectories`: t (T,), x (T, n, dim) and its root attributes."""
    with read_h5(path, TRAJECTORY_FORMAT) as f:
        if "t" not in f or "x" not in f:
            raise StoreError(f"{path}: not a trajectory file (expected datasets t and x, found {sorted(f)})")
        attrs = {k: (as_text(v) if isinstance(v, (str, bytes)) else v.item()) for k, v in f.attrs.items()}
        t, x = (read_array(member_dataset(f, k, str(path), kinds="f"), str(path)) for k in ("t", "x"))
        return np.array(t), np.array(x), attrs

