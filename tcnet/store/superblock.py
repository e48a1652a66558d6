"""The end of allocation that a writer killed in the middle of an HDF5 flush leaves wrong, and its
repair (docs/FORMAT.md, "Writers, flushing and crash safety").

HDF5 keeps in the file's superblock the address up to which the file is allocated (the EOA), and
writes the superblock after the other metadata when it flushes. New objects are allocated at the
EOA, so a writer killed between the two leaves blocks on disk that lie past the stored EOA, and
metadata that points to them: HDF5 then refuses the file ('addr overflow', 'len not positive
after adjustment for EOA'). The other way round, a superblock written before the blocks HDF5
allocated ahead of use leaves an EOA a little past the end of the file ('truncated file'). In both
cases what was written is whole (each block's checksum says so); only the EOA is stale. The repair is the one `h5clear
--increment=0` makes: the EOA becomes max(EOA, EOF) and the file is as long as its EOA. Blocks that
were never written then read as what they are (a failed checksum), not as a stale EOA.

Writers repair the file in place before they open it (`repair`); readers never write, and read a
stale file through `RepairedView`, which shows the repaired superblock over the file's own bytes.
Superblock versions 0 (format 1 stores, no checksum) and 2 (every later store) are known; any
other file is left as it is.
"""
import io
import os
import struct
from dataclasses import dataclass

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# version -> (offset of the base address, offset of the EOA, bytes under the checksum or None)
_LAYOUT = {0: (24, 40, None), 2: (12, 28, 44)}
UNWRITTEN_TAIL = 4096
"""The most bytes a stale EOA may lie past the end of the file and be repaired: what HDF5 allocates
ahead of use (its metadata and small-data blocks, 2 KiB each by default) and writes last. A file
missing more than that lost data it held (a cut copy), and is refused as truncated."""


# lookup3's mixing rounds as (i, j, k, r): v[i] = (v[i] - v[j]) ^ rot(v[j], r); v[j] += v[k], with
# v = [a, b, c]; and its final rounds as (i, j, r): v[i] = (v[i] ^ v[j]) - rot(v[j], r)
_MIX = ((0, 2, 1, 4), (1, 0, 2, 6), (2, 1, 0, 8), (0, 2, 1, 16), (1, 0, 2, 19), (2, 1, 0, 4))
_FINAL = ((2, 1, 14), (0, 2, 11), (1, 0, 25), (2, 1, 16), (0, 2, 4), (1, 0, 14), (2, 1, 24))
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 `hashlittle`, the checksum of HDF5's metadata (H5_checksum_lookup3):
    12-byte blocks added into (a, b, c) and mixed; the last, zero-padded block finally mixed."""
    v = [(0xDEADBEEF + len(data) + initval) & _MASK] * 3
    if not data:
        return v[2]
    last = (len(data) - 1) // 12 * 12  # the last block, 1 to 12 bytes
    padded = data[:last] + data[last:].ljust(12, b"\0")
    for start in range(0, last + 12, 12):
        for m in range(3):
            v[m] = (v[m] + int.from_bytes(padded[start + 4 * m:start + 4 * m + 4], "little")) & _MASK
        for i, j, *rest in (_MIX if start < last else _FINAL):
            if start < last:
                k, r = rest
                v[i] = ((v[i] - v[j]) & _MASK) ^ _rot(v[j], r)
                v[j] = (v[j] + v[k]) & _MASK
            else:
                v[i] = ((v[i] ^ v[j]) - _rot(v[j], rest[0])) & _MASK
    return v[2]


@dataclass(frozen=True)
class Superblock:
    """The superblock at the start of a file: its bytes and where its EOA is."""
    head: bytes  # the superblock's bytes up to and including its checksum (version 2) or EOA (0)
    version: int
    eoa: int  # absolute: base address + stored EOA
    eof: int

    @property
    def repaired_eoa(self) -> int | None:
        """The absolute EOA the file should have, or None when it has it already or is truncated
        (more than UNWRITTEN_TAIL short of its EOA)."""
        if self.eoa == self.eof or self.eoa > self.eof + UNWRITTEN_TAIL:
            return None
        return max(self.eoa, self.eof)

    def with_eoa(self, eoa: int) -> bytes:
        """The superblock's bytes with absolute EOA `eoa` (and, for version 2, its new checksum)."""
        base_at, eoa_at, checked = _LAYOUT[self.version]
        base = struct.unpack_from("<Q", self.head, base_at)[0]
        head = bytearray(self.head)
        struct.pack_into("<Q", head, eoa_at, eoa - base)
        if checked is not None:
            struct.pack_into("<I", head, checked, lookup3(bytes(head[:checked])))
        return bytes(head)


def read_superblock(head: bytes, eof: int) -> Superblock | None:
    """The superblock whose first bytes are `head` (48 or more), of a file `eof` bytes long, if it is
    one this module knows (at offset 0, 8-byte addresses, checksum intact), else None."""
    if len(head) < 48 or head[:8] != _SIGNATURE or head[8] not in _LAYOUT:
        return None
    version = head[8]
    sizes = head[13:15] if version == 0 else head[9:11]
    if sizes != b"\x08\x08":
        return None
    base_at, eoa_at, checked = _LAYOUT[version]
    head = head[:checked + 4 if checked is not None else eoa_at + 8]
    if checked is not None and struct.unpack_from("<I", head, checked)[0] != lookup3(head[:checked]):
        return None  # a damaged superblock: HDF5 says so itself
    base, eoa = struct.unpack_from("<Q", head, base_at)[0], struct.unpack_from("<Q", head, eoa_at)[0]
    if base != 0 or eoa >= 2 ** 62:  # a user block, or an undefined address: not ours to touch
        return None
    return Superblock(head, version, eoa, eof)


def superblock_of(fd: int) -> Superblock | None:
    """`read_superblock` of the open file `fd`."""
    return read_superblock(os.pread(fd, 48, 0), os.fstat(fd).st_size)


def repair(fd: int) -> bool:
    """Give the file open for writing as `fd` its repaired EOA (module docstring): extend the file
    to a stale EOA just past its end, or write the end of the file into a superblock whose EOA falls
    short of it (one write of the superblock's few bytes). The caller holds the file exclusively
    (tcnet's writer lock and HDF5's lock). Whether anything was repaired."""
    sb = superblock_of(fd)
    if sb is None or sb.repaired_eoa is None:
        return False
    if sb.eoa > sb.eof:
        os.ftruncate(fd, sb.eoa)
    else:
        os.pwrite(fd, sb.with_eoa(sb.eof), 0)
    os.fsync(fd)
    return True


class RepairedView(io.RawIOBase):
    """The file open as `fd`, read-only, as `repair` would leave it: the repaired superblock over
    the file's own bytes, zeros up to a stale EOA past the end. For h5py.File(view, "r"); the
    caller keeps `fd` open (and HDF5's shared lock on it) while the view is in use."""

    def __init__(self, fd: int, sb: Superblock):
        self._fd, self._head = fd, sb.with_eoa(sb.repaired_eoa)
        self._size, self._pos = sb.repaired_eoa, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence] + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self._size - self._pos))
        data = bytearray(os.pread(self._fd, n, self._pos).ljust(n, b"\0"))
        overlap = self._head[self._pos:self._pos + n]  # the superblock's bytes within the read
        data[:len(overlap)] = overlap
        buffer[:n] = data
        self._pos += n
        return n
