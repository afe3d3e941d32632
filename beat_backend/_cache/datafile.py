"""Parsing a ``.data`` file: its header and record headers, and hashing (cache-files.md §2, §4).

Shared by the reader (:mod:`.source`) and ``cache verify`` (:mod:`.maintenance`).
Both work on a buffer (usually a memory map) holding the whole file.
"""

from __future__ import annotations

import gc
import hashlib
import mmap
import os

from .._core.errors import CacheError
from .base import FileInfos

_new_tuple = tuple.__new__  # a FileInfos without the Python-level __new__


def file_sha256(path: str) -> str:
    """SHA-256 of a file, streamed through a memory map."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                sha.update(mm)
    return sha.hexdigest()


def read_header(buf, path: str) -> tuple[str, str, int]:
    """``(encoding, dataformat name, offset of the first record)`` of a data file's buffer."""
    first = buf.find(b"\n")
    second = buf.find(b"\n", first + 1) if first >= 0 else -1
    if first < 0 or second < 0:
        raise CacheError(f"data file `{path}' has a truncated header ({len(buf)} bytes)")
    try:
        encoding = bytes(buf[:first]).decode("ascii")
        name = bytes(buf[first + 1 : second]).decode("utf-8")
    except UnicodeDecodeError:
        raise CacheError(f"data file `{path}' has an invalid header") from None
    return encoding, name, second + 1


def scan_records(
    buf,
    offset: int,
    path: str,
    file_index: int,
    start_index: int | None,
    end_index: int | None,
    out: list,
) -> None:
    """Append FileInfos of every record of ``buf`` inside the requested range.

    The cyclic garbage collector is paused meanwhile: the tuples made here
    hold no references, and collections triggered by the growing list of
    100 000s of them would cost more than the scan itself.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        _scan_records(buf, offset, path, file_index, start_index, end_index, out)
    finally:
        if paused:
            gc.enable()


def _scan_records(buf, offset, path, file_index, start_index, end_index, out):
    size_total = len(buf)
    find = buf.find
    append = out.append
    whole = start_index is None and end_index is None
    while offset < size_total:
        nl = find(b"\n", offset)
        if nl < 0:
            raise CacheError(f"data file `{path}' is truncated: record header at {offset}")
        try:
            s, e, n = buf[offset:nl].split(b" ")
            s = int(s)
            e = int(e)
            n = int(n)
        except ValueError:
            raise CacheError(
                f"data file `{path}' has an invalid record header at offset {offset}: "
                f"{bytes(buf[offset : min(nl, offset + 40)])!r}"
            ) from None
        payload = nl + 1
        if n < 1 or payload + n > size_total:
            raise CacheError(
                f"data file `{path}' is truncated or its record header lies: record "
                f"{s}..{e} announces {n} bytes at offset {payload}, file holds {size_total}"
            )
        if whole or (
            (start_index is None or s >= start_index) and (end_index is None or e <= end_index)
        ):
            append(_new_tuple(FileInfos, (file_index, s, e, payload, n)))
        offset = payload + n
