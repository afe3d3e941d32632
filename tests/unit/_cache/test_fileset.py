"""``_cache.fileset``: the names of a cache file set, its completeness, the atomic writer."""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import re
import stat
import subprocess
import sys

import pytest

from beat_backend._cache import fileset, maintenance
from beat_backend._cache.fileset import (
    OutputFiles,
    SetFile,
    SetState,
    checksum_filename,
    classify,
    data_filename,
    fingerprint_filename,
    fingerprinted_index,
    index_filename,
    is_lock_name,
    lock_name,
    output_paths,
    parse_range,
    parse_set_file,
    read_checksum,
    set_files,
    temporary_name,
    temporary_pid,
)
from beat_backend.data import getAllFilenames, load_data_index, load_data_index_db


def touch(*paths) -> None:
    for path in paths:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb"):
            pass


def names(paths) -> list[str]:
    return [os.path.basename(p) for p in paths]


# -- naming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "start", "end", "data", "index"),
    [
        ("/c/ab/cd/0123.data", 0, 3, "/c/ab/cd/0123.0.3.data", "/c/ab/cd/0123.0.3.index"),
        ("/c/x.data/0123.data", 10, 13, "/c/x.data/0123.10.13.data", "/c/x.data/0123.10.13.index"),
        ("rel/h.data", 7, 1000000000, "rel/h.7.1000000000.data", "rel/h.7.1000000000.index"),
    ],
)
def test_names_round_trip(requested, start, end, data, index):
    assert data_filename(requested, start, end) == data
    assert index_filename(data) == index
    assert set_files(data) == (data, index, data + ".checksum", index + ".checksum")
    base = os.path.splitext(requested)[0]
    for path, ext, checksum in [
        (data, "data", False),
        (index, "index", False),
        (checksum_filename(data), "data", True),
        (checksum_filename(index), "index", True),
    ]:
        assert parse_set_file(path) == SetFile(base, start, end, ext, checksum)
        assert parse_range(path) == (start, end)


def test_index_filename_of_a_name_without_the_data_extension():
    assert index_filename("/c/x.data/h.0.3") == "/c/x.data/h.0.3.index"


@pytest.mark.parametrize(
    "name",
    [
        "h.data",
        "h.0.3",
        "h.0.3.dat",
        "h.0.3.data.bak",
        "h.x.3.data",
        "h.0.-3.data",
        "h.0.3.data.checksum.tmp",
        ".h.0.3.data.123.abcd0123.tmp",
        ".h.0.3.data.lock",
    ],
)
def test_other_names_are_not_set_files(name):
    assert parse_set_file(name) is None
    assert parse_range(name) is None


def test_relative_and_absolute_bases():
    assert parse_set_file("ab/cd/ef/0123.4.5.index").base == "ab/cd/ef/0123"
    assert parse_set_file("/c/0123.4.5.data.checksum").base == "/c/0123"
    # a set file's base is everything before its last components, dots included
    assert parse_set_file("/c/h.1.2.0.3.data") == SetFile("/c/h.1.2", 0, 3, "data", False)


def test_temporary_names(tmp_path):
    final = str(tmp_path / "ab" / "0123.0.3.data")
    tmp = temporary_name(final)
    folder, name = os.path.split(tmp)
    assert folder == str(tmp_path / "ab")
    assert re.fullmatch(rf"\.0123\.0\.3\.data\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp", name)
    assert temporary_name(final) != tmp  # a fresh token each time
    assert temporary_pid(name) == os.getpid()
    assert temporary_pid(".x.db.123.0.tmp") == 123  # older index writers: a counter token
    assert parse_set_file(tmp) is None and parse_range(tmp) is None
    for other in ("0123.0.3.data", ".0123.0.3.data.lock", ".x.tmp", ".x.12.tmp", ".x.1.XY.tmp"):
        assert temporary_pid(other) is None
    assert os.path.dirname(temporary_name("bare.db")) == ""


def test_lock_names():
    assert lock_name("/c/ab/0123.0.3.data") == "/c/ab/.0123.0.3.data.lock"
    assert is_lock_name(".0123.0.3.data.lock")
    assert not is_lock_name("0123.0.3.data.lock")
    assert temporary_pid(".0123.0.3.data.lock") is None


def test_fingerprint_names(tmp_path):
    index = str(tmp_path / "ab" / "cd" / "0123.db")
    sidecar = fingerprint_filename(index)
    assert sidecar == index + ".fingerprint"
    assert fingerprinted_index(sidecar) == index
    assert fingerprinted_index("ab/0123.db.fingerprint") == "ab/0123.db"
    for other in (index, "x.fingerprint", "x.0.3.data.fingerprint", ".x.db.fingerprint"):
        assert fingerprinted_index(other) is None
    temporary = os.path.basename(temporary_name(sidecar))
    assert fingerprinted_index(temporary) is None and temporary_pid(temporary) == os.getpid()
    name = os.path.basename(sidecar)
    assert parse_set_file(name) is None and temporary_pid(name) is None
    assert not is_lock_name(name)


def test_fingerprints_match_no_platform_glob(tmp_path):
    cache = str(tmp_path)
    relative = "ab/cd/0123.db"
    index = os.path.join(cache, relative)
    os.makedirs(os.path.dirname(index))
    with open(index, "w", encoding="utf-8") as f:
        f.write('[{"a": 1}]')
    touch(fingerprint_filename(index))
    names = os.listdir(os.path.dirname(index))
    for pattern in ("*.data", "*.index", "*.checksum", "*.db"):
        assert [n for n in names if fnmatch.fnmatch(n, pattern)] in ([], ["0123.db"])
    assert load_data_index_db(cache, relative) == [[0, 1]]
    assert getAllFilenames(index[: -len(".db")] + ".data") == ([], [], [], [])
    assert OutputFiles.on_disk(index[: -len(".db")]).incomplete_reason() == "missing"


def test_read_checksum_strips_whitespace(tmp_path):
    path = tmp_path / "x.checksum"
    path.write_text("  ab12\n")
    assert read_checksum(str(path)) == "ab12"


def test_output_paths_and_classify(tmp_path):
    folder = tmp_path / "a[1]*?"  # glob characters are escaped
    base = str(folder / "h")
    sets = [(10, 19), (0, 9)]
    for s, e in sets:
        touch(*set_files(data_filename(base + ".data", s, e)))
    touch(
        base + ".tmp",
        base + ".data",
        base + ".0.9.data.bak",
        str(folder / "hh.0.9.data"),
        str(folder / "h0.9.data"),
        temporary_name(base + ".20.29.data"),
        lock_name(base + ".20.29.data"),
    )
    found = output_paths(base)
    assert found == sorted(found)
    assert names(found) == [
        "h.0.9.data",
        "h.0.9.data.bak",
        "h.0.9.data.checksum",
        "h.0.9.index",
        "h.0.9.index.checksum",
        "h.10.19.data",
        "h.10.19.data.checksum",
        "h.10.19.index",
        "h.10.19.index.checksum",
        "h.data",
        "h.tmp",
    ]
    assert [names(group) for group in classify(found, base)] == [
        ["h.0.9.data", "h.10.19.data"],
        ["h.0.9.index", "h.10.19.index"],
        ["h.0.9.data.checksum", "h.10.19.data.checksum"],
        ["h.0.9.index.checksum", "h.10.19.index.checksum"],
    ]
    # the order of ``paths`` is kept; names of another base are dropped
    assert classify(list(reversed(found)), base)[0] == list(reversed(classify(found, base)[0]))
    assert classify(found, base + "h") == ([], [], [], [])


# -- completeness ---------------------------------------------------------------------------


def write_set(base: str, start: int, end: int, skip: tuple[str, ...] = ()) -> str:
    """Touch the four files of a set, except those whose suffix is in ``skip``."""
    data = data_filename(base + ".data", start, end)
    for path, suffix in zip(set_files(data), ("data", "index", "data.checksum", "index.checksum")):
        if suffix not in skip:
            touch(path)
    return data


def test_is_complete_set(tmp_path):
    base = str(tmp_path / "h")
    assert fileset.is_complete_set(write_set(base, 0, 3))
    for suffix in ("data", "index", "data.checksum", "index.checksum"):
        assert not fileset.is_complete_set(write_set(base + suffix, 0, 3, skip=(suffix,)))


def test_complete_output(tmp_path):
    base = str(tmp_path / "h")
    data = write_set(base, 0, 3)
    output = OutputFiles.on_disk(base)
    assert output.data == (data,)
    assert output.incomplete_reason() == ""
    assert output.sets() == [SetState(data, 0, 3, (), None)]
    assert output.sets()[0].complete and output.sets()[0].contiguous
    assert output.orphan_indexes() == []


def test_missing_output(tmp_path):
    base = str(tmp_path / "h")
    touch(base + ".data", temporary_name(base + ".0.3.data"))  # not set files
    output = OutputFiles.on_disk(base)
    assert output == OutputFiles(base, (), (), (), ())
    assert output.incomplete_reason() == "missing"
    assert output.sets() == []


@pytest.mark.parametrize(
    ("skip", "reason", "missing"),
    [
        (("index",), "1 data file(s) but 0 index file(s)", ("h.0.3.index",)),
        (("data.checksum",), "no checksum for h.0.3.data", ("h.0.3.data.checksum",)),
        (("index.checksum",), "no checksum for h.0.3.index", ("h.0.3.index.checksum",)),
        (
            ("data.checksum", "index.checksum"),
            "no checksum for h.0.3.data",
            ("h.0.3.data.checksum", "h.0.3.index.checksum"),
        ),
    ],
)
def test_incomplete_output(tmp_path, skip, reason, missing):
    base = str(tmp_path / "h")
    write_set(base, 0, 3, skip=skip)
    output = OutputFiles.on_disk(base)
    assert output.incomplete_reason() == reason
    (state,) = output.sets()
    assert not state.complete
    assert names(state.missing) == list(missing)


def test_orphan_index(tmp_path):
    base = str(tmp_path / "h")
    write_set(base, 0, 3)
    write_set(base, 4, 7, skip=("data", "data.checksum"))
    output = OutputFiles.on_disk(base)
    assert output.incomplete_reason() == "1 data file(s) but 2 index file(s)"
    assert [s.complete for s in output.sets()] == [True]
    assert names(output.orphan_indexes()) == ["h.4.7.index"]


def test_split_contiguous_output(tmp_path):
    base = str(tmp_path / "h")
    # name order (10 < 5) is not range order
    datas = [write_set(base, s, e) for s, e in [(10, 19), (0, 4), (5, 9)]]
    output = OutputFiles.on_disk(base)
    assert output.incomplete_reason() == ""
    states = output.sets()
    assert [(s.start, s.end, s.previous_end) for s in states] == [
        (0, 4, None),
        (5, 9, 4),
        (10, 19, 9),
    ]
    assert [s.data for s in states] == [datas[1], datas[2], datas[0]]
    assert all(s.complete and s.contiguous for s in states)


def test_split_non_contiguous_output(tmp_path):
    base = str(tmp_path / "h")
    for s, e in [(0, 4), (6, 9), (10, 19)]:
        write_set(base, s, e)
    output = OutputFiles.on_disk(base)
    assert output.incomplete_reason() == ""  # the planner counts files, like beat.core
    states = output.sets()
    assert [s.contiguous for s in states] == [True, False, True]
    assert (states[1].start, states[1].previous_end) == (6, 4)


def test_an_incomplete_set_does_not_count_for_contiguity(tmp_path):
    base = str(tmp_path / "h")
    write_set(base, 0, 4)
    write_set(base, 5, 9, skip=("index.checksum",))
    write_set(base, 10, 19)
    states = OutputFiles.on_disk(base).sets()
    assert [(s.complete, s.previous_end) for s in states] == [
        (True, None),
        (False, 4),
        (True, 4),
    ]
    assert not states[2].contiguous
    assert OutputFiles.on_disk(base).incomplete_reason() == "no checksum for h.5.9.index"


def test_incomplete_reason_verifies_checksums(tmp_path):
    base = str(tmp_path / "h")
    data = data_filename(base + ".data", 0, 0)
    for path, content in zip(set_files(data), [b"d", b"0 0\n"]):
        with open(path, "wb") as f:
            f.write(content)
        with open(checksum_filename(path), "w") as f:
            f.write(hashlib.sha256(content).hexdigest())
    output = OutputFiles.on_disk(base)
    assert output.incomplete_reason(verify=True) == ""
    os.chmod(data, 0o644)
    with open(data, "wb") as f:
        f.write(b"x")
    assert output.incomplete_reason() == ""
    assert output.incomplete_reason(verify=True) == "checksum mismatch for h.0.0.data"


def test_output_files_of_relative_paths():
    files = ["ab/h.0.1.data", "ab/h.0.1.index", "ab/h.0.1.data.checksum", "ab/hh.0.1.data"]
    output = OutputFiles.of("ab/h", files)
    assert output.data == ("ab/h.0.1.data",)
    assert [s.missing for s in output.sets()] == [("ab/h.0.1.index.checksum",)]


# -- the atomic writer ----------------------------------------------------------------------


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_atomic(tmp_path):
    path = str(tmp_path / "x.db")
    fileset.write_atomic(path, b"[1, 2]")
    with open(path, "rb") as f:
        assert f.read() == b"[1, 2]"
    # permission bits, not a failing write: these machines run as root
    assert mode(path) == fileset.READ_ONLY == 0o444
    assert os.listdir(tmp_path) == ["x.db"]
    # a finished (read-only) file is replaced as a whole
    fileset.write_atomic(path, b"[]", fsync=False)
    with open(path, "rb") as f:
        assert f.read() == b"[]"
    assert mode(path) == 0o444
    assert os.listdir(tmp_path) == ["x.db"]


def test_write_atomic_keeps_the_usual_mode_when_asked(tmp_path):
    path = str(tmp_path / "probe")
    umask = os.umask(0o022)
    try:
        fileset.write_atomic(path, b"token", read_only=False)
    finally:
        os.umask(umask)
    assert mode(path) == 0o644


def test_make_read_only(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"")
    os.chmod(path, 0o666)
    fileset.make_read_only(str(path))
    assert mode(path) == 0o444


@pytest.mark.parametrize("failing", ["fsync", "chmod", "replace"])
def test_write_atomic_failing_midway_leaves_no_file(tmp_path, monkeypatch, failing):
    old, new = str(tmp_path / "old.db"), str(tmp_path / "new.db")
    fileset.write_atomic(old, b"old")

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # an interruption, not only an error

    monkeypatch.setattr(os, failing, fail)
    for path in (old, new):
        with pytest.raises(KeyboardInterrupt):
            fileset.write_atomic(path, b"new")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["old.db"]  # no final file, no temporary
    with open(old, "rb") as f:
        assert f.read() == b"old"


_KILLED_WRITER = """
import os, sys
from beat_backend._cache import fileset, maintenance

def crash(fd):
    os._exit(3)  # killed after writing, before the rename

os.fsync = crash
fileset.write_atomic(sys.argv[1], b"0 1\\n2 3\\n")
"""


def test_a_killed_writer_leaves_only_a_hidden_temporary(tmp_path):
    cache = str(tmp_path)
    base = os.path.join(cache, "ab", "cd", "0123")
    final = index_filename(data_filename(base + ".data", 0, 3))
    os.makedirs(os.path.dirname(base))
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, final])
    assert child.wait(timeout=120) == 3
    (name,) = os.listdir(os.path.dirname(base))
    assert name.startswith(".0123.0.3.index.") and temporary_pid(name) == child.pid
    assert not maintenance.writer_alive(os.path.join(os.path.dirname(base), name))
    # no reader nor the planner sees anything
    assert output_paths(base) == []
    assert getAllFilenames(base + ".data") == ([], [], [], [])
    assert OutputFiles.on_disk(base).incomplete_reason() == "missing"
    assert glob.glob(base + "*") == []
    with pytest.raises(RuntimeError, match="^No index file matching"):
        load_data_index(cache, "ab/cd/0123.data")


def test_remove_dead_temporaries_of_one_output(tmp_path):
    # what a run does for an output it reruns, or stopped (Ctrl-C): only the temporaries
    # of that output whose writer is gone
    base = os.path.join(str(tmp_path), "ab", "cd", "0123")
    folder = os.path.dirname(base)
    os.makedirs(folder)
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, index_filename(data_filename(base + ".data", 0, 3))]
    )
    assert child.wait(timeout=120) == 3
    (dead,) = os.listdir(folder)
    alive = f".0123.0.3.data.{os.getpid()}.beef.tmp"  # this process: a live writer
    other = f".0124.0.3.data.{child.pid}.beef.tmp"  # another output's
    finished = "0123.0.3.data"
    for name in (alive, other, finished):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"x")
    assert maintenance.remove_dead_temporaries(base) == [os.path.join(folder, dead)]
    assert sorted(os.listdir(folder)) == sorted([alive, other, finished])
    assert maintenance.remove_dead_temporaries(os.path.join(str(tmp_path), "missing", "x")) == []


def test_temporaries_never_match_a_readers_glob(tmp_path, monkeypatch):
    cache = str(tmp_path)
    base = os.path.join(cache, "ab", "0123")
    os.makedirs(os.path.dirname(base))
    seen = []
    replace = os.replace

    def look(src, dst):  # what readers see while the temporary is complete
        seen.append(
            (
                os.path.basename(src),
                output_paths(base),
                getAllFilenames(base + ".data"),
                glob.glob(glob.escape(base) + "*.index"),
            )
        )
        replace(src, dst)

    monkeypatch.setattr(os, "replace", look)
    data = data_filename(base + ".data", 0, 3)
    for path in set_files(data):
        fileset.write_atomic(path, b"x")
    for name, found, groups, indexes in seen:
        assert name.startswith(".") and temporary_pid(name) == os.getpid()
        assert parse_set_file(name) is None
        assert all(not p.endswith(".tmp") for p in found)
        assert all(not p.endswith(".tmp") for group in groups for p in group)
        assert indexes in ([], [index_filename(data)])
    assert seen[0][1] == [] and seen[0][2] == ([], [], [], [])
    assert getAllFilenames(base + ".data") == tuple([p] for p in set_files(data))


def test_create_temporary_skips_taken_names(tmp_path, monkeypatch):
    final = str(tmp_path / "x.db")
    taken = str(tmp_path / f".x.db.{os.getpid()}.00000000.tmp")
    touch(taken)
    fresh = temporary_name(final)
    names_ = iter([taken, taken, fresh])
    monkeypatch.setattr(fileset, "temporary_name", lambda _: next(names_))
    fd, path = fileset.create_temporary(final)
    os.close(fd)
    assert path == fresh
    monkeypatch.setattr(fileset, "temporary_name", lambda _: taken)
    with pytest.raises(
        FileExistsError, match=r"^cannot create a temporary file next to `.*x\.db'$"
    ):
        fileset.create_temporary(final)


def test_remove_temporary(tmp_path):
    path = tmp_path / ".x.1.ab.tmp"
    path.write_bytes(b"")
    fileset.remove_temporary(str(path))
    fileset.remove_temporary(str(path))  # already gone
    assert not path.exists()
