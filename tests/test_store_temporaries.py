"""Files are complete or absent: tcnet.store.new_file writes under a temporary name
`.NAME.creating-PID.SUFFIX` and renames it into place. A process killed while writing leaves only
that temporary, which the next write of the same file removes (its process is dead); figures go
through the same path (tcnet.plot.save_figure), so a kill or an error mid-write leaves no partial
figure."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tcnet import store
from tcnet.plot import plt, save_figure

PNG = b"\x89PNG\r\n\x1a\n"


def _killed_while_writing(code: str) -> int:
    """Run `code` in a child process that SIGKILLs itself where the code says `die()`; its pid."""
    with subprocess.Popen([sys.executable, "-c", "import os, signal\n"
                           "def die():\n    os.kill(os.getpid(), signal.SIGKILL)\n" + textwrap.dedent(code)],
                          stderr=subprocess.PIPE, text=True) as child:
        _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err
    return child.pid


def test_a_killed_writer_leaves_a_temporary_the_next_write_removes(tmp_path):
    path = tmp_path / "table.csv"
    pid = _killed_while_writing(f"""
        from tcnet.store import new_file
        with new_file({str(path)!r}) as partial:
            partial.write_bytes(b"half of a table")
            die()
    """)
    stale = tmp_path / f".table.csv.creating-{pid}.csv"
    assert not path.exists()
    assert stale.read_bytes() == b"half of a table"
    # a temporary of a live process (another writer, in principle) is left alone
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        busy = tmp_path / f".table.csv.creating-{alive.pid}.csv"
        busy.write_bytes(b"in progress")
        other = tmp_path / f".other.csv.creating-{pid}.csv"  # another target's: not ours to remove
        other.write_bytes(b"x")
        with store.new_file(path) as partial:
            partial.write_text("a,b\n1,2\n")
        alive.kill()
    assert path.read_text() == "a,b\n1,2\n"
    assert not stale.exists() and busy.exists() and other.exists()


def test_a_figure_is_complete_or_absent(tmp_path):
    path = tmp_path / "fig.png"

    def broken(fname, **kw):  # writes part of the file, then fails like a full disk
        with open(fname, "wb") as f:
            f.write(PNG + b"part")
        raise OSError(28, "No space left on device")

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig = broken
    with pytest.raises(store.DiskFullError) as err:
        save_figure(fig, path, force=True)
    assert str(err.value) == f"{path}: cannot write the file (No space left on device); no file was made"
    assert os.listdir(tmp_path) == []  # no figure, no temporary
    assert not plt.fignum_exists(fig.number)  # closed all the same

    save_figure(plt.subplots()[0], path, force=False)
    before = path.read_bytes()
    assert before.startswith(PNG) and len(before) > 100
    with pytest.raises(store.StoreError, match="exists already"):
        save_figure(plt.subplots()[0], path, force=False)
    assert path.read_bytes() == before

    # a kill in the middle of writing a replacement leaves the old figure, and a temporary that
    # the next save removes
    pid = _killed_while_writing(f"""
        from matplotlib.figure import Figure
        from tcnet.plot import plt, save_figure
        def dying(self, fname, **kw):
            open(fname, "wb").write(b"\\x89PNG half")
            die()
        Figure.savefig = dying
        save_figure(plt.subplots()[0], {str(path)!r}, force=True)
    """)
    assert path.read_bytes() == before
    assert (tmp_path / f".fig.png.creating-{pid}.png").exists()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, path, force=True)
    assert sorted(os.listdir(tmp_path)) == ["fig.png"]
    assert path.read_bytes().startswith(PNG) and path.read_bytes() != before
