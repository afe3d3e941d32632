"""Cache file naming, file-set discovery and index helpers (cache-files.md §1, §6, §8)."""

from __future__ import annotations

import glob
import hashlib
import heapq
import json
import os
import re

from .._core.errors import CacheError
from .._core.jsonio import error_on_duplicate_key_hook

_RANGE = re.compile(r"^.*\.(\d+)\.(\d+)\.(data|index)(\.checksum)?$")


def data_filename(filename: str, start_index: int, end_index: int) -> str:
    """``dir/base.ext`` → ``dir/base.<s>.<e>.ext`` (the real name a sink writes)."""
    base, ext = os.path.splitext(filename)
    return f"{base}.{start_index}.{end_index}{ext}"


def index_filename(data_file: str) -> str:
    """The ``.index`` companion of a data file (only the final extension changes)."""
    if data_file.endswith(".data"):
        return data_file[: -len(".data")] + ".index"
    return data_file + ".index"


def parse_range(path: str) -> tuple[int, int] | None:
    """``(start, end)`` parsed from a cache file name, ``None`` if it has none."""
    m = _RANGE.match(path)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2))


def getAllFilenames(filename, start_index=None, end_index=None):
    """``(data_files, index_files, data_checksum_files, index_checksum_files)``.

    Files whose range lies entirely outside ``[start_index, end_index]`` are
    dropped; lists are sorted by name, then by start index.
    """
    base = os.path.splitext(filename)[0]
    candidates = sorted(glob.glob(glob.escape(base) + ".*"))

    def start_of(path):
        r = parse_range(path)
        return r[0] if r else 0

    candidates.sort(key=start_of)
    if start_index is not None or end_index is not None:
        kept = []
        for path in candidates:
            r = parse_range(path)
            if r is not None:
                s, e = r
                if start_index is not None and e < start_index:
                    continue
                if end_index is not None and s > end_index:
                    continue
            kept.append(path)
        candidates = kept

    prefix = re.escape(base)
    patterns = [
        re.compile(prefix + r"\.\d+\.\d+\.data$"),
        re.compile(prefix + r"\.\d+\.\d+\.index$"),
        re.compile(prefix + r"\.\d+\.\d+\.data\.checksum$"),
        re.compile(prefix + r"\.\d+\.\d+\.index\.checksum$"),
    ]
    return tuple([p for p in candidates if pat.match(p)] for pat in patterns)


def read_checksum(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read().strip()


def load_data_index(cache_root, hash_path):
    """Sorted unit starts of a cached output plus ``largest end + 1``."""
    name = os.path.join(cache_root, hash_path)
    base = os.path.splitext(name)[0]
    pattern = base + "*.index"
    # the message names the plain pattern; the glob escapes ``[``, ``*``, ``?`` of the path
    index_files = sorted(glob.glob(glob.escape(base) + "*.index"))
    if not index_files:
        raise RuntimeError(f"No index file matching the pattern `{pattern}' found.")
    starts = []
    end = None
    for index_file in index_files:
        with open(index_file, "rb") as f:
            data = f.read()
        expected = read_checksum(index_file + ".checksum")
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise RuntimeError(
                f"index file `{index_file}' has a checksum ({actual}) that differs from "
                f"expected one ({expected})"
            )
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                s, e = line.split()
                s, e = int(s), int(e)
            except ValueError:
                raise CacheError(
                    f"index file `{index_file}' holds an invalid line: {line[:40]!r}"
                ) from None
            starts.append(s)
            end = e if end is None else max(end, e)
    if end is None:  # only empty index files: no unit at all
        return []
    return sorted(starts) + [end + 1]


def load_data_index_db(cache_root, hash_path):
    """Positions where each key of a database index changes value (one list per key)."""
    path = os.path.join(cache_root, hash_path)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        objs = json.loads(f.read().decode("utf-8"), object_pairs_hook=error_on_duplicate_key_hook)
    if not objs:
        return []
    keys = list(objs[0].keys())
    result = []
    for key in keys:
        positions = [0]
        previous = objs[0].get(key)
        for i, obj in enumerate(objs[1:], start=1):
            value = obj.get(key)
            if value != previous:
                positions.append(i)
                previous = value
        positions.append(len(objs))
        result.append(positions)
    return result


def mixDataIndices(list_of_data_indices):
    """Finest common segmentation of several unit lists (a merge of end points)."""
    lists = list(list_of_data_indices)
    if not lists or any(len(lst) == 0 for lst in lists):
        return []
    start = max(lst[0][0] for lst in lists)
    end = min(lst[-1][1] for lst in lists)
    result = []
    current = start
    previous = None
    for e in heapq.merge(*[[u[1] for u in lst] for lst in lists]):
        if e == previous:
            continue
        previous = e
        if e < start:
            continue
        if e > end:
            break
        result.append((current, e))
        current = e + 1
    return result


def foundSplitRanges(lst, n_split):
    """Up to ``n_split`` contiguous inclusive ranges cutting only at common positions."""
    if not lst or any(len(x) == 0 for x in lst):
        return []
    common = set(lst[0])
    for x in lst[1:]:
        common &= set(x)
    ci = sorted(common)
    if not ci:
        return []
    avg = ci[-1] / n_split
    s = 0
    c = 0
    result = []
    for i in range(1, len(ci)):
        if ci[i] >= (c + 1) * avg and c < n_split - 1:
            result.append((ci[s], ci[i] - 1))
            s = i
            c += 1
        elif i == len(ci) - 1:
            result.append((ci[s], ci[i] - 1))
    return result
