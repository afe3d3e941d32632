"""Cache file sets: names, completeness and the atomic writer (cache-files.md §1, §4-§6).

The one owner of what a cache file set is on disk:

* **Naming.** The output of cache path ``P`` is held by file sets
  ``P.<s>.<e>.data``, ``P.<s>.<e>.index`` and a ``.checksum`` beside each
  (:func:`data_filename`, :func:`index_filename`, :func:`checksum_filename`,
  :func:`set_files`, :func:`parse_set_file`, :func:`parse_range`); the
  files of one output are found by :func:`output_paths` (the readers' glob
  ``P.*``) and sorted out by :func:`classify`. Writers work under hidden
  temporaries ``.<final name>.<pid>.<token>.tmp`` (:func:`temporary_name`,
  :func:`temporary_pid`): no reader glob (``P.*``, ``P*.index``) matches a
  name that starts with a dot. A set's publication is serialised by the
  hidden lock file ``.<data file name>.lock`` (:func:`lock_name`,
  :func:`is_lock_name`). Beside a database index file ``<I>.db``, ours may
  write its fingerprint ``<I>.db.fingerprint`` (:func:`fingerprint_filename`,
  :func:`fingerprinted_index`; beyond BEAT): no platform glob (``*.data``,
  ``*.index``, ``*.checksum``, ``P.*`` of an output, the ``.db`` paths)
  matches it.
* **Completeness.** :func:`is_complete_set` (the four files of one set
  exist) and :class:`OutputFiles`, the files of one output with the
  planner's verdict (:meth:`~OutputFiles.incomplete_reason`) and the
  set-by-set one of ``cache verify`` (:meth:`~OutputFiles.sets`,
  :meth:`~OutputFiles.orphan_indexes`).
* **Atomic writes.** :func:`write_atomic` writes a whole file under a
  temporary name (:func:`create_temporary`), fsyncs it, makes it read-only
  (:data:`READ_ONLY`, :func:`make_read_only`) and renames it into place: a
  crash never leaves a file that looks finished. Sinks, which stream their
  data, use the same pieces.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import secrets
import stat
from collections.abc import Iterable

from .._core.hashing import hashFileContents

_SUFFIX = r"\.(?P<start>\d+)\.(?P<end>\d+)\.(?P<ext>data|index)(?P<sum>\.checksum)?$"
#: a file of a set: ``<base>.<start>.<end>.(data|index)[.checksum]``
_SET_FILE = re.compile(r"^(?P<base>.*)" + _SUFFIX)
#: the part of a set file's name after its base (compiled once: a block classifies
#: its outputs' files, and compiling a pattern costs more than matching it)
_TAIL = re.compile(_SUFFIX)
#: a hidden temporary: ``.<final>.<pid>.<token>.tmp``
_TEMPORARY = re.compile(r"^\.(?P<final>.+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]+)\.tmp$")
#: a publication lock: ``.<data file>.lock``
_LOCK = re.compile(r"^\..+\.lock$")

CHECKSUM = ".checksum"
#: a database index file, and the suffix of its fingerprint sidecar
INDEX_DB = ".db"
FINGERPRINT = ".fingerprint"


# -- naming ---------------------------------------------------------------------------------


def data_filename(filename: str, start_index: int, end_index: int) -> str:
    """``dir/base.ext`` → ``dir/base.<s>.<e>.ext`` (the real name a sink writes)."""
    base, ext = os.path.splitext(filename)
    return f"{base}.{start_index}.{end_index}{ext}"


def index_filename(data_file: str) -> str:
    """The ``.index`` companion of a data file (only the final extension changes)."""
    if data_file.endswith(".data"):
        return data_file[: -len(".data")] + ".index"
    return data_file + ".index"


def checksum_filename(path: str) -> str:
    """The checksum file of a ``.data`` or ``.index`` file."""
    return path + CHECKSUM


def set_files(data_file: str) -> tuple[str, str, str, str]:
    """The four files of the set of ``data_file``: data, index, their checksums."""
    index = index_filename(data_file)
    return data_file, index, checksum_filename(data_file), checksum_filename(index)


@dataclasses.dataclass(frozen=True)
class SetFile:
    """What the name of a file of a set tells (see :func:`parse_set_file`)."""

    #: the output's path, without extension (relative if the name is)
    base: str
    start: int
    end: int
    #: ``data`` or ``index``
    ext: str
    #: whether it is the checksum file of that ``.data`` / ``.index`` file
    checksum: bool


def parse_set_file(path: str) -> SetFile | None:
    """Parse ``<base>.<s>.<e>.(data|index)[.checksum]``; ``None`` for any other name."""
    m = _SET_FILE.match(path)
    if m is None:
        return None
    return SetFile(
        m.group("base"), int(m.group("start")), int(m.group("end")), m.group("ext"), bool(m["sum"])
    )


def parse_range(path: str) -> tuple[int, int] | None:
    """``(start, end)`` parsed from a cache file name, ``None`` if it has none."""
    m = _SET_FILE.match(path)
    if m is None:
        return None
    return int(m.group("start")), int(m.group("end"))


def read_checksum(path: str) -> str:
    """The hexadecimal digest held by a checksum file (whitespace stripped)."""
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read().strip()


def fingerprint_filename(index_file: str) -> str:
    """The fingerprint sidecar of a database index file (``<I>.db`` -> ``<I>.db.fingerprint``)."""
    return index_file + FINGERPRINT


def fingerprinted_index(path: str) -> str | None:
    """The index file a sidecar ``<I>.db.fingerprint`` belongs to; ``None`` for any other name."""
    if path.endswith(INDEX_DB + FINGERPRINT) and not os.path.basename(path).startswith("."):
        return path[: -len(FINGERPRINT)]
    return None


def temporary_name(final: str) -> str:
    """Hidden temporary name beside ``final``, tagged with the writer's pid."""
    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def temporary_pid(name: str) -> int | None:
    """The writer's pid in a temporary's file name (no folder); ``None`` if not a temporary."""
    m = _TEMPORARY.match(name)
    return None if m is None else int(m.group("pid"))


def lock_name(final: str) -> str:
    """Hidden lock file serializing the publication of the set of ``final``."""
    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}.lock")


def is_lock_name(name: str) -> bool:
    """Whether ``name`` (a file name, no folder) is a publication lock's."""
    return _LOCK.match(name) is not None


def output_paths(base: str) -> list[str]:
    """Every path ``<base>.*`` (what readers glob for output ``base``), sorted by name."""
    return sorted(glob.glob(glob.escape(base) + ".*"))


def classify(paths, base: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(data, index, data checksum, index checksum)`` files of ``base`` among ``paths``.

    Names ``<base>.<s>.<e>.(data|index)[.checksum]``, in the order of
    ``paths``; any other name (hidden temporaries, other outputs) is dropped.
    """
    groups: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
    for path in paths:
        m = _TAIL.match(path, len(base)) if path.startswith(base) else None
        if m is not None:
            groups[(m.group("ext") == "index") + 2 * (m.group("sum") is not None)].append(path)
    return groups


# -- completeness ---------------------------------------------------------------------------


def is_complete_set(data_file: str) -> bool:
    """Whether the four files of the set of ``data_file`` exist."""
    return all(os.path.isfile(p) for p in set_files(data_file))


@dataclasses.dataclass(frozen=True)
class SetState:
    """One set of an output, as :meth:`OutputFiles.sets` finds it."""

    data: str
    start: int
    end: int
    #: the files of the set missing beside ``data`` (index, data checksum, index checksum)
    missing: tuple[str, ...]
    #: the end of the previous complete set (``None``: there is none)
    previous_end: int | None

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def contiguous(self) -> bool:
        """Whether it starts right after the previous complete set (or is the first)."""
        return self.previous_end is None or self.start == self.previous_end + 1


@dataclasses.dataclass(frozen=True)
class OutputFiles:
    """The set files of one output (base path ``P``, no extension), sorted out by name.

    Two verdicts on them: :meth:`incomplete_reason` is the planner's check
    (beat.core's ``check_output``, toolchains-and-experiments.md §6.2: counts
    of files and checksums), :meth:`sets` and :meth:`orphan_indexes` the
    set-by-set view of ``cache verify`` (companions, contiguity).
    """

    base: str
    data: tuple[str, ...]
    index: tuple[str, ...]
    data_checksums: tuple[str, ...]
    index_checksums: tuple[str, ...]

    @classmethod
    def of(cls, base: str, paths: Iterable[str]) -> OutputFiles:
        """The set files of ``base`` among ``paths`` (their order kept)."""
        data, index, data_checksums, index_checksums = classify(paths, base)
        return cls(base, tuple(data), tuple(index), tuple(data_checksums), tuple(index_checksums))

    @classmethod
    def on_disk(cls, base: str) -> OutputFiles:
        """The set files of ``base`` that exist (the readers' glob), sorted by name."""
        return cls.of(base, output_paths(base))

    def _range(self, path: str) -> tuple[int, int]:
        m = _TAIL.match(path, len(self.base))
        assert m is not None  # classified by the same pattern
        return int(m.group("start")), int(m.group("end"))

    def sets(self) -> list[SetState]:
        """Every set, one per data file, ordered by range (then as given)."""
        present = {*self.data, *self.index, *self.data_checksums, *self.index_checksums}
        states = []
        previous_end = None
        for data in sorted(self.data, key=self._range):
            start, end = self._range(data)
            missing = tuple(p for p in set_files(data)[1:] if p not in present)
            states.append(SetState(data, start, end, missing, previous_end))
            if not missing:
                previous_end = end
        return states

    def orphan_indexes(self) -> list[str]:
        """The ``.index`` files whose ``.data`` file is missing (as given)."""
        data = set(self.data)
        return [f for f in self.index if f[: -len(".index")] + ".data" not in data]

    def incomplete_reason(self, verify: bool = False) -> str:
        """Why the output is not complete: ``""`` (complete), ``"missing"`` or a detail.

        Complete: at least one data file, as many index files, and a checksum
        file beside each of them (looked for on disk); ``verify=True`` also
        compares every checksum with the file's hash.
        """
        if not self.data:
            return "missing"
        if len(self.index) != len(self.data):
            return f"{len(self.data)} data file(s) but {len(self.index)} index file(s)"
        for filename in self.data + self.index:
            checksum = checksum_filename(filename)
            if not os.path.isfile(checksum):
                return f"no checksum for {os.path.basename(filename)}"
            if verify and read_checksum(checksum) != hashFileContents(filename):
                return f"checksum mismatch for {os.path.basename(filename)}"
        return ""


# -- the atomic writer ----------------------------------------------------------------------

#: the mode of a finished cache file
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_ATTEMPTS = 100


def create_temporary(final: str) -> tuple[int, str]:
    """Create a new hidden temporary beside ``final``: ``(descriptor open for writing, path)``.

    Created exclusively, mode 0o666 less the umask; a name already taken is
    skipped for another token.
    """
    for _ in range(_ATTEMPTS):
        path = temporary_name(final)
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file next to `{final}'")


def make_read_only(path: str) -> None:
    """Give a finished file its final mode (read-only, for everyone)."""
    os.chmod(path, READ_ONLY)


def remove_temporary(path: str) -> None:
    """Remove a temporary that will not be published (already gone is fine)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def write_atomic(path: str, data: bytes, *, read_only: bool = True, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: readers see no file (or the old one), or all of it.

    The bytes go to a hidden temporary beside ``path`` (:func:`create_temporary`),
    flushed to disk (``fsync``), made read-only (``read_only``), then renamed
    over ``path``. On any error (or interruption) the temporary is removed and
    ``path`` is left as it was. The parent folder must exist.
    """
    fd, tmp = create_temporary(path)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if read_only:
            make_read_only(tmp)
        os.replace(tmp, path)
    except BaseException:
        remove_temporary(tmp)
        raise
