"""Reading runs (/runs/<id>) back: `list_runs`, and `read_run`, which gives a run's committed
history rows, networks and checkpoint; a run a killed writer left "running" reads as "interrupted"."""
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tcnet.dynamics import Dynamics
from tcnet.optim import Checkpoint
from tcnet.plugins import Registry
from tcnet.status import ENDED, STORED, Status
from tcnet.store.digests import verified, verified_rows
from tcnet.store.errors import StoreError
from tcnet.store.format import (
    HISTORY_COLUMNS, as_text, checkpoint_group, has, int_attr, json_attr, malformed, member_dataset, member_group,
    optional_group, read_array, real_attr, text_attr,
)
from tcnet.store.hdf5 import reading
from tcnet.store.locks import writer_of
from tcnet.store.networks import NetworkData, no_initial_network, read_network, run_data
from tcnet.store.trees import read_tree


@dataclass(frozen=True)
class RunRecord:
    """A run as read back: spec, status, history columns, networks and checkpoint."""

    path: Path
    run_id: str
    spec: dict
    status: str
    message: str
    attrs: dict
    history: dict
    initial_data: NetworkData | None
    final_data: NetworkData | None
    checkpoint: Checkpoint | None
    plugins: Registry | None = field(default=None, repr=False, compare=False)

    @property
    def initial(self) -> Dynamics:
        """The network the run started from (StoreError for a run that failed creating it)."""
        if self.initial_data is None:
            raise no_initial_network(self.path, self.run_id, self.message)
        return self.initial_data.build(self.plugins)

    @property
    def final(self) -> Dynamics | None:
        """The final network (None for a run that did not finish)."""
        return None if self.final_data is None else self.final_data.build(self.plugins)

    @property
    def steps(self) -> int:
        """Number of recorded history rows."""
        return len(self.history["step"])


def _checkpoint(c: h5py.Group, where: str) -> Checkpoint:
    """A checkpoint group read back; a file written before the evaluation count was stored
    counts from 0."""
    opt_state = read_tree(member_group(c, "state", where), where)
    stage, evaluations = opt_state.pop("stage", 0), opt_state.pop("evaluations", 0)
    if not all(isinstance(v, int) and v >= 0 for v in (stage, evaluations)):
        raise malformed(where, "state/stage and state/evaluations to be integers >= 0", (stage, evaluations))
    x = member_dataset(c, "x", where, ndim=1, kinds="f")
    return Checkpoint(int_attr(c, "step", where, low=0), np.array(verified(x, read_array(x, where))),
                      opt_state, real_attr(c, "elapsed", where), stage, evaluations)


def check_spec(spec: dict, where: str) -> dict:
    """The run spec of a run's `config` attribute, checked to have the shape every reader relies
    on (tcnet.spec): tables `dynamics` and `optimizer` with a string `name` (a staged optimizer's
    `stages` a list of such tables), and `loss`, a list of such tables."""
    def named(entry) -> bool:
        return isinstance(entry, dict) and isinstance(entry.get("name"), str)

    optimizer = spec.get("optimizer")
    stages = optimizer.get("stages", []) if isinstance(optimizer, dict) else []
    loss = spec.get("loss")
    if not (named(spec.get("dynamics")) and named(optimizer) and isinstance(loss, list) and all(map(named, loss))
            and isinstance(stages, list) and all(map(named, stages))):
        found = {k: type(spec[k]).__name__ if k in spec else "missing" for k in ("dynamics", "loss", "optimizer")}
        raise malformed(where, "attribute 'config' to hold a run spec (tables dynamics and optimizer with a string "
                        "name, loss a list of such tables)", found)
    return spec


def _int_array_attr(g, key: str, where: str) -> None:
    """Check the optional attribute `key` of `g`: a 1-D array of integers >= 0 (e.g. `resumed_at`)."""
    if key not in g.attrs:
        return
    value = np.asarray(g.attrs[key])
    if value.ndim != 1 or value.dtype.kind not in "iu" or np.any(value < 0):
        raise malformed(where, f"attribute {key!r} to be a 1-D array of integers >= 0", repr(g.attrs[key]))


def list_runs(path) -> list[str]:
    """Run ids in the order they were created."""
    with reading(path) as f:
        return list(optional_group(f, "runs", str(path)))


def read_run(path, run_id: str, *, plugins: Registry | None = None, networks: bool = True) -> RunRecord:
    """Everything stored about one run (its committed history rows and checkpoint). A run recorded
    as running whose writer no longer holds the file's writer lock was killed; its status reads
    "interrupted". `networks=False` leaves the initial and final networks unread (None): what a
    table of runs needs (spec, status, attributes with the stored summary, history) at a fraction
    of the cost of a file of large networks."""
    path = Path(path)
    with reading(path) as f:
        runs = optional_group(f, "runs", str(path))
        if not has(runs, run_id):
            raise StoreError(f"{path}: no run {run_id!r} (runs: {', '.join(runs) or 'none'})")
        g = runs[run_id]
        where = f"{path}: run {run_id!r}"
        need = ("config", "status", "rows", "checkpoint")
        if any(k not in g.attrs for k in need) or "history" not in g or "params" not in g:
            raise StoreError(f"{where}: malformed run (expected attributes {', '.join(need)}, groups history "
                             f"and params; found attributes {sorted(g.attrs)}, members {sorted(g)})")
        rows = int_attr(g, "rows", where, low=0)
        stored_status = text_attr(g, "status", where)
        if stored_status not in STORED:
            raise malformed(where, f"attribute 'status' one of {', '.join(STORED)}", repr(stored_status))
        spec = check_spec(json_attr(g, "config", where), where)
        _int_array_attr(g, "resumed_at", where)
        params, h = member_group(g, "params", where), member_group(g, "history", where)
        if "initial" not in params and (stored_status != Status.FAILED or rows):
            raise StoreError(f"{where}: malformed run (no params/initial, which only a run that failed "
                             "before its network was created may lack)")
        columns = {name: member_dataset(h, name, f"{where} history", ndim=1) for name in HISTORY_COLUMNS}
        for sub in ("terms", "extra"):
            group = member_group(h, sub, f"{where} history")
            columns.update({f"{sub}/{k}": member_dataset(group, k, f"{where} history/{sub}", ndim=1) for k in group})
        short = {k: ds.shape[0] for k, ds in columns.items() if ds.shape[0] < rows}
        if short:
            raise StoreError(f"{where}: malformed history (expected {rows} rows in every column, found {short})")
        slot = int_attr(g, "checkpoint", where, low=-1, high=1)  # the committed rows' digests (tcnet.store.digests)
        # every row of every column but extra/ is written (extra/ rows before its key appeared are fill values)
        history = {k: verified_rows(ds, read_array(ds, where, rows, written=not k.startswith("extra/")), slot)
                   for k, ds in columns.items()}
        attrs = {k: (as_text(v) if isinstance(v, (str, bytes)) else v) for k, v in g.attrs.items() if k != "config"}
        c = checkpoint_group(g, where)
        checkpoint = None if c is None else _checkpoint(c, f"{where} checkpoint")
        if checkpoint is not None and rows and checkpoint.step != history["step"][-1]:
            raise malformed(where, f"the checkpoint at the last committed step {history['step'][-1]}",
                            f"step {checkpoint.step}")
        initial = None
        if "initial" in params and networks:
            initial = read_network(member_group(params, "initial", where), f"{where} initial network", run_data(g))
        final = None
        if stored_status in ENDED and networks:
            final = read_network(member_group(params, "final", where), f"{where} final network", run_data(g))
    status, message = attrs["status"], attrs.get("message", "")
    if status == Status.RUNNING:
        owner = writer_of(path)
        if owner is None or owner.get("run", run_id) != run_id:
            status = Status.INTERRUPTED
            message = (f"writer {attrs.get('writer', '?')} stopped without closing the run (killed or "
                       "crashed); the history holds the steps up to its last flush")
    return RunRecord(path, run_id, spec, status, message, attrs, history, initial, final, checkpoint, plugins)
