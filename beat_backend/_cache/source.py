"""``CachedDataSource``: reads the file set(s) of a cached output (cache-files.md §7.2).

Data files are memory-mapped; checksums are verified once per file and
process (keyed on the file's identity); records are located by one scan of
the headers; units are found by binary search; decoding is bounded to the
record (a header that lies about its size is an error, never a wrong value).
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import threading
import time

from .._core.errors import CacheError, DecodingError
from .._core.jsonio import error_on_duplicate_key_hook
from .base import DataSource
from .datafile import file_sha256, read_header, scan_records
from .index import getAllFilenames, parse_range, read_checksum

logger = logging.getLogger(__name__)

_VERIFIED: dict = {}
_clock = time.perf_counter
# what a compiled decoder raises on bytes that are not a value of its format
_DECODING_ERRORS = (DecodingError, ValueError, TypeError, OverflowError, MemoryError, SystemError)
_VERIFIED_LOCK = threading.Lock()


def _identity(path):
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def verify_checksum(path: str, checksum_path: str) -> None:
    """Raise ``CacheError`` unless ``path`` hashes to the content of ``checksum_path``.

    A file verified once in this process (same identity: inode, size, mtime)
    is not hashed again.
    """
    expected = read_checksum(checksum_path)
    key = _identity(path)
    with _VERIFIED_LOCK:
        if _VERIFIED.get(key) == expected:
            return
    actual = file_sha256(path)
    if actual != expected:
        raise CacheError(
            f"data file `{path}' has a checksum ({actual}) that differs from expected one "
            f"({expected})"
        )
    with _VERIFIED_LOCK:
        _VERIFIED[key] = expected


class CachedDataSource(DataSource):
    """Utility class to load data from a file set in the cache."""

    def __init__(self):
        super().__init__()
        self.filenames = None
        self.encoding = None
        self.prefix = None
        self.dataformat = None
        self.current_file = None
        self.current_file_index = None
        self.unpack = True
        self._maps = {}
        self._files = {}
        self._views = {}
        self._binary = False

    def setup(self, filename, prefix, start_index=None, end_index=None, unpack=True):
        """Configure the source; returns ``True`` on success, ``False`` if no file exists."""
        self.reset()  # a re-used source must not keep the maps of its previous files
        data_files, _, checksum_files, _ = getAllFilenames(filename, start_index, end_index)
        if not data_files:
            logger.warning("No data found in `%s'", filename)
            return False
        if [f + ".checksum" for f in data_files] != checksum_files:
            raise CacheError(
                f"number of data files and checksum files for `{filename}' does not match "
                f"({len(data_files)} != {len(checksum_files)})"
            )
        for data_file, checksum_file in zip(data_files, checksum_files):
            verify_checksum(data_file, checksum_file)
        previous_end = None
        for data_file, checksum_file in zip(data_files, checksum_files):
            r = parse_range(data_file)
            if previous_end is not None and r is not None and r[0] != previous_end + 1:
                raise CacheError(f"data file `{data_file}|{checksum_file}' has missing indices.")
            if r is not None:
                previous_end = r[1]

        self.prefix = prefix
        self.unpack = unpack
        self.filenames = data_files
        self.infos = []
        self.dataformat = None
        self.encoding = None
        for file_index, path in enumerate(data_files):
            buf = self._map(file_index, path)
            encoding, name, offset = read_header(buf, path)
            if encoding not in ("binary", "json"):
                raise RuntimeError(
                    f"valid formats for data reading are 'binary' or 'json': the format "
                    f"`{encoding}' of `{path}' is invalid"
                )
            if self.dataformat is None:
                self.encoding = encoding
                self.dataformat = self._load_format(name, prefix, path)
            scan_records(buf, offset, path, file_index, start_index, end_index, self.infos)
        self._type = self.dataformat.type
        self._binary = self.encoding == "binary"
        # the maps stay open for the reads, but no unit was read yet
        self.current_file = None
        self.current_file_index = None
        self.ready = True
        return True

    @staticmethod
    def _load_format(name, prefix, path="?"):
        from .._assets.dataformat import DataFormat

        if name.startswith("analysis:"):
            from .._assets.algorithm import Algorithm

            algo_name = name[len("analysis:") :]
            algo = Algorithm(prefix, algo_name)
            if not algo.valid:
                raise RuntimeError(
                    f"the dataformat `{algo_name}' is the result of an algorithm which is not valid"
                )
            return algo.result_dataformat()
        df = DataFormat(prefix, name)
        if not df.valid:
            raise RuntimeError(
                f"the dataformat `{name}' is not valid\n"
                + "\n".join([*df.errors, f"(named by the header of `{path}')"])
            )
        return df

    # -- files ----------------------------------------------------------------

    def _map(self, file_index, path=None):
        mm = self._maps.get(file_index)
        if mm is not None:
            return mm
        path = path or self.filenames[file_index]
        try:
            f = open(path, "rb")  # noqa: SIM115 - kept open with its map
            size = os.fstat(f.fileno()).st_size
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except OSError as exc:
            raise CacheError(f"Could not read `{path}': {exc}") from None
        self._files[file_index] = f
        self._maps[file_index] = mm
        self._views[file_index] = memoryview(mm)
        self.current_file = f
        self.current_file_index = file_index
        return mm

    def reset(self):
        """Close the open files (the setup is kept)."""
        for view in self._views.values():
            try:
                view.release()
            except BufferError:  # still exported: the map is closed by the GC
                pass
        for mm in self._maps.values():
            if isinstance(mm, mmap.mmap):
                try:
                    mm.close()
                except BufferError:
                    pass
        for f in self._files.values():
            f.close()
        self._maps = {}
        self._files = {}
        self._views = {}
        self.current_file = None
        self.current_file_index = None

    def close(self):
        self.reset()
        super().close()

    # -- reading --------------------------------------------------------------

    def __getitem__(self, index):
        infos = self.infos
        if index < 0 or index >= len(infos):
            return (None, None, None)
        t0 = _clock()
        info = infos[index]
        fi, start, end_index, offset, size = info
        view = self._views.get(fi)
        if view is None:
            self._map(fi)
            view = self._views[fi]
        if fi != self.current_file_index:
            self.current_file = self._files[fi]
            self.current_file_index = fi
        if self.unpack and self._binary:  # the common case
            try:
                # bounded to the record: a header that lies is an error, never a value
                data, used = self._type._decode(view[offset : offset + size], 0, False)
            except _DECODING_ERRORS as exc:
                raise self._undecodable(info, exc) from None
            if used != size - 1:
                raise CacheError(
                    f"record {start}..{end_index} of `{self.filenames[fi]}' announces "
                    f"{size - 1} bytes of payload but its value uses {used}"
                )
        elif not self.unpack:
            data = bytes(view[offset : offset + size])
        else:
            try:
                payload = bytes(view[offset : offset + size]).decode("utf-8")
                obj = json.loads(payload, object_pairs_hook=error_on_duplicate_key_hook)
            except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError, duplicate keys
                raise self._undecodable(info, exc) from None
            data = self._type().from_dict(obj, casting="unsafe", add_defaults=False)
        self.nb_bytes_read += size
        self.read_duration += _clock() - t0
        return (data, start, end_index)

    def _undecodable(self, info, exc) -> CacheError:
        if not isinstance(exc, DecodingError):  # raised by the decoder itself
            exc = DecodingError(
                f"cannot decode dataformat `{self._type._name}': {type(exc).__name__}: {exc}"
            )
        return CacheError(
            f"cannot decode record {info.start_index}..{info.end_index} of "
            f"`{self.filenames[info.file_index]}': {exc}"
        )

    def wire_payload(self, position):
        """``(payload, start, end)`` of unit ``position`` for a ``get`` reply.

        Binary files: the cached bytes as they are (the record without its
        trailing newline), a ``memoryview`` of the file's memory map, never
        unpacked and packed again; the map stays alive as long as the view
        (ZeroMQ may send it after ``send`` returned). JSON files: packed.
        """
        info = self.infos[position]
        if self.encoding != "binary":
            unpack, self.unpack = self.unpack, True
            try:
                data = self[position][0]
            finally:
                self.unpack = unpack
            return data.pack(), info.start_index, info.end_index
        fi = info.file_index
        view = self._views.get(fi)
        if view is None:
            self._map(fi)
            view = self._views[fi]
        self.nb_bytes_read += info.size
        return view[info.offset : info.offset + info.size - 1], info.start_index, info.end_index

    # -- pickling ---------------------------------------------------------------

    def __getstate__(self):
        state = super().__getstate__()
        state["_reopen"] = self.current_file_index
        state["_maps"] = {}
        state["_files"] = {}
        state["_views"] = {}
        state["current_file"] = None
        state.pop("_type", None)
        return state

    def __setstate__(self, state):
        reopen = state.pop("_reopen", None)
        self.__dict__.update(state)
        if self.dataformat is not None:
            self._type = self.dataformat.type
        self.current_file_index = None
        if reopen is not None:
            try:
                self._map(reopen)
            except CacheError as exc:
                raise OSError(str(exc)) from None
