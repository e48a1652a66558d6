"""A writer killed inside an HDF5 flush leaves the superblock's end of allocation (EOA) stale: HDF5
writes the superblock after the metadata that points to the new blocks. tcnet reads such a file
as its repair leaves it, without writing to it, and its next writer repairs it in place
(tcnet.store.superblock). The kill states are built exactly: the bytes after a write with the
superblock from before it (written last, so not yet written), and an EOA past the file's end."""
import ctypes
import os
import struct

import h5py
import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.plugins import Registry
from tcnet.store import RunWriter, superblock
from tcnet.store.hdf5 import reading
from test_store import PLUGIN_FILES, spec

PLUGINS = Registry(files=PLUGIN_FILES)


def run(path, seed):
    tcnet.run(spec({"name": "adam", "steps": 5}, seed=seed), recorders=[RunWriter(path)], progress=False,
              plugins=PLUGINS)


def contents(f):
    """Every attribute and dataset of the open file `f`: {name: value}."""
    out = {}

    def read(name, obj):
        out.update({f"{name}@{k}": v for k, v in obj.attrs.items()})
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    f.visititems(read)
    return out


def plain_read(path):
    """What h5py itself reads of the file."""
    with h5py.File(path, "r") as f:
        return contents(f)


def tcnet_read(path):
    """What tcnet reads of the file."""
    with reading(path) as f:
        return contents(f)


def superblock_of(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return superblock.superblock_of(fd)
    finally:
        os.close(fd)


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_lookup3_is_hdf5s_checksum(tmp_path):
    # the published test values of lookup3.c, and the checksums HDF5 wrote into superblocks
    assert superblock.lookup3(b"") == 0xDEADBEEF
    assert superblock.lookup3(b"Four score and seven years ago") == 0x17770551
    assert superblock.lookup3(b"Four score and seven years ago", 1) == 0xCD628161
    path = tmp_path / "runs.h5"
    for seed in range(3):
        run(path, seed)
        head = path.read_bytes()[:48]
        assert struct.unpack("<I", head[44:48])[0] == superblock.lookup3(head[:44])


@pytest.fixture
def killed_before_the_superblock(tmp_path):
    """A store whose second run was written but whose superblock is the one before that write;
    and what the complete write reads as."""
    path = tmp_path / "runs.h5"
    run(path, 1)
    before = path.read_bytes()
    run(path, 2)
    after = path.read_bytes()
    complete = plain_read(path)
    path.write_bytes(before[:48] + after[48:])
    return path, complete


def test_reading_a_stale_eoa_changes_nothing(killed_before_the_superblock):
    path, complete = killed_before_the_superblock
    with pytest.raises((OSError, RuntimeError, KeyError)):  # what HDF5 itself makes of it
        plain_read(path)
    on_disk = path.read_bytes()
    assert same(tcnet_read(path), complete)
    assert [store.read_run(path, r, plugins=PLUGINS).status for r in store.list_runs(path)] == ["finished"] * 2
    assert path.read_bytes() == on_disk


def test_the_next_writer_repairs_a_stale_eoa(killed_before_the_superblock):
    path, complete = killed_before_the_superblock
    run(path, 3)
    assert superblock_of(path).repaired_eoa is None
    assert store.list_runs(path) == ["run-0001", "run-0002", "run-0003"]
    read = plain_read(path)
    assert same({k: v for k, v in read.items() if not k.startswith("runs/run-0003")}, complete)


def test_an_eoa_past_the_end(tmp_path):
    path = tmp_path / "runs.h5"
    run(path, 1)
    complete = plain_read(path)
    fd_sb = superblock_of(path)
    path.write_bytes(fd_sb.with_eoa(fd_sb.eof + 2048) + path.read_bytes()[48:])
    with pytest.raises(OSError, match="truncated file"):
        plain_read(path)
    assert same(tcnet_read(path), complete)
    run(path, 2)
    assert path.stat().st_size >= fd_sb.eof + 2048
    assert store.list_runs(path) == ["run-0001", "run-0002"]
    plain_read(path)


def test_unknown_superblocks_are_left_alone(tmp_path):
    path = tmp_path / "runs.h5"
    run(path, 1)
    head = bytearray(path.read_bytes()[:48])
    head[44] ^= 1  # its checksum fails: HDF5 reports it, nothing is repaired
    assert superblock.read_superblock(bytes(head), 10 ** 6) is None
    head[8] = 3  # a version this module does not know
    assert superblock.read_superblock(bytes(head), 10 ** 6) is None


class GroupInfo(ctypes.Structure):
    _fields_ = [("storage_type", ctypes.c_int), ("nlinks", ctypes.c_uint64), ("max_corder", ctypes.c_int64),
                ("mounted", ctypes.c_bool)]


def test_the_runs_index_is_dense_from_its_first_run(tmp_path):
    """The ninth run does not move /runs into a new heap (store.hdf5.index_group): asked of the
    HDF5 library h5py runs on (H5Gget_info; 2 is H5G_STORAGE_TYPE_DENSE)."""
    get_info = ctypes.CDLL(h5py.h5g.__file__).H5Gget_info
    get_info.argtypes = [ctypes.c_int64, ctypes.POINTER(GroupInfo)]
    path = tmp_path / "runs.h5"
    run(path, 1)
    store.save_network(path, "net", PLUGINS.get("dynamics", "store_linear").create(N=3))
    with h5py.File(path, "r") as f:
        for name in ("runs", "networks"):
            info = GroupInfo()
            assert get_info(f[name].id.id, ctypes.byref(info)) >= 0
            assert (info.storage_type, info.nlinks) == (2, 1), name
