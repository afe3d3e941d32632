"""Cache maintenance: verify every file set, collect the garbage of dead writers.

Pure library functions behind ``beat-backend cache verify`` / ``cache gc``:
they never print; progress goes through an optional callback
``progress(done, total, path)``.

* :func:`verify_cache` re-checks, for every output of the cache (the file sets
  ``<P>.<s>.<e>.{data,index}[.checksum]`` sharing a base ``P``), both
  checksums of each set, that every record of the data file can be located
  (header, record headers within the file), that the index lists exactly the
  records of the data file, and that split sets are contiguous. Each output is
  ``ok``, ``corrupt`` (a file disagrees with its checksum or its companion) or
  ``incomplete`` (a file of a set is missing: a crashed or running writer).
  Database index files (``*.db``) are ``ok`` when they hold a JSON array and
  their fingerprint sidecar (``*.db.fingerprint``, ours), if any, is one;
  a malformed sidecar is ``corrupt``, an orphan one (its index is gone)
  ``incomplete``.
* :func:`collect_garbage` removes hidden temporaries
  (``.<final>.<pid>.<token>.tmp``) whose writer is gone — the pid is not a
  live process of this machine (zombies and reused pids count as gone) *and*
  the file is not locked (a sink ``flock``-s its temporaries) — stale
  publication locks, orphan fingerprint sidecars (their index file is gone)
  and empty folders.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import mmap
import os
import time
from collections.abc import Callable

from .._assets.database import IndexFingerprint
from .._core.errors import CacheError
from .datafile import file_sha256, read_header, scan_records
from .fileset import (
    INDEX_DB,
    OutputFiles,
    fingerprinted_index,
    index_filename,
    is_lock_name,
    parse_range,
    parse_set_file,
    read_checksum,
    temporary_pid,
)

Progress = Callable[[int, int, str], None]

OK, CORRUPT, INCOMPLETE = "ok", "corrupt", "incomplete"


def _no_progress(done: int, total: int, path: str) -> None:
    return None


# -- verify -----------------------------------------------------------------------------


@dataclasses.dataclass
class OutputStatus:
    """The verdict on one output (or database index file) of the cache."""

    path: str  # relative to the cache root: ``xx/xx/xx/<hash>`` or ``….db``
    status: str  # ``ok``, ``corrupt`` or ``incomplete``
    problems: list[str] = dataclasses.field(default_factory=list)
    files: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class VerifyReport:
    """What :func:`verify_cache` found."""

    root: str
    outputs: list[OutputStatus]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outputs if o.status == status)

    @property
    def ok(self) -> bool:
        return all(o.status == OK for o in self.outputs)

    def to_dict(self) -> dict:
        return {
            "cache": self.root,
            "ok": self.count(OK),
            "corrupt": self.count(CORRUPT),
            "incomplete": self.count(INCOMPLETE),
            "outputs": [o.to_dict() for o in self.outputs],
        }


def _walk_files(root: str):
    """Relative paths of the non-hidden files under ``root`` (hidden folders skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def find_outputs(root: str) -> dict[str, list[str]]:
    """Output base (relative, no extension) → its set files, plus ``*.db`` index files
    (→ the index and its fingerprint sidecar, either may be missing)."""
    outputs: dict[str, list[str]] = {}
    for relative in _walk_files(root):
        parsed = parse_set_file(relative)
        if parsed is not None:
            outputs.setdefault(parsed.base, []).append(relative)
        elif relative.endswith(INDEX_DB):
            outputs.setdefault(relative, []).append(relative)
        elif (index := fingerprinted_index(relative)) is not None:
            outputs.setdefault(index, []).append(relative)
    return dict(sorted(outputs.items()))


def verify_file_set(data_file: str) -> None:
    """Check one complete set (``….<s>.<e>.data`` and companions); ``CacheError`` if not.

    Both checksums, the data file's header and record headers, the index
    lines against the records, and the range of the file name.
    """
    index_file = index_filename(data_file)
    for path in (data_file, index_file):
        checksum = read_checksum(path + ".checksum")
        actual = file_sha256(path)
        if actual != checksum:
            raise CacheError(
                f"`{path}' has a checksum ({actual}) that differs from expected one ({checksum})"
            )
    records: list = []
    with open(data_file, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else _Empty() as buf:
            encoding, _, offset = read_header(buf, data_file)
            if encoding not in ("binary", "json"):
                raise CacheError(
                    f"data file `{data_file}' has an invalid encoding `{encoding[:40]}'"
                )
            scan_records(buf, offset, data_file, 0, None, None, records)
    with open(index_file, "rb") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    listed = []
    for number, line in enumerate(lines, start=1):
        try:
            start, end = (int(x) for x in line.split())
        except ValueError:
            raise CacheError(
                f"index file `{index_file}' line {number} is invalid: {line[:40]!r}"
            ) from None
        listed.append((start, end))
    found = [(r.start_index, r.end_index) for r in records]
    if listed != found:
        where = next(
            (i for i, (a, b) in enumerate(zip(listed, found)) if a != b),
            min(len(listed), len(found)),
        )
        raise CacheError(
            f"index file `{index_file}' disagrees with its data file at record {where}: "
            f"index {listed[where] if where < len(listed) else 'ends'}, "
            f"data {found[where] if where < len(found) else 'ends'}"
        )
    start, end = parse_range(data_file) or (None, None)
    if found and (found[0][0] < start or found[-1][1] < end):
        raise CacheError(
            f"data file `{data_file}' covers {found[0][0]}..{found[-1][1]}, "
            f"its name announces {start}..{end}"
        )


def _verify_index_db(root: str, base: str, files: list[str], status: OutputStatus) -> None:
    """A database index file (a JSON array) and its fingerprint sidecar, if any."""
    sidecars = [f for f in files if f != base]
    if base not in files:
        status.status = INCOMPLETE
        gone = f"its index file `{base}' is gone (gc removes it)"
        status.problems += [f"`{sidecar}': {gone}" for sidecar in sidecars]
        return
    try:
        with open(os.path.join(root, base), "rb") as f:
            entries = json.loads(f.read().decode("utf-8"))
        if not isinstance(entries, list):
            raise ValueError("not a JSON array")
    except (OSError, ValueError) as exc:
        status.status, status.problems = CORRUPT, [f"`{base}': {exc}"]
    for sidecar in sidecars:
        try:
            with open(os.path.join(root, sidecar), "rb") as f:
                IndexFingerprint.from_bytes(f.read())
        except (OSError, ValueError) as exc:
            status.status = CORRUPT
            status.problems.append(f"`{sidecar}': {exc}")


class _Empty(bytes):
    """An empty buffer usable as a context manager (an empty file cannot be mapped)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_RANK = {OK: 0, INCOMPLETE: 1, CORRUPT: 2}


def _worse(current: str, new: str) -> str:
    """The worse of two verdicts (corrupt > incomplete > ok)."""
    return new if _RANK[new] > _RANK[current] else current


def verify_output(root: str, base: str, files: list[str] | None = None) -> OutputStatus:
    """Verify every set of the output ``base`` (relative to ``root``)."""
    if files is None:
        files = find_outputs(root).get(base, [])
    status = OutputStatus(base, OK, files=len(files))
    if base.endswith(INDEX_DB):
        _verify_index_db(root, base, files, status)
        return status
    output = OutputFiles.of(base, files)
    if not output.data:
        status.status = INCOMPLETE
        status.problems.append(f"`{base}': no data file")
        return status
    for state in output.sets():
        if not state.complete:
            status.status = _worse(status.status, INCOMPLETE)
            status.problems.append(f"`{state.data}': missing {', '.join(state.missing)}")
            continue
        if not state.contiguous:
            status.status = _worse(status.status, CORRUPT)
            status.problems.append(
                f"`{state.data}': starts at {state.start}, "
                f"the previous set ends at {state.previous_end}"
            )
        try:
            verify_file_set(os.path.join(root, state.data))
        except (CacheError, OSError) as exc:
            status.status = _worse(status.status, CORRUPT)
            status.problems.append(str(exc))
    for orphan in output.orphan_indexes():
        status.status = _worse(status.status, INCOMPLETE)
        status.problems.append(f"`{orphan}': no data file")
    return status


def verify_cache(root: str, progress: Progress | None = None) -> VerifyReport:
    """Verify every output of the cache ``root`` (see the module documentation)."""
    progress = progress or _no_progress
    outputs = find_outputs(root)
    statuses = []
    for done, (base, files) in enumerate(outputs.items(), start=1):
        statuses.append(verify_output(root, base, files))
        progress(done, len(outputs), base)
    return VerifyReport(root, statuses)


# -- garbage collection -------------------------------------------------------------------


@dataclasses.dataclass
class GcReport:
    """What :func:`collect_garbage` removed (or would remove) and kept."""

    root: str
    dry_run: bool
    removed: list[str] = dataclasses.field(default_factory=list)
    kept: list[str] = dataclasses.field(default_factory=list)
    folders: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of live process ``pid``; ``None`` if gone or a zombie.

    Where ``/proc`` is missing, a process that exists counts as started at 0.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0
    if fields[0] in ("Z", "X"):  # state: zombie or dead
        return None
    boot = _boot_time()
    if boot is None:
        return 0.0
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _locked(path: str) -> bool:
    """Whether another process holds a ``flock`` on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases our lock, if we got it
    return False


def writer_alive(path: str) -> bool:
    """Whether the writer of the temporary ``path`` may still be at work."""
    pid = temporary_pid(os.path.basename(path))
    if pid is None:
        return True  # not a temporary: never garbage
    if _locked(path):
        return True
    started = process_started(pid)
    if started is None:
        return False
    try:
        created = os.stat(path).st_mtime
    except FileNotFoundError:
        return False
    # a process started after the file was last written cannot be its writer
    return started <= created + 1.0


def collect_garbage(
    root: str,
    dry_run: bool = False,
    folder_age: float = 60.0,
    progress: Progress | None = None,
) -> GcReport:
    """Remove dead writers' temporaries, stale locks and empty folders under ``root``.

    A folder is removed when empty and not modified for ``folder_age``
    seconds (a writer may be about to use a folder it just created). Hidden
    folders (e.g. a Dask probe) are left alone. With ``dry_run`` nothing is
    removed; the report lists what would be.
    """
    progress = progress or _no_progress
    report = GcReport(root, dry_run)
    candidates = []
    folders = {}  # relative folder -> its modification time before anything is removed
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        relative = os.path.relpath(dirpath, root)
        if relative != os.curdir:
            try:
                folders[relative] = os.stat(dirpath).st_mtime
            except OSError:
                continue
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if temporary_pid(name) is not None or is_lock_name(name) or _orphan_sidecar(path):
                candidates.append(path)
    for done, path in enumerate(candidates, start=1):
        relative = os.path.relpath(path, root)
        if fingerprinted_index(path) is not None:
            gone = _orphan_sidecar(path)
        elif is_lock_name(os.path.basename(path)):
            gone = not _locked(path)
        else:
            gone = not writer_alive(path)
        if gone and (dry_run or _remove_stale(path)):
            report.removed.append(relative)
        else:
            report.kept.append(relative)
        progress(done, len(candidates), relative)

    # empty folders, deepest first (a folder emptied of its folders goes too)
    gone_entries = set(report.removed)
    now = time.time()
    for relative in sorted(folders, key=lambda r: (-r.count(os.sep), r)):
        try:
            entries = os.listdir(os.path.join(root, relative))
        except OSError:
            continue
        if any(os.path.join(relative, e) not in gone_entries for e in entries):
            continue
        if now - folders[relative] < folder_age:
            continue  # a writer may be about to use a folder it just created
        if not dry_run:
            try:
                os.rmdir(os.path.join(root, relative))
            except OSError:  # a writer put something there meanwhile
                continue
        report.folders.append(relative)
        gone_entries.add(relative)
    return report


def _orphan_sidecar(path: str) -> bool:
    """Whether ``path`` is a fingerprint sidecar whose index file is gone."""
    index = fingerprinted_index(path)
    return index is not None and not os.path.lexists(index)


def _remove_stale(path: str) -> bool:
    """Remove a dead temporary or a stale lock file, holding its lock; ``False`` if taken."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # taken meanwhile: alive after all
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return True
    finally:
        os.close(fd)


def remove_dead_temporaries(base: str) -> list[str]:
    """Remove the hidden temporaries of the files ``<base>.*`` (an output's sets, or an
    index file) whose writer is gone (as :func:`collect_garbage` does); the paths removed."""
    folder, name = os.path.split(base)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    removed = []
    for entry in names:
        path = os.path.join(folder, entry)
        if not entry.startswith(f".{name}.") or temporary_pid(entry) is None:
            continue
        if not writer_alive(path) and _remove_stale(path):
            removed.append(path)
    return removed
