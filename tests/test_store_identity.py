"""One lock per file, not per spelling of its path (issue 27, items 1 and 4).

A symbolic link and a hard link name the file they lead to: a writer through either holds the
lock of the file itself, so that readers see its run as running, a second writer (`tcnet resume`)
is refused, and no `--force` replaces the file under it. Writing to a path that is a link writes
its target (a dangling link gets its target made). No command replaces a file it reads or writes
itself: a study's `--csv` is never its own store."""
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from tcnet.spec import RunSpec
from tcnet.store import FileBusyError, RunWriter, StoreError, identity, locks
from test_store_failures import PLUGIN, PLUGINS, interrupted_run, spec, tcnet_cli

TESTS = Path(__file__).parent


def _link(kind: str, target: Path, name: Path) -> Path:
    """`name` made a symbolic or a hard link to `target`."""
    (os.symlink if kind == "symlink" else os.link)(target, name)
    return name


@pytest.mark.parametrize("kind", ["symlink", "hard link"])
def test_a_writer_through_a_link_holds_the_file(tmp_path, capsys, kind):
    """Before: with run-0002 being resumed through link.h5, `tcnet show real.h5` reported it as
    killed or crashed, `tcnet resume real.h5 run-0002` exited 0 and wrote into the same run while
    the first writer went on, and `tcnet simulate ... --out real.h5 --force` replaced the store."""
    real = tmp_path / "real.h5"
    interrupted_run(real, at=100)
    source = tmp_path / "x.h5"
    shutil.copy(real, source)
    link = _link(kind, real, tmp_path / "link.h5")
    record = store.read_run(real, "run-0002", plugins=PLUGINS)
    writer = RunWriter(link, "run-0002", resume_from=100)
    writer.start(RunSpec.from_dict(spec()), record.initial)
    try:
        assert store.read_run(real, "run-0002", plugins=PLUGINS).status == "running"
        assert main(["--plugin", str(PLUGIN), "show", str(real)]) == 0
        assert "  run-0002  status=running  steps=101" in capsys.readouterr().out
        before = real.read_bytes()
        child = tcnet_cli("resume", real, "run-0002", "--no-progress")
        _, err = child.communicate(timeout=120)
        assert child.returncode == 2 and err == (f"tcnet resume: {real}: run 'run-0002' cannot be resumed (expected "
                                                 "status interrupted or failed, found running)\n")
        with pytest.raises(FileBusyError) as busy:  # and were it resumed, its writer would be refused
            RunWriter(real, "run-0002", resume_from=100).start(RunSpec.from_dict(spec()), record.initial)
        assert str(busy.value).startswith(f"{real}: another process is writing this file (run 'run-0002', "
                                          f"pid {os.getpid()} on host ")
        code = main(["--plugin", str(PLUGIN), "simulate", str(source), "run-0001", "--out", str(real), "--force"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"tcnet simulate: {real}: another process is writing this file (run "
                                            "'run-0002', pid ") and err.endswith("refusing to replace it\n")
        for other in (real, link):
            with pytest.raises(FileBusyError, match="another process is writing this file"):
                store.save_trajectories(other, [0.0], np.zeros((1, 1, 1)), force=True)
        assert real.read_bytes() == before
    finally:
        writer.fail(KeyboardInterrupt())
    assert store.read_run(real, "run-0002", plugins=PLUGINS).status == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.h5", "real.h5", "x.h5"]  # the sidecar lock is gone
    key = identity.file_key(real)
    assert not (locks.LOCK_DIR / f"{key[0]}-{key[1]}.lock").exists()  # and so is the identity lock


def test_a_store_made_by_its_writer_is_held_under_every_name(tmp_path):
    """A writer (and a study's driver) that creates its store holds the new file's identity from
    then on: a hard link made while it runs leads to a held file."""
    path = tmp_path / "new.h5"
    with store.driver_lock(path):
        writer = RunWriter(path)
        writer.start(RunSpec.from_dict(spec()), None)
        try:
            hard = _link("hard link", path, tmp_path / "hard.h5")
            with pytest.raises(FileBusyError, match=f"^{hard}: another process is writing this file"):
                locks.WriteLock(hard).acquire(locks.this_writer())
            assert locks.writer_of(hard)["pid"] == os.getpid()
            with pytest.raises(FileBusyError, match=f"^{hard}: another process is writing this file"):
                with store.driver_lock(hard):
                    pass
        finally:
            writer.fail("stopped")


def test_a_second_study_driver_through_a_link_is_refused(tmp_path):
    real = tmp_path / "real.h5"
    real.write_bytes(b"")
    link = _link("symlink", real, tmp_path / "link.h5")
    with store.driver_lock(link):
        with pytest.raises(FileBusyError, match="another process is writing this file"), store.driver_lock(real):
            pass
        with pytest.raises(FileBusyError, match=f"^{real}: a study is writing its runs into this file"):
            store.check_new(real, force=True)


@pytest.mark.parametrize("how", ["RunWriter", "train"])
def test_a_dangling_symlink_gets_its_target_made(tmp_path, how):
    """Before: the store replaced the link with a regular file, and its target was never made."""
    target, link = tmp_path / "target.h5", tmp_path / "link.h5"
    link.symlink_to(target)
    if how == "RunWriter":
        tcnet.run(spec(20), recorders=[RunWriter(link)], progress=False, plugins=PLUGINS)
    else:
        assert main(["train", "-N", "6", "-F", "0.5", "-A", "3", "-L", "2", "-f", str(link), "--no-progress"]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(store.list_runs(target)) == 1 and store.list_runs(link) == store.list_runs(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.h5", "target.h5"]


def test_new_files_are_written_through_links(tmp_path):
    target, link = tmp_path / "table.csv", tmp_path / "link.csv"
    link.symlink_to(target)
    store.write_bytes(link, b"a,b\n")  # a dangling link: its target is made
    assert target.read_bytes() == b"a,b\n" and link.is_symlink()
    with pytest.raises(StoreError, match=f"^{link}: exists already"):
        store.write_bytes(link, b"c,d\n")
    store.write_bytes(link, b"c,d\n", force=True)  # replaced through the link, which stays a link
    assert target.read_bytes() == b"c,d\n" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "table.csv"]


def test_a_file_open_in_hdf5_is_not_replaced(tmp_path):
    path = tmp_path / "t.h5"
    store.save_trajectories(path, [0.0, 1.0], np.ones((2, 1, 1)))
    before = path.read_bytes()
    with h5py.File(path, "r"):
        with pytest.raises(FileBusyError, match=f"^{path}: the file is open in HDF5"):
            store.save_trajectories(path, [0.0], np.zeros((1, 1, 1)), force=True)
    assert path.read_bytes() == before


def test_a_command_never_replaces_a_file_it_used(tmp_path):
    path = tmp_path / "runs.h5"
    tcnet.run(spec(5), recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    hard = _link("hard link", path, tmp_path / "hard.h5")
    with identity.command():
        store.read_run(path, "run-0001", plugins=PLUGINS)
        for name in (path, hard):
            with pytest.raises(StoreError, match=f"^{name}: this command reads or writes this file; refusing"):
                store.write_bytes(name, b"x", force=True)
        store.write_bytes(tmp_path / "other.csv", b"x")
    store.write_bytes(hard, b"x", force=True)  # outside a command, a library call replaces it as asked
    assert path.read_bytes() != b"x" and hard.read_bytes() == b"x"  # (the hard link now names a new file)


STUDY = ('[study]\nname = "s"\nplugins = ["{plugin}"]\n[base.dynamics]\nname = "point"\nn = 3\n[[base.loss]]\n'
         'name = "quadratic"\nlabel = "q"\n[base.optimizer]\nname = "adam"\nsteps = 2\n[grid]\n"loss.q.weight" = [1.0, 2.0]\n')


@pytest.mark.parametrize("csv_name", ["s.h5", "link.h5"])
def test_a_study_csv_is_never_its_own_store(tmp_path, capsys, csv_name):
    """Before: `--csv` naming the study's own `-o` file, with `--force`, replaced the store by
    the table."""
    toml, out = tmp_path / "s.toml", tmp_path / "s.h5"
    toml.write_text(STUDY.format(plugin=TESTS / "quadratic_plugin.py"))
    link = _link("symlink", out, tmp_path / "link.h5")
    csv = tmp_path / csv_name
    assert main(["study", str(toml), "-o", str(out), "--workers", "1", "--no-progress"]) == 0
    capsys.readouterr()
    before = out.read_bytes()
    for extra in ([], ["--summary"]):
        assert main(["study", str(toml), "-o", str(out), "--csv", str(csv), "--force", "--no-progress", *extra]) == 2
        assert capsys.readouterr().err == (f"tcnet study: {csv}: names {out}, which this command reads or writes; "
                                           "refusing to replace it (choose another output file)\n")
        assert out.read_bytes() == before and link.is_symlink()
    assert len(store.list_runs(out)) == 2
