"""Every hash BEAT computes (prefix-and-hashing.md §3, toolchains §5).

Pure functions over strings, dicts and files; SHA-256 as 64 lowercase hex.
"""

from __future__ import annotations

import copy
import hashlib
import mmap
import os
from typing import Any

from .jsonio import canonical_dumps, loads_ordered
from .names import sha256_hex, to_path, to_user_path

__all__ = [
    "_compact",
    "_sha256",
    "_stringify",
    "hash",
    "hashAnalyzer",
    "hashBlockOutput",
    "hashDataset",
    "hashFileContents",
    "hashJSON",
    "hashJSONFile",
    "hashJSONStr",
    "toPath",
    "toUserPath",
]

toPath = to_path
toUserPath = to_user_path


def _sha256(s: str | bytes) -> str:
    """SHA-256 hex of ``s`` (a ``str`` is hashed as UTF-8)."""
    return sha256_hex(s)


def _compact(text: str) -> str:
    """``text`` with every space and every newline removed."""
    return text.replace(" ", "").replace("\n", "")


def _stringify(dictionary: dict) -> str:
    """``{"k1":<str(v1)>,"k2":<str(v2)>}`` with sorted keys, values unquoted."""
    names = sorted(dictionary.keys())
    return "{" + ",".join(f'"{k}":{dictionary[k]}' for k in names) + "}"


def hash(dictionary_or_string: dict | str | bytes) -> str:
    """Hash a string (UTF-8) or a dict (through :func:`_stringify`)."""
    if isinstance(dictionary_or_string, dict):
        return _sha256(_stringify(dictionary_or_string))
    return _sha256(dictionary_or_string)


def hashJSON(contents: Any, description: str | None) -> str:
    """Hash the canonical JSON of ``contents`` without its ``description`` key."""
    if isinstance(contents, dict) and description in contents:
        contents = copy.copy(contents)
        del contents[description]
    return _sha256(canonical_dumps(contents))


def hashJSONStr(contents: str, description: str | None) -> str:
    """Like :func:`hashJSONFile` on a string; falls back to ``hash(text)``."""
    try:
        return hashJSON(loads_ordered(contents), description)
    except (ValueError, UnicodeDecodeError):
        return hash(contents)


def hashJSONFile(path: str, description: str | None) -> str:
    """Hash a JSON file's canonical form; not JSON → the raw file hash."""
    try:
        with open(path, "rb") as f:
            data = loads_ordered(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return hashFileContents(path)
    return hashJSON(data, description)


_CHUNK = 1 << 20


def hashFileContents(path: str) -> str:
    """SHA-256 of the raw bytes of a file (memory-mapped when large)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size >= 4 * _CHUNK:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                sha.update(mm)
        else:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                sha.update(chunk)
    return sha.hexdigest()


def hashDataset(database_name: str, protocol_name: str, set_name: str) -> str:
    """Hash of ``{"database":"<db>","protocol":"<p>","set":"<s>"}`` (verbatim)."""
    return hash(
        '{"database":"%s","protocol":"%s","set":"%s"}' % (database_name, protocol_name, set_name)
    )


def hashBlockOutput(
    block_name: str,
    algorithm_name: str,
    algorithm_hash: str,
    parameters: dict,
    environment: dict,
    input_hashes: dict,
    output_name: str,
) -> str:
    """Platform hash of a block output (block and algorithm names are ignored)."""
    text = '{"algorithm":"%s","parameters":%s,"environment":%s,"inputs":%s,"output":"%s"}' % (
        algorithm_hash,
        _stringify(parameters),
        _stringify(environment),
        _stringify(input_hashes),
        output_name,
    )
    return hash(text)


def hashAnalyzer(
    analyzer_name: str,
    algorithm_name: str,
    algorithm_hash: str,
    parameters: dict,
    environment: dict,
    input_hashes: dict,
) -> str:
    """Platform hash of an analyzer result (the algorithm *name* is included)."""
    text = (
        '{"algorithm_name":"%s","algorithm":"%s","parameters":%s,"environment":%s,"inputs":%s}'
        % (
            algorithm_name,
            algorithm_hash,
            _stringify(parameters),
            _stringify(environment),
            _stringify(input_hashes),
        )
    )
    return hash(text)
