"""Digests: a zeroed block cannot pass as data.

HDF5's fletcher32 checksum sits at the end of each chunk it covers, and the fletcher32 of zeros is
zero: a block of the file overwritten with zeros, a chunk together with its checksum, reads back
as zeros without complaint (and so do chunks a full disk never let HDF5 write). So every array
dataset tcnet writes also carries a 64-bit digest of its contents (BLAKE2b, 8 bytes, read as a
little-endian unsigned integer) in an attribute, which lives in the dataset's object header under
HDF5's metadata checksum; readers compare it with what they read (docs/FORMAT.md, "Digests"):

- `digest` (uint64): of a dataset written whole (a network's arrays and data, checkpoint
  arrays, trajectories, data sets): BLAKE2b of its bytes (C order, little-endian).
- `digests` (uint64 (2,)): of a history column, which grows at every commit: entry s is the digest
  of the column's committed rows when checkpoint slot s is the committed one, so that the commit's
  phase 2 (which flips the slot) commits the digest with the rows, and a kill in phase 1 leaves the
  committed slot's digest as it was. The digest of rows is the sum (mod 2^64) of the BLAKE2b of
  each block of BLOCK rows, keyed by the block's index: a commit rehashes only the last, partly
  filled block and the new rows, whatever the length of the run.

A dataset without its attribute (files written before digests, whose datasets HDF5's checksums
alone cover) is read as it is.
"""
import hashlib

import numpy as np

from tcnet.store.errors import StoreError

BLOCK = 1024  # rows per hashed block of a history column
DIGEST = "digest"
DIGESTS = "digests"
_MASK = (1 << 64) - 1


def _bytes(a: np.ndarray) -> bytes:
    """The bytes of `a` as the digests hash them: C order, little-endian."""
    a = np.asarray(a)
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()


def array_digest(a) -> int:
    """The digest of a whole array (module docstring)."""
    return int.from_bytes(hashlib.blake2b(_bytes(a), digest_size=8).digest(), "little")


def _block(index: int, rows: np.ndarray) -> int:
    return int.from_bytes(hashlib.blake2b(_bytes(rows), digest_size=8, key=index.to_bytes(8, "little")).digest(),
                          "little")


def rows_digest(a: np.ndarray, start: int = 0) -> int:
    """The digest of the rows `a` of a history column, which begin at row `start` (a multiple of
    BLOCK): the sum of the digests of its blocks."""
    return sum(_block((start + k) // BLOCK, a[k:k + BLOCK]) for k in range(0, len(a), BLOCK)) & _MASK


def has_digest(a) -> bool:
    """Whether an array written whole gets a digest: a numeric or boolean array with elements."""
    return a.dtype.kind in "biufc" and a.ndim > 0


def stamp(ds, a) -> None:
    """Set the `digest` of the dataset `ds` to that of `a`, the contents just written to it."""
    value = np.uint64(array_digest(np.asarray(a, dtype=ds.dtype)))
    if DIGEST in ds.attrs:
        ds.attrs.modify(DIGEST, value)
    else:
        ds.attrs[DIGEST] = value


def append_rows(ds, rows: int, values, committed: int, slot: int) -> None:
    """Set `digests[slot]` of the history column `ds` to the digest of its `rows` committed rows
    followed by `values`, the rows just written after them. `committed` is the committed slot
    (-1 before the first commit), whose digest is those rows'; a column without digests yet (created
    by this commit, or written before digests existed) gets them from its committed rows as read,
    in both slots. Only the last, partly filled block of the committed rows is read back."""
    values = np.asarray(values, dtype=ds.dtype)
    start = rows - rows % BLOCK
    head = ds[start:rows]
    old = ds.attrs.get(DIGESTS)
    if old is None:
        base = rows_digest(ds[:rows]) if rows else 0
        digests = np.array([base, base], dtype=np.uint64)
    else:
        digests = np.array(old, dtype=np.uint64)
        base = int(digests[committed]) if committed >= 0 else 0
    if len(head):
        base -= rows_digest(head, start)
    digests[slot] = (base + rows_digest(np.concatenate([head, values]), start)) & _MASK
    if old is None:
        ds.attrs[DIGESTS] = digests
    else:
        ds.attrs.modify(DIGESTS, digests)


def _damaged(ds) -> StoreError:
    return StoreError(f"{ds.file.filename}: damaged file: {ds.name} cannot be read back intact (its data does not "
                      "match its digest: overwritten, e.g. zeroed); the file is corrupt (restore it from a copy)")


def _stored(ds, key: str, shape: tuple) -> np.ndarray:
    """The digest attribute `key` of `ds`, which must be unsigned 64-bit integers of `shape`."""
    value = np.asarray(ds.attrs[key])
    if value.dtype != np.uint64 or value.shape != shape:
        raise StoreError(f"{ds.file.filename}: {ds.name}: malformed file (expected attribute {key!r} to be uint64 "
                         f"of shape {shape}, found {value.dtype} of shape {value.shape})")
    return value


def verified(ds, a: np.ndarray) -> np.ndarray:
    """`a`, the whole contents just read from the dataset `ds`, once checked against its `digest`
    (StoreError naming the dataset if they differ)."""
    if DIGEST in ds.attrs and int(_stored(ds, DIGEST, ())) != array_digest(a):
        raise _damaged(ds)
    return a


def verified_rows(ds, a: np.ndarray, slot: int) -> np.ndarray:
    """`a`, the committed rows just read from the history column `ds`, committed with checkpoint
    slot `slot`, once checked against its `digests` (StoreError naming the column if they differ)."""
    if DIGESTS in ds.attrs and slot >= 0 and int(_stored(ds, DIGESTS, (2,))[slot]) != rows_digest(a):
        raise _damaged(ds)
    return a


def check_all(f) -> None:
    """Read every dataset of the open file `f` that has a `digest` and check it (`verified`)."""
    found = []
    f.visititems(lambda name, obj: found.append(obj) if DIGEST in obj.attrs and hasattr(obj, "dtype") else None)
    for ds in found:
        verified(ds, ds[()])
