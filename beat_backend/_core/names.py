"""Asset names, hashed paths and paths confined to a root folder."""

from __future__ import annotations

import hashlib
import os
import re

from .errors import AssetNameError

_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")


def check_asset_name(kind: str, name: str, nb_slashes: int) -> list[str]:
    """Validate an asset ``name`` of ``kind``; return its parts.

    The reference checks only the number of ``/``; we also refuse names that
    could escape a prefix (``..``, empty parts, absolute paths, backslashes,
    odd characters). Raises :class:`AssetNameError` (a ``RuntimeError``)
    ``invalid <kind> name: `<name>'``.
    """
    if not isinstance(name, str) or name.count("/") != nb_slashes:
        raise AssetNameError(f"invalid {kind} name: `{name}'")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _SEGMENT.fullmatch(part):
            raise AssetNameError(f"invalid {kind} name: `{name}'")
    return parts


def sha256_hex(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def to_path(hash: str, suffix: str = ".data") -> str:
    """``h[0:2]/h[2:4]/h[4:6]/h[6:] + suffix`` joined with the OS separator."""
    return os.path.join(hash[0:2], hash[2:4], hash[4:6], hash[6:]) + suffix


def to_user_path(username: str) -> str:
    """``h[0:2]/h[2:4]/<username>`` with ``h = sha256(username)``."""
    h = sha256_hex(username)
    return os.path.join(h[0:2], h[2:4], username)


def confined_path(root: str, relative: str, what: str = "path") -> str:
    """Join ``relative`` under ``root``, refusing absolute paths and ``..``.

    Raises :class:`AssetNameError` naming ``what`` and the offending value
    before any file is opened.
    """
    if not isinstance(relative, str) or not relative:
        raise AssetNameError(f"invalid {what}: `{relative}' (must be a non-empty relative path)")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise AssetNameError(f"invalid {what}: `{relative}' (absolute paths are refused)")
    parts = relative.replace("\\", "/").split("/")
    if ".." in parts:
        raise AssetNameError(f"invalid {what}: `{relative}' (`..' would escape the root)")
    return os.path.join(root, relative)
