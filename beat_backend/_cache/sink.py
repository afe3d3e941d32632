"""``CachedDataSink``: writes one cache file set crash-safely (cache-files.md §2-§5).

The ``.data``/``.index`` files are written under hidden temporary names in the
destination folder (``.<final name>.<pid>.<token>.tmp``: no reader glob or
platform check matches them), hashed while written, and renamed into place by
a complete :meth:`close`; the checksum files come last; finished files are
made read-only. A killed writer leaves only hidden temporaries behind.

Each temporary is ``flock``-ed by its writer while open (``cache gc`` never
removes a locked one). Publication runs under a per-set lock file
(``.<data file name>.lock``, removed afterwards): two writers of the same
output publish in turn, each replacing all four files (old checksums removed
first, so an interrupted replacement looks incomplete); a writer finding the
very same bytes already published drops its copy. The set left is always one
writer's complete set, and identical copies never disturb readers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time

from .._core.jsonio import dumps_numpy
from .._format.baseformat import has_arrays
from .base import DataSink
from .fileset import (
    create_temporary,
    data_filename,
    index_filename,
    is_complete_set,
    lock_name,
    make_read_only,
    read_checksum,
    write_atomic,
)

logger = logging.getLogger(__name__)

_BUFFER = 1 << 20
_DIRECT = 1 << 18  # payload parts this large bypass the buffer (no extra copy)
_EMPTY = b""
_NEWLINE = b"\n"
_clock = time.perf_counter
_join = b"".join


@contextlib.contextmanager
def publication_lock(final: str):
    """Hold the exclusive lock of the file set of ``final`` (a data file name).

    The lock file is removed on release; an acquirer that locked a file
    removed meanwhile (its inode is no longer at the path) tries again.
    """
    path = lock_name(final)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if current.st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)


def publish_text(path: str, text: str) -> None:
    """Atomically write a small text file (temporary name + rename), read-only."""
    write_atomic(path, text.encode("ascii"), fsync=False)


class _HashingWriter:
    """A binary file written through a 1 MiB buffer, hashed chunk by chunk.

    ``buf`` stays the same ``bytearray`` for the writer's life (emptied in
    place), so a caller may append to it directly and call :meth:`flush`
    once it holds ``_BUFFER`` bytes or more.
    """

    __slots__ = ("file", "sha", "path", "buf", "written")

    def __init__(self, final):
        fd, self.path = create_temporary(final)  # a hidden temporary beside ``final``
        self.file = open(fd, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        # held while the file is open: `cache gc' never removes a locked temporary
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.sha = hashlib.sha256()
        self.buf = bytearray()
        self.written = 0  # bytes emitted to the file (the buffer not included)

    def write(self, data):
        if len(data) >= _DIRECT:
            self.flush()
            self._emit(data)
            return
        self.buf += data
        if len(self.buf) >= _BUFFER:
            self.flush()

    def write_parts(self, parts, size):
        """Append the concatenation of ``parts`` (``size`` bytes) with one copy."""
        if size >= _DIRECT:
            for part in parts:
                self.write(part)
            return
        buf = self.buf
        for part in parts:
            buf += part
        if len(buf) >= _BUFFER:
            self.flush()

    def _emit(self, data):
        with memoryview(data) as view:
            self.sha.update(view)
            self.written += len(view)
            while view:
                n = self.file.write(view)
                view = view[n:]

    def flush(self):
        if self.buf:
            self._emit(self.buf)
            del self.buf[:]

    def close(self):
        try:
            self.flush()
        finally:
            self.file.close()

    def abort(self):
        """Close without writing what is still buffered (the file is discarded)."""
        del self.buf[:]
        self.file.close()


class CachedDataSink(DataSink):
    """Data sink that saves data in the cache (binary, or JSON for debugging)."""

    def __init__(self):
        self.filename = None
        self.encoding = None
        self.dataformat = None
        self.start_index = None
        self.end_index = None
        self.data_file = None
        self.index_file = None
        self.last_written_data_index = None
        self.nb_bytes_written = 0
        self.write_duration = 0
        self._index_filename = None
        self._type = None
        self._name = None
        self._accepted = None  # the class whose objects ``write`` takes unchecked
        self._binary = True
        self._flat = False  # binary and no arrays anywhere in the format
        self._data_buf = None
        self._index_buf = None

    # -- set up ---------------------------------------------------------------

    def setup(self, filename, dataformat, start_index, end_index, encoding="binary"):
        """Open ``<base>.<start>.<end>.data`` (and its index) for writing."""
        self.close()
        if encoding not in ("binary", "json"):
            raise RuntimeError(
                "valid formats for data writing are 'binary' or 'json': the format "
                f"`{encoding}' is invalid"
            )
        if dataformat.name == "__unnamed_dataformat__":
            raise RuntimeError("cannot record data using an unnamed data format")

        self.filename = data_filename(filename, start_index, end_index)
        self._index_filename = index_filename(self.filename)
        self.encoding = encoding
        self.dataformat = dataformat
        self.start_index = start_index
        self.end_index = end_index
        self.last_written_data_index = None
        self.nb_bytes_written = 0
        self.write_duration = 0
        self._type = dataformat.type
        self._name = dataformat.name
        self._accepted = None
        self._binary = encoding == "binary"
        self._flat = self._binary and not has_arrays(dataformat.type)

        try:
            self.data_file = _HashingWriter(self.filename)
            self.index_file = _HashingWriter(self._index_filename)
        except OSError as exc:
            logger.error("Failed to open cache files for `%s': %s", self.filename, exc)
            self._discard()
            return False

        self._data_buf = self.data_file.buf
        self._index_buf = self.index_file.buf
        self.data_file.write(f"{encoding}\n{dataformat.name}\n".encode())
        return True

    # -- writing --------------------------------------------------------------

    def write(self, data, start_data_index, end_data_index):
        """Append one record covering ``start_data_index..end_data_index``."""
        if data.__class__ is not self._accepted:
            data = self._check(data)
        t0 = _clock()
        if self._flat:  # binary, no arrays: small records, formatted in one go
            parts = []
            data._encode(data, parts)
            payload = _join(parts)
            record = b"%d %d %d\n%b\n" % (
                start_data_index,
                end_data_index,
                len(payload) + 1,
                payload,
            )
            buf = self._data_buf
            buf += record
            if len(buf) >= _BUFFER:
                self.data_file.flush()
            written = len(record)
        elif self._binary:
            parts = [_EMPTY]
            data._encode(data, parts)
            parts.append(_NEWLINE)
            size = sum(map(len, parts))
            parts[0] = header = b"%d %d %d\n" % (start_data_index, end_data_index, size)
            # large parts (arrays) are written without a copy
            self.data_file.write_parts(parts, size)
            written = len(header) + size
        else:
            payload = dumps_numpy(data.as_dict(), indent=4).encode("utf-8") + b"\n"
            header = b"%d %d %d\n" % (start_data_index, end_data_index, len(payload))
            self.data_file.write(header)
            self.data_file.write(payload)
            written = len(header) + len(payload)
        line = b"%d %d\n" % (start_data_index, end_data_index)
        ibuf = self._index_buf
        ibuf += line
        if len(ibuf) >= _BUFFER:
            self.index_file.flush()
        self.nb_bytes_written += written + len(line)
        self.write_duration += _clock() - t0
        self.last_written_data_index = end_data_index

    def _check(self, data):
        """``data`` as an object of this sink's format (the class is then accepted)."""
        if self._name is None:  # never set up: there is no format to check against
            raise RuntimeError("No destination file")
        if isinstance(data, dict):
            data = self._type(**data)
        elif getattr(data.__class__, "_name", None) != self._name:
            raise TypeError(
                f"input data uses format `{getattr(data.__class__, '_name', type(data).__name__)}'"
                f" while this sink expects `{self._name}'"
            )
        if self.data_file is None:
            raise RuntimeError("No destination file")
        self._accepted = data.__class__
        return data

    # -- closing ----------------------------------------------------------------

    def discard(self):
        """Drop the file set being written (nothing is published); idempotent."""
        if self.data_file is None:
            return True
        return self._discard()

    def _discard(self):
        ok = True
        for writer in (self.data_file, self.index_file):
            if writer is None:
                continue
            try:
                writer.abort()
            except OSError:
                ok = False
            try:
                os.unlink(writer.path)
            except FileNotFoundError:
                pass
            except OSError:
                ok = False
        self.data_file = None
        self.index_file = None
        self._accepted = None  # ``write`` checks again: nothing to write to
        return ok

    def close(self):
        """Publish a complete file set (or delete an incomplete one); idempotent."""
        if self.data_file is None:
            return True
        if self.last_written_data_index is None:
            logger.warning("Removing cache files: No data written")
            return self._discard()
        if self.last_written_data_index < self.end_index:
            logger.warning(
                "Removing cache files: No enough data written: last written %d vs end %d",
                self.last_written_data_index,
                self.end_index,
            )
            return self._discard()

        data_file, index_file = self.data_file, self.index_file
        try:
            data_file.close()
            index_file.close()
            for writer in (data_file, index_file):
                make_read_only(writer.path)
        except BaseException:
            # the set cannot be completed (e.g. disk full while flushing):
            # never leave temporaries behind, report the error
            self._discard()
            raise
        self.data_file = None
        self.index_file = None
        self._accepted = None  # ``write`` checks again: nothing to write to
        try:
            with publication_lock(self.filename):
                self._publish(data_file, index_file)
        except BaseException:
            for writer in (data_file, index_file):
                with contextlib.suppress(OSError):
                    os.unlink(writer.path)
            raise
        return True

    def _publish(self, data_file, index_file):
        """Rename the temporaries into place, then write the checksums (under the lock)."""
        data_sum, index_sum = data_file.sha.hexdigest(), index_file.sha.hexdigest()
        index = self._index_filename
        if is_complete_set(self.filename) and (
            read_checksum(self.filename + ".checksum"),
            read_checksum(index + ".checksum"),
        ) == (data_sum, index_sum):
            # another writer of this output published the same bytes: keep its files
            logger.info(
                "`%s' was published meanwhile: this identical copy is dropped", self.filename
            )
            for writer in (data_file, index_file):
                os.unlink(writer.path)
            return
        for checksum in (self.filename + ".checksum", index + ".checksum"):
            with contextlib.suppress(FileNotFoundError):  # the old set is incomplete first
                os.unlink(checksum)
        os.replace(data_file.path, self.filename)
        os.replace(index_file.path, index)
        publish_text(self.filename + ".checksum", data_sum)
        publish_text(index + ".checksum", index_sum)

    def __del__(self):
        try:
            self.close()
        except Exception:  # never raise from a finalizer
            pass

    def statistics(self):
        """``(nb_bytes_written, write_duration)``."""
        return (self.nb_bytes_written, self.write_duration)

    def isConnected(self):
        return self.filename is not None
