"""Files other than stores on a full disk (issue 27, item 2): a trajectory file, a SIMPL data set or
a figure that does not fit is one line and no file (or the previous file, kept), never a crash with
HDF5 tracebacks and a partial file under the final name that reads back as zeros.

The disk is a real small file system where this machine allows it (a tmpfs mounted as root, filled
up to the room a test gives), and otherwise a file size limit in the child process (RLIMIT_FSIZE,
SIGXFSZ ignored, so that writes fail with EFBIG as writes on a full device fail with ENOSPC)."""
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tcnet import store
from tcnet.plugins import Registry

PLUGIN = Path(__file__).parent / "plugins_for_tests" / "store_linear.py"
PLUGINS = Registry(files=[PLUGIN])
PAGE = 4096
SIZE = 4 * 1024 * 1024  # of the tmpfs
REASONS = {"tmpfs": "No space left on device", "RLIMIT_FSIZE": "File too large"}


class SmallDisk:
    """A directory `dir` where the `tcnet` of `run` has `room` bytes to write: free space of a
    tmpfs (`kind` "tmpfs"), else the file size limit of the child (`kind` "RLIMIT_FSIZE")."""

    def __init__(self, base: Path):
        self.dir = base / "disk"
        self.dir.mkdir()
        self.kind = "tmpfs" if os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(self.dir)], capture_output=True).returncode == 0 \
            else "RLIMIT_FSIZE"
        self.room = None

    def make_room(self, room: int) -> None:
        """Leave `room` bytes (whole pages) for what `run` writes next."""
        self.room = room
        if self.kind == "tmpfs":
            (self.dir / ".filler").unlink(missing_ok=True)
            free = shutil.disk_usage(self.dir).free
            with open(self.dir / ".filler", "wb") as fh:
                fh.write(bytes(free - room))
            assert shutil.disk_usage(self.dir).free == room

    def run(self, *argv) -> subprocess.CompletedProcess:
        def limited():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.room, self.room))

        return subprocess.run([sys.executable, "-m", "tcnet.cli", "--plugin", str(PLUGIN), *map(str, argv)],
                              capture_output=True, text=True, timeout=300,
                              preexec_fn=limited if self.kind == "RLIMIT_FSIZE" and self.room else None)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir() if p.name != ".filler")

    def close(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["umount", str(self.dir)], check=True)


@pytest.fixture
def disk(tmp_path):
    d = SmallDisk(tmp_path)
    yield d
    d.close()


@pytest.fixture
def source(tmp_path):
    """A store (outside the small disk) with the saved network 'decay': J = 0, tau = 2."""
    path = tmp_path / "runs.h5"
    Linear = PLUGINS.get("dynamics", "store_linear")
    store.save_network(path, "decay", Linear({"J": np.zeros((3, 3)), "w": np.ones(3)}, {"N": 3, "tau": 2.0}, 0))
    return path


BIG = ("--t-max", "100", "--dt", "0.01", "--n-init", "8")  # x: 10001 x 8 x 3 float64, 1.9 MB


def test_simulate_out_on_a_full_disk_is_one_line_and_no_file(disk, source):
    """Before: exit 139 (a segfault after HDF5 tracebacks) and a traj.h5 of the full size that read
    back as 100 % zeros."""
    disk.make_room(16 * PAGE)
    out = disk.dir / "traj.h5"
    child = disk.run("simulate", source, "decay", *BIG, "--out", out)
    assert child.returncode == 2, child.stderr[-2000:]
    assert child.stderr == (f"tcnet simulate: {out}: cannot write the file ({REASONS[disk.kind]}); no file was "
                            "made\n")
    assert disk.files() == []  # no file, no temporary


def test_a_replacement_that_does_not_fit_keeps_the_previous_file(disk, source):
    out = disk.dir / "traj.h5"
    disk.make_room(64 * PAGE)
    small = disk.run("simulate", source, "decay", "--t-max", "1", "--dt", "0.5", "--out", out)
    assert small.returncode == 0, small.stderr
    before = {name: (disk.dir / name).read_bytes() for name in disk.files()}
    assert sorted(before) == ["traj.h5", "traj.png"]
    child = disk.run("simulate", source, "decay", *BIG, "--out", out, "--force")
    assert child.returncode == 2 and child.stderr == (
        f"tcnet simulate: {out}: cannot write the file ({REASONS[disk.kind]}); the previous file is kept\n")
    assert {name: (disk.dir / name).read_bytes() for name in disk.files()} == before
    t, x, _ = store.read_trajectories(out)
    assert t.tolist() == [0.0, 0.5, 1.0] and x.shape == (3, 8, 3)


def test_a_figure_that_does_not_fit_is_one_line(disk, source, tmp_path):
    """The trajectory file fits, its figure does not: the trajectory file is complete, the figure
    absent, and the failure one line."""
    args = ("simulate", source, "decay", "--t-max", "1", "--dt", "0.01", "--n-init", "2")
    assert disk.run(*args, "--out", tmp_path / "probe.h5").returncode == 0  # (room not yet set: anywhere)
    traj, figure = (tmp_path / "probe.h5").stat().st_size, (tmp_path / "probe.png").stat().st_size
    assert figure > traj + 2 * PAGE  # the room below fits the one and not the other
    disk.make_room(-(-traj // PAGE) * PAGE + PAGE)
    out = disk.dir / "traj.h5"
    child = disk.run(*args, "--out", out)
    assert child.returncode == 2 and child.stderr == (
        f"tcnet simulate: {out.with_suffix('.png')}: cannot write the file ({REASONS[disk.kind]}); no file was made\n")
    assert disk.files() == ["traj.h5"]
    assert store.read_trajectories(out)[1].shape == (101, 2, 3)


def test_simpl_generate_on_a_full_disk_is_one_line_and_no_file(disk):
    """Before: a segfault after HDF5 tracebacks, and a data set whose `time` read back as zeros."""
    disk.make_room(16 * PAGE)
    out = disk.dir / "bench.h5"
    child = disk.run("simpl", "generate", out, "--cells", "40", "--duration", "600")
    assert child.returncode == 2, child.stderr[-2000:]
    assert child.stderr == f"tcnet simpl: {out}: cannot write the file ({REASONS[disk.kind]}); no file was made\n"
    assert disk.files() == []


def test_on_a_disk_with_room_the_files_are_whole(disk, source):
    """The premise of the tests above: with room, the same commands write files that read back."""
    from tcnet_plugins.simpl import data as simdata

    disk.make_room(800 * PAGE)  # 3.2 MB
    assert disk.run("simulate", source, "decay", *BIG, "--out", disk.dir / "traj.h5").returncode == 0
    t, x, _ = store.read_trajectories(disk.dir / "traj.h5")
    assert x.shape == (10001, 8, 3) and np.all(x[-1] != 0)
    (disk.dir / "traj.h5").unlink()
    (disk.dir / "traj.png").unlink()
    assert disk.run("simpl", "generate", disk.dir / "bench.h5", "--cells", "40", "--duration", "600").returncode == 0
    assert np.all(np.diff(simdata.load(disk.dir / "bench.h5")["time"]) > 0)


def test_a_new_store_on_a_full_disk_is_one_line_and_no_file(disk):
    """The store's own first bytes are made like any new file: no room, no store, one line."""
    disk.make_room(PAGE)  # the writer lock's description, and no more
    out = disk.dir / "runs.h5"
    child = disk.run("train", "-N", "6", "-F", "0.5", "-A", "3", "-L", "2", "-f", out, "--no-progress")
    assert child.returncode == 2, child.stderr[-2000:]
    assert child.stderr.endswith(f"{out}: cannot create the file ({REASONS[disk.kind]})\n") and child.stderr.count("\n") == 1
    assert disk.files() == []
