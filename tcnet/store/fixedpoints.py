"""Fixed-point files: the fixed and slow points of a network (tcnet.fixedpoints), a format of their
own beside the store (docs/FORMAT.md), created complete or not at all (`new_h5`) and checksummed
like the store."""
import numpy as np

from tcnet.store.errors import StoreError
from tcnet.store.format import as_text, member_dataset, read_array
from tcnet.store.hdf5 import create_dataset, new_h5, read_h5, set_attrs

FIXED_POINTS_FORMAT = "tcnet-fixed-points"
ARRAYS = ("x", "q", "fixed", "eigenvalues", "vectors")


def save_fixed_points(path, points, *, force: bool = False, **attrs) -> None:
    """Write a tcnet.fixedpoints.FixedPoints: x (P, N), q (P,), fixed (P,) as 0/1, eigenvalues
    (P, N) and vectors (P, N, N) complex128, with string/number attributes (source, network)."""
    with new_h5(path, FIXED_POINTS_FORMAT, force) as f:
        set_attrs(f, **attrs)
        create_dataset(f, "x", np.asarray(points.x, dtype=np.float64))
        create_dataset(f, "q", np.asarray(points.q, dtype=np.float64))
        create_dataset(f, "fixed", np.asarray(points.fixed, dtype=np.int8))
        create_dataset(f, "eigenvalues", np.asarray(points.eigenvalues, dtype=np.complex128))
        create_dataset(f, "vectors", np.asarray(points.vectors, dtype=np.complex128))


def read_fixed_points(path) -> tuple[dict, dict]:
    """The arrays of a file of `save_fixed_points` (by name) and its root attributes."""
    with read_h5(path, FIXED_POINTS_FORMAT) as f:
        missing = [k for k in ARRAYS if k not in f]
        if missing:
            raise StoreError(f"{path}: not a fixed-point file (missing {', '.join(missing)})")
        attrs = {k: (as_text(v) if isinstance(v, (str, bytes)) else v.item()) for k, v in f.attrs.items()}
        arrays = {k: np.array(read_array(member_dataset(f, k, str(path), kinds="iufc"), str(path))) for k in ARRAYS}
        return arrays, attrs
