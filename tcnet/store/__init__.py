"""HDF5 store: saved networks and run histories that survive a killed process and load back.

The layout is documented in docs/FORMAT.md (readable with plain h5py). In short: a root with
attributes format="tcnet", format_version, tcnet_version; /networks/<name> (one dataset per
parameter array, attributes dynamics, config JSON, seed); /runs/<id> (the run spec as JSON, a
status, params/initial and params/final stored like networks, a growing history/, and two
checkpoint slots, one of which holds the last flushed step from which an interrupted run resumes).

Crash safety: a `RunWriter` buffers steps in memory and, every `flush_steps` steps or
`flush_seconds` seconds, opens the file, commits, and closes it again. Between flushes the file is
closed and consistent, so SIGKILL loses at most the steps since the last flush; within a flush a
two-phase commit (see `RunWriter`) keeps the committed rows and checkpoint intact. One writer at a
time: a writer holds an exclusive `flock` on the sidecar file `<file>.lock` for the whole run (the
kernel drops it when the process dies); a second writer is refused. A run whose status is still
"running" while nobody holds that lock for it was killed: it reads back as "interrupted".

Corruption is refused, never read as data: every object tcnet writes is under an HDF5 checksum
(metadata in HDF5 1.10's formats, fletcher32 on array datasets, scalars and strings inside their
object headers), and a failed checksum is one StoreError naming the object (docs/FORMAT.md).

Nothing is pickled: optimizer state (numpy arrays, numbers, strings, None, lists of numbers and
nested dicts of these) is stored as datasets and groups.

Modules (everything public is re-exported here, so `from tcnet.store import ...` is the API):
- `_files`: format constants, `StoreError`/`FileBusyError`, opening a file (signature and root
  checks, waiting `OPEN_WAIT`/`FLUSH_WAIT`/`FINAL_WAIT` seconds for another process's HDF5 lock),
  the writer lock, and `new_file`/`new_h5`/`check_new`: the one way tcnet creates any other file
  (trajectories, data sets, figures, tables): never over an existing file unless forced, never
  over one a writer holds, complete under a temporary name and then renamed into place;
  `set_attrs`/`create_dataset`, which write what HDF5 checksums, and `read_h5`, which reads a
  file of `new_h5` back and refuses a damaged one, for any format (a plugin's own too). The
  waits are read there, so patch them on `tcnet.store._files`.
- `networks`: `NetworkData`, saving and loading networks (also a run's initial, final and
  checkpoint networks), `file_info`, `save_trajectories`, `read_trajectories`, and the
  optimizer-state trees.
- `runs`: `RunWriter` (the recorder and its two-phase commit; steps one by one or whole columns),
  `history_columns`, `RunRecord`, `list_runs`, `read_run`, `resume`.
- `tables`: comparing runs: `flatten_spec`, `compare_table`, `group_rows`, `table_csv`.
"""
from tcnet.store._files import (
    CHUNK, FINISHED, FORMAT, FORMAT_VERSION, HISTORY_COLUMNS, NETWORK_PARTS, DiskFullError, FileBusyError, StoreError,
    check_new, create_dataset, driver_lock, ended_status, new_file, new_h5, read_h5, set_attrs,
)
from tcnet.store.networks import (
    NetworkData, file_info, list_networks, load_network, network_data, read_trajectories, save_network,
    save_trajectories,
)
from tcnet.store.runs import RunRecord, RunWriter, history_columns, list_runs, read_run, resume
from tcnet.store.tables import compare_table, flatten_spec, group_rows, table_csv

__all__ = [
    "CHUNK", "FINISHED", "FORMAT", "FORMAT_VERSION", "HISTORY_COLUMNS", "NETWORK_PARTS", "DiskFullError", "FileBusyError",
    "NetworkData", "RunRecord", "RunWriter", "StoreError", "compare_table", "file_info", "flatten_spec",
    "check_new", "driver_lock", "ended_status", "group_rows", "history_columns", "list_networks", "list_runs", "load_network", "network_data", "new_file", "new_h5",
    "create_dataset", "read_h5", "read_run", "set_attrs", "read_trajectories", "resume", "save_network", "save_trajectories", "table_csv",
]
