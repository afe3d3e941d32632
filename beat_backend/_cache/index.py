"""Cache file naming, file-set discovery and index helpers (cache-files.md §1, §6, §8)."""

from __future__ import annotations

import glob
import hashlib
import heapq
import json
import os

from .._core.errors import CacheError
from .._core.jsonio import error_on_duplicate_key_hook
from .fileset import classify, output_paths, parse_range

# re-exported from their owner, the names' former home
from .fileset import data_filename as data_filename
from .fileset import index_filename as index_filename
from .fileset import read_checksum as read_checksum


def getAllFilenames(filename, start_index=None, end_index=None):
    """``(data_files, index_files, data_checksum_files, index_checksum_files)``.

    Files whose range lies entirely outside ``[start_index, end_index]`` are
    dropped; lists are sorted by name, then by start index.
    """
    base = os.path.splitext(filename)[0]
    candidates = output_paths(base)

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

    return classify(candidates, base)


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
