"""Reading and writing a study's runs through the store (tcnet.store); only the driver writes."""
from pathlib import Path

from tcnet.spec import RunSpec
from tcnet.status import ENDED, Status
from tcnet.study.spec import PlannedRun
from tcnet.validate import ConfigError


def attempt_ids(run_id: str, k: int) -> str:
    """The store id of attempt k (1, 2, ...) of a planned run: the run id, then '<id>.<k>'."""
    return run_id if k == 1 else f"{run_id}.{k}"


def _attempts(path) -> dict[str, list[str]]:
    """Stored ids grouped by planned run id (in attempt order)."""
    from tcnet.store import list_runs

    if not Path(path).exists():
        return {}
    out: dict[str, list[str]] = {}
    for rid in list_runs(path):
        base, _, k = rid.rpartition(".")
        out.setdefault(base if k.isdigit() and base else rid, []).append(rid)
    return out


def stored(path, planned: list, plugins=None, networks: bool = True) -> dict:
    """For each planned run the file holds: the record of its best attempt (finished or
    non-finite or diverged before failed before interrupted; the latest among equals) and its
    attempt count; `networks=False` reads the records without their networks (for tables)."""
    from tcnet.store import read_run

    rank = {**dict.fromkeys(ENDED, 0), Status.FAILED: 1}
    attempts = _attempts(path)
    out = {}
    for p in planned:
        ids = attempts.get(p.run_id, [])
        records = [read_run(path, rid, plugins=plugins, networks=networks) for rid in ids]
        for rec in records:
            if not p.matches(rec.spec):
                raise ConfigError(f"study: {path} holds run {rec.run_id} with another spec than this study's run "
                                  f"{p.key}; use another output file")
        if records:
            best = min(reversed(records), key=lambda rec: rank.get(rec.status, 2))
            out[p.run_id] = (best, len(records))
    return out


def write_outcome(path, planned: PlannedRun, outcome: dict, attempt: int, plugins) -> str:
    """Write a worker's outcome as one whole run through the store's RunWriter (this process
    only): the spec and initial network (none if it could not be created), the history as whole
    columns with the last step's checkpoint, and the final network or the error; linked into the
    file only once it is all written (`RunWriter.record`), so a driver killed meanwhile leaves the
    planned run unstarted. Returns the stored id."""
    from tcnet.optim import Result
    from tcnet.store import RunWriter

    def network(arrays):  # the worker's network (dynamics, config, seed, its checked data) with these arrays
        return plugins.get("dynamics", outcome["name"])(arrays, outcome["config"], outcome["seed"],
                                                        data=outcome["data"])

    run_id = attempt_ids(planned.run_id, attempt)
    spec = RunSpec.from_dict(outcome.get("spec", planned.resolved))
    initial = None if outcome["initial"] is None else network(outcome["initial"])
    if outcome["status"] == Status.FAILED:
        end = dict(error=outcome["error"])
    else:
        final = network(outcome["final"])
        end = dict(final=final, result=Result(final.vector(), outcome["optimizer_status"], outcome["message"],
                                              outcome["steps"], outcome["evaluations"]))
    writer = RunWriter(path, run_id)
    writer.provenance(outcome.get("code", {}))
    writer.record(spec, initial, outcome["history"] if outcome["checkpoint"] is not None else None,
                  outcome["checkpoint"], **end)
    return run_id


STUDIES = "studies"
"""The root attribute of a store file that keeps the definitions of the studies run into it: JSON,
study name -> `Study.definition()` (docs/FORMAT.md; a file without it holds none)."""


def definitions(path) -> dict[str, dict]:
    """The study definitions the file at `path` keeps, by study name (none in an older file)."""
    import json

    from tcnet.store.format import as_text
    from tcnet.store.hdf5 import reading

    with reading(Path(path)) as f:
        text = f.attrs.get(STUDIES)
        return {} if text is None else json.loads(as_text(text))


def write_definition(path, name: str, definition: dict) -> None:
    """Keep `definition` under `name` in the file at `path` (created if missing) unless it holds
    it already; under the store's writer lock, so no run writer is in the file meanwhile."""
    import json

    from tcnet.store import set_attrs
    from tcnet.store.format import as_text
    from tcnet.store.hdf5 import writing
    from tcnet.store.locks import WriteLock, this_writer

    path = Path(path)
    if path.exists() and definitions(path).get(name) == definition:
        return
    lock = WriteLock(path)
    lock.acquire(this_writer())
    try:
        with writing(path) as f:
            text = f.attrs.get(STUDIES)
            kept = {} if text is None else json.loads(as_text(text))
            set_attrs(f, **{STUDIES: json.dumps({**kept, name: definition})})
    finally:
        lock.release()
