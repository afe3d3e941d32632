"""Bad-input corpus, files on disk: cache file sets and block configurations.

Cache sets (the §2 layout of cache-files.md, written by a real sink, four
``user/single_integer/1`` records) truncated, bit-flipped, with a header that
does not match the payload, with checksums that do not match, with an index
that disagrees with the data, and split sets with gaps — read back by
``CachedDataSource``, ``load_data_index`` and ``cache verify``'s
``verify_file_set``. Configurations (runner: ``execute``/``loop_execute``,
``beat-backend block``; databases provider) missing keys or with paths that
escape the cache root — refused before any file is opened.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from _cachekit import load_format, make_prefix, rechecksum, write_file
from _corpus import Case, Reported, check_case, params

from beat_backend._cache.index import load_data_index
from beat_backend._cache.maintenance import verify_file_set
from beat_backend._cache.sink import CachedDataSink
from beat_backend._cache.source import CachedDataSource
from beat_backend._cli.main import main as cli_main
from beat_backend._core.errors import AssetNameError, CacheError, DeclarationError
from beat_backend._execution.algorithm import AlgorithmExecutor
from beat_backend._execution.config import check_provider_configuration
from beat_backend._execution.loop import LoopExecutor

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"
HEADER = b"binary\nuser/single_integer/1\n"  # 29 bytes
#: offsets in the data file: record k (0..3) has its header at 29 + 11 k, payload 6 later
RECORD = 11


# -- cache file sets ------------------------------------------------------------------------


def make_set(root: Path) -> tuple[str, str, str]:
    """``(prefix, cache, data file)``: a complete set of 4 records 0..3 (values 10..13)."""
    prefix = make_prefix(root / "prefix")
    cache = root / "cache"
    cache.mkdir()
    single = load_format(prefix)
    sink = CachedDataSink()
    assert sink.setup(str(cache / "0123.data"), single, 0, 3)
    for i in range(4):
        sink.write(single.type(value=10 + i), i, i)
    assert sink.close()
    return prefix, str(cache), str(cache / "0123.0.3.data")


def read_all(prefix: str, data: str) -> list:
    source = CachedDataSource()
    try:
        source.setup(data.replace(".0.3.data", ".data"), prefix)
        return [(d.value, s, e) for d, s, e in source]
    finally:
        source.close()


def _mutate(data: str, change) -> None:
    with open(data, "rb") as f:
        content = f.read()
    write_file(data, change(content))


def _flip(offset: int, bit: int = 1):
    def change(content: bytes) -> bytes:
        b = bytearray(content)
        b[offset] ^= bit
        return bytes(b)

    return change


def _truncate(size: int):
    return lambda content: content[:size]


#: readers: reader label -> function(prefix, cache, data file)
READERS = {
    "source": lambda prefix, cache, data: read_all(prefix, data),
    "verify": lambda prefix, cache, data: verify_file_set(data),
}


def cache_cases() -> list[Case]:
    cases = []

    def add(cid, change, error, field, value, readers=("source", "verify"), fix=False):
        for reader in readers:

            def run(root, change=change, reader=reader, fix=fix):
                prefix, cache, data = make_set(root)
                _mutate(data, change)
                if fix:  # checksum made to match: the reader must find the damage itself
                    rechecksum(data)
                READERS[reader](prefix, cache, data)

            expected = error[reader] if isinstance(error, dict) else error
            cases.append(
                Case(f"{cid}-{reader}", run, expected, "{root}/cache/0123.0.3.data", field, value)
            )

    # truncations: first the checksum sees them...
    for size in (5, 31, 37, 29 + 4 * RECORD - 1):
        add(f"truncated-{size}", _truncate(size), CacheError, "checksum", "differs from expected")
    # ...then the record scan (checksum made to match the truncated file)
    add(
        "truncated-header-rechecksum",
        _truncate(12),
        CacheError,
        "truncated header",
        "12 bytes",
        fix=True,
    )
    add(
        "truncated-record-header-rechecksum",
        _truncate(33),
        CacheError,
        "record header",
        "29",
        fix=True,
    )
    add(
        "truncated-payload-rechecksum",
        _truncate(38),
        CacheError,
        "announces 5 bytes",
        "file holds 38",
        fix=True,
    )
    # bit flips
    for label, offset in (
        ("encoding", 0),
        ("format-name", 10),
        ("record-header", 29),
        ("payload", 36),
    ):
        add(f"bitflip-{label}", _flip(offset), CacheError, "checksum", "differs from expected")
    add(
        "bitflip-encoding-rechecksum",
        _flip(0),
        {"source": RuntimeError, "verify": CacheError},
        "`cinary'",
        "cinary",
        fix=True,
    )
    add(
        "bitflip-format-name-rechecksum",
        _flip(7 + 5, 2),  # "user/single..." -> "user/qingle..."
        RuntimeError,
        "dataformat",
        "user/qingle_integer/1",
        readers=("source",),
        fix=True,
    )
    add(
        "bitflip-record-size-rechecksum",
        _flip(29 + 3 * RECORD + 4, 2),  # last record "3 3 5" -> "3 3 7": it lies about its size
        CacheError,
        "record",
        "announces 7 bytes",
        fix=True,
    )
    add(
        "bitflip-record-separator-rechecksum",
        _flip(29 + 1, 0x10),  # "0 0 5" -> "000 5"
        CacheError,
        "invalid record header",
        "offset 29",
        fix=True,
    )
    # header naming another format / another encoding than the payload's
    add(
        "header-other-format",
        lambda c: c.replace(b"user/single_integer/1", b"user/text/1", 1),
        CacheError,
        "record 0..0",
        "cannot decode",
        readers=("source",),
        fix=True,
    )
    add(
        "header-json-encoding",
        lambda c: c.replace(b"binary", b"json", 1),
        CacheError,
        "record 0..0",
        "cannot decode",
        readers=("source",),
        fix=True,
    )
    add(
        "header-unknown-format",
        lambda c: c.replace(b"user/single_integer/1", b"user/nothing/1", 1),
        RuntimeError,
        "user/nothing/1",
        "not valid",
        readers=("source",),
        fix=True,
    )

    # checksum files
    def checksum_case(cid, content, readers=("source", "verify")):
        for reader in readers:

            def run(root, content=content, reader=reader):
                prefix, cache, data = make_set(root)
                if content is None:
                    os.chmod(data + ".checksum", 0o644)
                    os.unlink(data + ".checksum")
                else:
                    write_file(data + ".checksum", content)
                READERS[reader](prefix, cache, data)

            error = CacheError if content is not None or reader == "source" else FileNotFoundError
            field, value = "checksum", "differs from expected"
            if content is None:
                field, value = (
                    ("does not match", "(1 != 0)")
                    if reader == "source"
                    else ("checksum", "No such file")
                )
            cases.append(Case(f"{cid}-{reader}", run, error, "{root}/cache/0123", field, value))

    checksum_case("checksum-other-file", hashlib.sha256(b"x").hexdigest().encode())
    checksum_case("checksum-empty", b"")
    checksum_case("checksum-garbage", b"\xff\xfe not hex")
    checksum_case("checksum-missing", None)

    # the index
    def index_case(
        cid, content, error, field, value, readers=("verify", "load_data_index"), fix=True
    ):
        for reader in readers:

            def run(root, content=content, reader=reader, fix=fix):
                prefix, cache, data = make_set(root)
                index = data.replace(".data", ".index")
                write_file(index, content)
                if fix:
                    rechecksum(index)
                if reader == "verify":
                    verify_file_set(data)
                else:
                    load_data_index(cache, "0123.data")

            expected = error[reader] if isinstance(error, dict) else error
            cases.append(
                Case(f"{cid}-{reader}", run, expected, "{root}/cache/0123.0.3.index", field, value)
            )

    index_case(
        "index-missing-line",
        b"0 0\n1 1\n2 2\n",
        CacheError,
        "disagrees",
        "record 3",
        readers=("verify",),
    )
    index_case(
        "index-other-ranges",
        b"0 1\n2 2\n3 3\n",
        CacheError,
        "disagrees",
        "index (0, 1), data (0, 0)",
        readers=("verify",),
    )
    index_case(
        "index-extra-line",
        b"0 0\n1 1\n2 2\n3 3\n4 4\n",
        CacheError,
        "disagrees",
        "record 4",
        readers=("verify",),
    )
    index_case(
        "index-invalid-line",
        b"0 0\n1 x\n2 2\n3 3\n",
        CacheError,
        "line",
        "b'1 x'",
    )
    index_case(
        "index-checksum-mismatch",
        b"0 0\n1 1\n2 2\n3 4\n",
        {"verify": CacheError, "load_data_index": RuntimeError},
        "checksum",
        "differs from expected",
        fix=False,
    )

    def misnamed(root):
        prefix, cache, data = make_set(root)
        for suffix in ("data", "index", "data.checksum", "index.checksum"):
            os.rename(f"{cache}/0123.0.3.{suffix}", f"{cache}/0123.0.9.{suffix}")
        verify_file_set(f"{cache}/0123.0.9.data")

    cases.append(
        Case(
            "set-name-range",
            misnamed,
            CacheError,
            "{root}/cache/0123.0.9.data",
            "covers 0..3",
            "announces 0..9",
        )
    )

    def gap(root):
        prefix, cache, data = make_set(root)
        for suffix in ("data", "index", "data.checksum", "index.checksum"):
            shutil.copy(f"{cache}/0123.0.3.{suffix}", f"{cache}/0123.5.8.{suffix}")
        read_all(prefix, data)

    cases.append(
        Case(
            "split-sets-gap", gap, CacheError, "{root}/cache/0123.5.8.data", "missing indices", "|"
        )
    )
    return cases


# -- configurations -------------------------------------------------------------------------

#: the loop block of the golden transcripts (cache input, output, loop section)
LOOP_BLOCK = GOLDEN / "wire" / "loop" / "run"
#: the scale block (a database input)
DB_BLOCK = GOLDEN / "experiment" / "scripts" / "scale" / "runner"


def _set(pointer, value):
    def mutate(config):
        target = config
        for part in pointer[:-1]:
            target = target[part]
        if value is _DROP:
            del target[pointer[-1]]
        else:
            target[pointer[-1]] = value

    return mutate


_DROP = object()

#: (label, block, mutation, error, field, value)
RUNNER_CONFIGS = [
    (
        "no-algorithm",
        LOOP_BLOCK,
        _set(("algorithm",), _DROP),
        DeclarationError,
        "algorithm",
        "missing",
    ),
    (
        "no-parameters",
        LOOP_BLOCK,
        _set(("parameters",), _DROP),
        DeclarationError,
        "parameters",
        "missing",
    ),
    ("no-channel", LOOP_BLOCK, _set(("channel",), _DROP), DeclarationError, "channel", "missing"),
    ("no-inputs", LOOP_BLOCK, _set(("inputs",), _DROP), DeclarationError, "inputs", "missing"),
    ("no-outputs", LOOP_BLOCK, _set(("outputs",), _DROP), DeclarationError, "outputs", "missing"),
    ("inputs-list", LOOP_BLOCK, _set(("inputs",), []), DeclarationError, "inputs", "[]"),
    (
        "input-no-path",
        LOOP_BLOCK,
        _set(("inputs", "in_main", "path"), _DROP),
        DeclarationError,
        "inputs.in_main.path",
        "missing",
    ),
    (
        "input-no-channel",
        LOOP_BLOCK,
        _set(("inputs", "in_main", "channel"), _DROP),
        DeclarationError,
        "inputs.in_main.channel",
        "missing",
    ),
    (
        "input-path-number",
        LOOP_BLOCK,
        _set(("inputs", "in_main", "path"), 42),
        DeclarationError,
        "inputs.in_main.path",
        "42",
    ),
    ("range-shape", LOOP_BLOCK, _set(("range",), [0]), DeclarationError, "range", "[0]"),
    (
        "range-text",
        LOOP_BLOCK,
        _set(("range",), ["0", "9"]),
        DeclarationError,
        "range",
        "['0', '9']",
    ),
    (
        "input-path-dotdot",
        LOOP_BLOCK,
        _set(("inputs", "in_main", "path"), "../../etc/passwd"),
        AssetNameError,
        "inputs.in_main.path",
        "`../../etc/passwd'",
    ),
    (
        "input-path-absolute",
        LOOP_BLOCK,
        _set(("inputs", "in_main", "path"), "/etc/passwd"),
        AssetNameError,
        "inputs.in_main.path",
        "`/etc/passwd'",
    ),
    (
        "output-path-dotdot",
        LOOP_BLOCK,
        _set(("outputs", "out_main", "path"), "ab/../../x"),
        AssetNameError,
        "outputs.out_main.path",
        "`ab/../../x'",
    ),
    (
        "output-path-absolute",
        LOOP_BLOCK,
        _set(("outputs", "out_main", "path"), "/tmp/x"),
        AssetNameError,
        "outputs.out_main.path",
        "`/tmp/x'",
    ),
    (
        "output-path-empty",
        LOOP_BLOCK,
        _set(("outputs", "out_main", "path"), ""),
        AssetNameError,
        "outputs.out_main.path",
        "`'",
    ),
    (
        "output-path-backslash",
        LOOP_BLOCK,
        _set(("outputs", "out_main", "path"), "a\\..\\..\\x"),
        AssetNameError,
        "outputs.out_main.path",
        "..\\x'",
    ),
    (
        "loop-no-algorithm",
        LOOP_BLOCK,
        _set(("loop", "algorithm"), _DROP),
        DeclarationError,
        "loop.algorithm",
        "missing",
    ),
    (
        "loop-output-dotdot",
        LOOP_BLOCK,
        _set(("loop", "outputs", "out_loop", "path"), "../x"),
        AssetNameError,
        "loop.outputs.out_loop.path",
        "`../x'",
    ),
    (
        "loop-input-absolute",
        LOOP_BLOCK,
        _set(("loop", "inputs", "in_loop", "path"), "/x"),
        AssetNameError,
        "loop.inputs.in_loop.path",
        "`/x'",
    ),
    (
        "db-no-protocol",
        DB_BLOCK,
        _set(("inputs", "sample", "protocol"), _DROP),
        DeclarationError,
        "inputs.sample.protocol",
        "missing",
    ),
    (
        "db-output-number",
        DB_BLOCK,
        _set(("inputs", "sample", "output"), 3),
        DeclarationError,
        "inputs.sample.output",
        "3",
    ),
    (
        "db-path-dotdot",
        DB_BLOCK,
        _set(("inputs", "sample", "path"), "../index.db"),
        AssetNameError,
        "inputs.sample.path",
        "`../index.db'",
    ),
    (
        "result-path-absolute",
        DB_BLOCK,
        lambda c: (c.pop("outputs"), c.update(result={"channel": "samples", "path": "/r"})),
        AssetNameError,
        "result.path",
        "`/r'",
    ),
    (
        "result-no-path",
        DB_BLOCK,
        lambda c: (c.pop("outputs"), c.update(result={"channel": "samples"})),
        DeclarationError,
        "result.path",
        "missing",
    ),
    (
        "not-an-object",
        LOOP_BLOCK,
        lambda c: (c.clear(), c.update(_list=True)),
        DeclarationError,
        "algorithm",
        "missing",
    ),
]


def _block_dir(root: Path, block: Path, mutate) -> Path:
    directory = root / "block"
    shutil.copytree(block, directory)
    path = directory / "configuration.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    mutate(config)
    path.write_text(json.dumps(config), encoding="utf-8")
    return directory


def _no_cache_access(root: Path) -> Path:
    """A cache root that does not exist: nothing may be read before the refusal."""
    return root / "no-cache"


def _execute(root, block, mutate):
    directory = _block_dir(root, block, mutate)
    AlgorithmExecutor(None, str(directory), cache_root=str(_no_cache_access(root)))


def _block_cli(root, block, mutate):
    """``beat-backend block DIR``: refused (status 2) with the message on stderr."""
    directory = _block_dir(root, block, mutate)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = cli_main(["block", str(directory), "--cache", str(root / "cache")])
    assert status == 2, (status, stderr.getvalue())
    assert not (root / "cache").exists(), "the cache folder was made before the refusal"
    raise Reported(stderr.getvalue())


def config_cases() -> list[Case]:
    cases = []
    for label, block, mutate, error, field, value in RUNNER_CONFIGS:
        where = "{root}/block/configuration.json"
        cases.append(
            Case(
                f"execute-{label}",
                lambda r, b=block, m=mutate: _execute(r, b, m),
                error,
                where,
                field,
                value,
            )
        )
        cases.append(
            Case(
                f"block-cli-{label}",
                lambda r, b=block, m=mutate: _block_cli(r, b, m),
                Reported,
                where,
                field,
                value,
            )
        )
        if field.startswith("loop."):

            def loop(root, block=block, mutate=mutate):
                directory = _block_dir(root, block, mutate)
                LoopExecutor(None, str(directory), cache_root=str(_no_cache_access(root)))

            cases.append(Case(f"loop-execute-{label}", loop, error, where, field, value))

    provider = json.loads(
        (GOLDEN / "experiment/scripts/scale/provider/configuration.json").read_text()
    )
    for label, mutate, error, field, value in [
        ("no-channel", _set(("channel",), _DROP), DeclarationError, "channel", "missing"),
        ("no-inputs", _set(("inputs",), _DROP), DeclarationError, "inputs", "missing"),
        (
            "no-database",
            _set(("inputs", "sample", "set"), _DROP),
            DeclarationError,
            "inputs.sample.set",
            "missing",
        ),
        (
            "path-dotdot",
            _set(("inputs", "sample", "path"), "../../x.db"),
            AssetNameError,
            "inputs.sample.path",
            "`../../x.db'",
        ),
        (
            "path-absolute",
            _set(("inputs", "sample", "path"), "/x.db"),
            AssetNameError,
            "inputs.sample.path",
            "`/x.db'",
        ),
        ("range", _set(("range",), [1, 2, 3]), DeclarationError, "range", "[1, 2, 3]"),
    ]:
        config = copy.deepcopy(provider)
        mutate(config)

        def run(root, config=config):
            check_provider_configuration(config, str(root / "configuration.json"))

        cases.append(
            Case(f"provider-{label}", run, error, "{root}/configuration.json", field, value)
        )

    def loop_section_missing(root):
        config = copy.deepcopy(provider)
        config["loop"] = {"inputs": {}}
        check_provider_configuration(config["loop"], str(root / "configuration.json"), "loop")

    cases.append(
        Case(
            "provider-loop-no-channel",
            loop_section_missing,
            DeclarationError,
            "{root}/configuration.json",
            "loop.channel",
            "missing",
        )
    )
    return cases


CASES = cache_cases() + config_cases()


@pytest.mark.parametrize("case", params(CASES))
def test_file_corpus(case, tmp_path):
    check_case(case, tmp_path)
