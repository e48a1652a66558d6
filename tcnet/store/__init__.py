"""HDF5 store: saved networks and run histories that survive a killed process and load back.

The layout is documented in docs/FORMAT.md (readable with plain h5py). In short: a root with
attributes format="tcnet", format_version, tcnet_version; /networks/<name> (one dataset per
parameter array, a group data/ of its fixed data in their own dtypes, attributes dynamics, config
JSON, seed); /runs/<id> (the run spec as JSON, a status, params/initial and params/final stored
like networks, their shared data once in params/data, a growing history/, and two
checkpoint slots, one of which holds the last flushed step from which an interrupted run resumes).

Crash safety: a `RunWriter` buffers steps in memory and, every `flush_steps` steps or
`flush_seconds` seconds, opens the file, commits, and closes it again. Between flushes the file is
closed and consistent, so SIGKILL loses at most the steps since the last flush; within a flush a
two-phase commit (see `tcnet.store.commit`) keeps the committed rows and checkpoint intact. One writer at a
time: a writer holds an exclusive `flock` on the sidecar file `<file>.lock` for the whole run (the
kernel drops it when the process dies); a second writer is refused. A run whose status is still
"running" while nobody holds that lock for it was killed: it reads back as "interrupted".

Corruption is refused, never read as data: every object tcnet writes is under an HDF5 checksum
(metadata in HDF5 1.10's formats, fletcher32 on array datasets, scalars and strings inside their
object headers), every array also has a digest in its header (fletcher32 of zeros is zero), and a
failed checksum or digest is one StoreError naming the object (docs/FORMAT.md).

Nothing is pickled: optimizer state (numpy arrays, numbers, strings, None, lists of numbers and
nested dicts of these) is stored as datasets and groups.

Modules, lowest first (everything public is re-exported here, so `from tcnet.store import ...` is
the API). The store sits below the run layer: no module here imports `tcnet.run` or the package
face `tcnet` (tests/test_layers.py); resuming a run is `tcnet.resume`, run statuses are
`tcnet.status`.
- `errors`: `StoreError`, `FileBusyError`, `DiskFullError`.
- `identity`: which file a path names (symbolic and hard links resolved), and the files the running
  command reads or writes.
- `holders`: the processes holding a file locked (`/proc/locks`), named when a reader keeps a writer waiting.
- `locks`: the writer lock (`WriteLock`, one writer per file, under any of its names) and
  `driver_lock` (one study driver per file).
- `atomic`: `new_file`/`check_new`/`write_bytes`, the one way tcnet creates any file (figures, CSV,
  JSON, trajectories, data sets): never over an existing file unless forced, never over one any
  tcnet process writes or the command itself uses, complete under a temporary name (space
  allocated first where the size is known, read back) and then renamed into place. No HDF5 in it.
- `digests`: the digests of array datasets, which a zeroed block (checksum and all) cannot
  match; checked by every reader.
- `format`: the format's name, versions and constants, the root check, and reading attributes and
  members checked against docs/FORMAT.md (older versions included), and datasets read only once their
  declared size is checked against what the file holds and the memory available (`read_array`).
- `hdf5`: checksummed HDF5 files: opening (waiting `OPEN_WAIT`/`FLUSH_WAIT`/`FINAL_WAIT` seconds
  for another process's HDF5 lock; patch them on `tcnet.store.hdf5`), a failed checksum as one
  StoreError naming the object, `set_attrs`/`create_dataset` (what HDF5 checksums), `new_h5` and
  `read_h5` for any format (a plugin's own too), `file_info`.
- `trees`: optimizer-state trees as datasets and groups.
- `networks`: `NetworkData`, saving and loading networks (also a run's initial, final and
  checkpoint networks).
- `trajectories`: `save_trajectories`, `read_trajectories`;
- `fixedpoints`: `save_fixed_points`, `read_fixed_points` (a network's fixed and slow points).
- `commit`: a run's group on disk and its two-phase commit; `history_columns`.
- `writer`: `RunWriter`, the recorder (steps one by one or whole columns).
- `runs`: `RunRecord`, `list_runs`, `read_run`.
- `tables`: comparing runs in one column syntax: `flatten_spec`, `run_metrics`, `compare_table`,
  `group_rows`, `table_csv`.
"""
from tcnet.store.atomic import check_new, new_file, write_bytes
from tcnet.store.commit import history_columns
from tcnet.store.errors import DiskFullError, FileBusyError, StoreError
from tcnet.store.format import CHUNK, FORMAT, FORMAT_VERSION, HISTORY_COLUMNS, NETWORK_PARTS
from tcnet.store.hdf5 import create_dataset, file_info, new_h5, read_h5, set_attrs
from tcnet.store.locks import driver_lock
from tcnet.store.networks import NetworkData, list_networks, load_network, network_data, save_network
from tcnet.store.runs import RunRecord, list_runs, read_run
from tcnet.store.fixedpoints import read_fixed_points, save_fixed_points
from tcnet.store.summaries import fill_summaries, stored_summary, summarize
from tcnet.store.tables import (MissingPluginWarning, compare_table, flatten_spec, group_rows, run_metrics, table_csv,
                                 warn_missing_plugins)
from tcnet.store.trajectories import read_trajectories, save_trajectories
from tcnet.store.writer import RunWriter

__all__ = [
    "CHUNK", "FORMAT", "FORMAT_VERSION", "HISTORY_COLUMNS", "NETWORK_PARTS", "DiskFullError", "FileBusyError",
    "NetworkData", "RunRecord", "RunWriter", "StoreError", "check_new", "compare_table", "create_dataset",
    "driver_lock", "file_info", "flatten_spec", "group_rows", "history_columns", "list_networks", "list_runs",
    "load_network", "network_data", "new_file", "new_h5", "read_h5", "read_fixed_points", "read_run",
    "read_trajectories", "run_metrics", "save_fixed_points", "save_network", "save_trajectories", "set_attrs",
    "table_csv", "write_bytes", "MissingPluginWarning", "warn_missing_plugins", "fill_summaries",
    "stored_summary", "summarize",
]
