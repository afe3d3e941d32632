"""Small helpers for the cache tests: a scratch prefix and file-set writers."""

from __future__ import annotations

import hashlib
import json
import os

from beat_backend.dataformat import DataFormat

#: the dataformats of the scratch prefix
FORMATS = {
    "user/single_integer/1": {"value": "int32"},
    "user/text/1": {"text": "string"},
    "user/mixed/1": {
        "value": "int32",
        "text": "string",
        "ratio": "float64",
        "flag": "bool",
        "vec": [0, "float64"],
        "grid": [2, 0, "int16"],
        "names": [0, "string"],
    },
}

#: the worked example of cache-files.md §2-§4
EXAMPLE_DATA = b"binary\nuser/single_integer/1\n0 1 5\n\x07\x00\x00\x00\n2 3 5\n\x08\x00\x00\x00\n"
EXAMPLE_INDEX = b"0 1\n2 3\n"
EXAMPLE_DATA_CHECKSUM = "0db10f4c024ac0f690544b67a57623362da1a1d2a1b0cb0c57d30e7aeb55cccf"
EXAMPLE_INDEX_CHECKSUM = "95042aecd776dc472f0303e647ba8edb1c9659d7503247a8414a280d7c63516b"

NONE3 = (None, None, None)


def make_prefix(root) -> str:
    """Write the scratch prefix under ``root`` and return its path."""
    for name, declaration in FORMATS.items():
        path = os.path.join(str(root), "dataformats", *name.split("/")) + ".json"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(declaration, f, indent=4)
    return str(root)


def load_format(prefix, name="user/single_integer/1") -> DataFormat:
    df = DataFormat(str(prefix), name, dataformat_cache={})
    assert df.valid, df.errors
    return df


def write_file(path, content: bytes) -> None:
    """(Re)write ``path`` even if it is read-only (finished cache files are)."""
    path = str(path)
    if os.path.exists(path):
        os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(content)


def write_raw_set(base, start, end, data: bytes, index: bytes | None = None) -> str:
    """Write a file set by hand (``base`` without extension); checksums match the bytes.

    ``index`` is written as given (empty when omitted).
    """
    data_path = f"{base}.{start}.{end}.data"
    index_path = f"{base}.{start}.{end}.index"
    os.makedirs(os.path.dirname(data_path), exist_ok=True)
    write_file(data_path, data)
    write_file(index_path, index or b"")
    write_file(data_path + ".checksum", hashlib.sha256(data).hexdigest().encode())
    write_file(index_path + ".checksum", hashlib.sha256(index or b"").hexdigest().encode())
    return data_path


def rechecksum(data_path) -> None:
    """Make the ``.checksum`` of ``data_path`` match its current content."""
    with open(data_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    write_file(str(data_path) + ".checksum", digest.encode())
