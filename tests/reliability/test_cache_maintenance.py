"""An immutable, verifiable cache: read-only files, ``cache verify``, ``cache gc``, two writers.

* finished files (sets written by a sink, database index files, everything a
  run leaves) are read-only — checked on the mode bits, since these machines
  run as root, where read-only files can still be written;
* ``beat-backend cache verify`` reports each output ok / corrupt / incomplete
  (exit status 1 if any is not ok), ``--json``, progress on stderr;
* ``beat-backend cache gc`` keeps the temporaries of a live writer (a
  subprocess blocked in the middle of writing), removes those of a killed one
  (reaped or zombie), stale locks, orphan index fingerprints and empty
  folders; ``--dry-run`` removes nothing;
* two processes writing the same block output at once leave one complete,
  verifiable set — the bytes of one of them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import _scripts
import pytest
from _cachekit import load_format, make_prefix
from _corpus import copy_example_prefix

from beat_backend._cache import maintenance
from beat_backend._cache.sink import CachedDataSink, publication_lock
from beat_backend._cli.main import main as cli_main
from beat_backend._execution.runner import run_experiment

LINEAR = "example/example/two_classes/1/linear_small"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def write_set(cache: Path, prefix: str, base: str = "ab/cd/ef/0123", n: int = 4) -> Path:
    single = load_format(prefix)
    target = cache / f"{base}.data"
    target.parent.mkdir(parents=True, exist_ok=True)
    sink = CachedDataSink()
    assert sink.setup(str(target), single, 0, n - 1)
    for i in range(n):
        sink.write(single.type(value=i), i, i)
    assert sink.close()
    return cache / f"{base}.0.{n - 1}.data"


@pytest.fixture
def prefix(tmp_path) -> str:
    return make_prefix(tmp_path / "prefix")


@pytest.fixture
def cache(tmp_path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


# -- read-only files ------------------------------------------------------------------------


def test_finished_sets_are_read_only_and_temporaries_are_not(cache, prefix):
    single = load_format(prefix)
    sink = CachedDataSink()
    assert sink.setup(str(cache / "x.data"), single, 0, 1)
    sink.write(single.type(value=1), 0, 1)
    temporaries = sorted(cache.iterdir())
    assert len(temporaries) == 2 and all(mode(p) & stat.S_IWUSR for p in temporaries)
    assert sink.close()
    names = sorted(p.name for p in cache.iterdir())
    assert names == ["x.0.1.data", "x.0.1.data.checksum", "x.0.1.index", "x.0.1.index.checksum"]
    for name in names:
        assert mode(cache / name) == 0o444, name


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, Path]:
    """The small linear experiment run once: ``(prefix, cache)``."""
    base = tmp_path_factory.mktemp("maintenance")
    prefix = copy_example_prefix(base / "prefix")
    cache = base / "cache"
    report = run_experiment(str(prefix), LINEAR, str(cache))
    assert report.ok
    return prefix, cache


def test_every_file_a_run_leaves_is_read_only(ran):
    _, cache = ran
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and any(p.suffix == ".data" for p in files)
    assert {str(p.relative_to(cache)): oct(mode(p)) for p in files if mode(p) != 0o444} == {}
    assert not [p for p in files if p.name.startswith(".")], "temporaries or locks left behind"


# -- verify ----------------------------------------------------------------------------------


def verify(cache: Path, *extra: str, capsys) -> tuple[int, str, str]:
    status = cli_main(["cache", "verify", "--cache", str(cache), *extra])
    out, err = capsys.readouterr()
    return status, out, err


def test_verify_a_sound_cache(ran, capsys):
    _, cache = ran
    status, out, err = verify(cache, capsys=capsys)
    assert status == 0, out
    lines = out.splitlines()
    assert lines[-1].startswith("checked ") and "0 corrupt, 0 incomplete" in lines[-1]
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert "verifying:" in err  # progress on stderr (plain lines: not a terminal)


def test_verify_reports_corrupt_and_incomplete_outputs(tmp_path, prefix, capsys):
    cache = tmp_path / "cache"
    good = write_set(cache, prefix, "aa/aa/aa/good")
    flipped = write_set(cache, prefix, "bb/bb/bb/flipped")
    os.chmod(flipped, 0o644)
    content = bytearray(flipped.read_bytes())
    content[-2] ^= 1
    flipped.write_bytes(bytes(content))
    partial = write_set(cache, prefix, "cc/cc/cc/partial")
    os.unlink(str(partial) + ".checksum")
    lying = write_set(cache, prefix, "dd/dd/dd/lying")
    index = lying.with_suffix(".index")
    os.chmod(index, 0o644)
    index.write_bytes(b"0 0\n1 2\n3 3\n")
    checksum = Path(str(index) + ".checksum")
    os.chmod(checksum, 0o644)
    checksum.write_text(maintenance.file_sha256(str(index)))
    (cache / "ee" / "ee" / "ee").mkdir(parents=True)
    (cache / "ee/ee/ee/broken.db").write_text("[{")

    status, out, _ = verify(cache, "--json", capsys=capsys)
    assert status == 1
    document = json.loads(out)
    verdicts = {o["path"]: o for o in document["outputs"]}
    assert verdicts["aa/aa/aa/good"]["status"] == "ok"
    assert verdicts["bb/bb/bb/flipped"]["status"] == "corrupt"
    assert "checksum" in verdicts["bb/bb/bb/flipped"]["problems"][0]
    assert verdicts["cc/cc/cc/partial"]["status"] == "incomplete"
    assert "partial.0.3.data.checksum" in verdicts["cc/cc/cc/partial"]["problems"][0]
    assert verdicts["dd/dd/dd/lying"]["status"] == "corrupt"
    assert "disagrees" in verdicts["dd/dd/dd/lying"]["problems"][0]
    assert verdicts["ee/ee/ee/broken.db"]["status"] == "corrupt"
    assert (document["ok"], document["corrupt"], document["incomplete"]) == (1, 3, 1)
    assert good.exists()

    status, out, _ = verify(cache, capsys=capsys)
    assert status == 1
    assert "corrupt     bb/bb/bb/flipped" in out and "incomplete  cc/cc/cc/partial" in out
    assert out.splitlines()[-1].endswith("1 ok, 3 corrupt, 1 incomplete")


def test_verify_knows_the_index_fingerprints(ran, tmp_path, capsys):
    _, source = ran
    cache = tmp_path / "cache"
    shutil.copytree(source, cache)
    indexes = sorted(cache.rglob("*.db"))
    assert len(indexes) == 2  # small/train, small/test
    assert sorted(cache.rglob("*.db.fingerprint")) == [Path(f"{i}.fingerprint") for i in indexes]
    status, out, _ = verify(cache, "--json", capsys=capsys)
    assert status == 0, out
    verdicts = {o["path"]: o for o in json.loads(out)["outputs"]}
    for index in indexes:  # one verdict per index, its sidecar with it
        relative = str(index.relative_to(cache))
        assert verdicts[relative]["status"] == "ok" and verdicts[relative]["files"] == 2
    assert not any(path.endswith(".fingerprint") for path in verdicts)

    malformed, orphan = indexes
    sidecar = Path(f"{malformed}.fingerprint")
    os.chmod(sidecar, 0o644)
    sidecar.write_text("{")
    os.unlink(orphan)
    status, out, _ = verify(cache, "--json", capsys=capsys)
    assert status == 1
    verdicts = {o["path"]: o for o in json.loads(out)["outputs"]}
    bad = verdicts[str(malformed.relative_to(cache))]
    assert bad["status"] == "corrupt"
    assert bad["problems"] == [f"`{sidecar.relative_to(cache)}': not JSON ({_json_error('{')})"]
    gone = verdicts[str(orphan.relative_to(cache))]
    assert gone["status"] == "incomplete" and gone["files"] == 1
    assert gone["problems"] == [
        f"`{orphan.relative_to(cache)}.fingerprint': its index file "
        f"`{orphan.relative_to(cache)}' is gone (gc removes it)"
    ]


def _json_error(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        return str(exc)
    raise AssertionError(text)


def test_verify_an_empty_or_missing_cache(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status, out, _ = verify(tmp_path / "empty", capsys=capsys)
    assert status == 0 and "checked 0 outputs" in out
    status, _, err = verify(tmp_path / "nothing", capsys=capsys)
    assert status == 2 and "is not a directory" in err


# -- gc ------------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """\
    import sys
    sys.path.insert(0, {tests!r})
    from _cachekit import load_format
    from beat_backend._cache.sink import CachedDataSink

    single = load_format({prefix!r})
    sink = CachedDataSink()
    assert sink.setup({target!r}, single, 0, 9)
    for i in range(5):
        sink.write(single.type(value=i), i, i)
    sink.data_file.flush()
    sink.index_file.flush()
    print("ready", flush=True)
    sys.stdin.readline()  # blocked in the middle of writing
    for i in range(5, 10):
        sink.write(single.type(value=i), i, i)
    assert sink.close()
    print("closed", flush=True)
    """
)


def start_writer(prefix: str, target: Path) -> subprocess.Popen:
    tests = str(Path(__file__).resolve().parent.parent)
    code = WRITER.format(tests=tests, prefix=prefix, target=str(target))
    process = _scripts.spawn(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout.readline() == b"ready\n", process.stderr.read()
    return process


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def gc(cache: Path, *extra: str, capsys) -> dict:
    status = cli_main(["cache", "gc", "--cache", str(cache), "--json", *extra])
    out, _ = capsys.readouterr()
    assert status == 0
    return json.loads(out)


def test_gc_keeps_a_live_writers_temporaries_and_removes_a_killed_ones(cache, prefix, capsys):
    folder = cache / "ab" / "cd" / "ef"
    folder.mkdir(parents=True)
    live = start_writer(prefix, folder / "live.data")
    dead = start_writer(prefix, folder / "dead.data")
    zombie = start_writer(prefix, folder / "zombie.data")
    try:
        assert len(hidden(folder)) == 6
        dead.kill()
        dead.wait()  # reaped
        zombie.kill()  # not reaped: a zombie still has its pid
        time.sleep(0.2)
        assert _scripts.alive([zombie.pid]) == []

        report = gc(cache, "--dry-run", capsys=capsys)
        assert len(report["removed"]) == 4 and len(report["kept"]) == 2
        assert len(hidden(folder)) == 6, "--dry-run removed something"

        report = gc(cache, capsys=capsys)
        assert sorted(Path(p).name.split(".")[1] for p in report["removed"]) == [
            "dead",
            "dead",
            "zombie",
            "zombie",
        ]
        assert all(
            f".live.0.9.{ext}.{live.pid}." in n for n, ext in zip(hidden(folder), ("data", "index"))
        )

        live.stdin.write(b"go\n")  # the live writer finishes undisturbed
        live.stdin.flush()
        assert live.stdout.readline() == b"closed\n"
        assert live.wait(10) == 0
        maintenance.verify_file_set(str(folder / "live.0.9.data"))
        assert hidden(folder) == []
    finally:
        for process in (live, dead, zombie):
            if process.poll() is None:
                process.kill()
            process.communicate()  # reaps it and closes its pipes


def test_gc_keeps_unlocked_temporaries_of_live_processes_and_drops_reused_pids(cache, capsys):
    folder = cache / "aa"
    folder.mkdir()
    mine = folder / f".x.db.{os.getpid()}.0.tmp"  # an index being written by this process
    mine.write_text("[]")
    gone = folder / ".y.data.999999999.0badc0de.tmp"  # no such pid
    gone.write_text("")
    reused = folder / ".z.data.1.0badc0de.tmp"  # pid 1 started long before this file...
    reused.write_text("")
    os.utime(reused, (1, 1))  # ...no: the file is older than the process with that pid
    report = gc(cache, capsys=capsys)
    assert sorted(Path(p).name for p in report["removed"]) == [gone.name, reused.name]
    assert [Path(p).name for p in report["kept"]] == [mine.name]


def test_gc_removes_stale_locks_and_empty_folders_but_not_fresh_ones(cache, prefix, capsys):
    write_set(cache, prefix, "ab/cd/ef/kept")
    old = cache / "11" / "22" / "33"
    old.mkdir(parents=True)
    fresh = cache / "44" / "55"
    fresh.mkdir(parents=True)
    stale = cache / "ab" / "cd" / "ef" / ".kept.0.3.data.lock"
    stale.write_text("")
    for folder in (old, old.parent, old.parent.parent):
        os.utime(folder, (time.time() - 3600, time.time() - 3600))
    report = gc(cache, capsys=capsys)
    assert report["removed"] == ["ab/cd/ef/.kept.0.3.data.lock"]
    assert sorted(report["folders"]) == ["11", "11/22", "11/22/33"]
    assert fresh.is_dir() and not old.parent.parent.exists()
    assert (cache / "ab/cd/ef/kept.0.3.data").exists()


def test_gc_removes_orphan_fingerprints_and_their_dead_temporaries(cache, capsys):
    folder = cache / "ab" / "cd"
    folder.mkdir(parents=True)
    index = folder / "kept.db"
    index.write_text("[]")
    sidecar = folder / "kept.db.fingerprint"
    sidecar.write_text("{}")
    orphan = folder / "orphan.db.fingerprint"  # its index file is gone
    orphan.write_text("{}")
    dead = folder / ".kept.db.fingerprint.999999999.0badc0de.tmp"  # a killed index script's
    dead.write_text("")
    expected = ["ab/cd/.kept.db.fingerprint.999999999.0badc0de.tmp", "ab/cd/orphan.db.fingerprint"]
    report = gc(cache, "--dry-run", capsys=capsys)
    assert (report["removed"], report["kept"]) == (expected, [])
    assert orphan.exists() and dead.exists()
    report = gc(cache, capsys=capsys)
    assert (report["removed"], report["kept"]) == (expected, [])
    assert sorted(p.name for p in folder.iterdir()) == ["kept.db", "kept.db.fingerprint"]


def test_gc_never_removes_a_held_lock(cache, prefix, capsys):
    target = cache / "q.0.3.data"
    with publication_lock(str(target)):
        report = gc(cache, capsys=capsys)
        assert report["removed"] == [] and report["kept"] == [".q.0.3.data.lock"]
    assert hidden(cache) == []


# -- two writers of one output ---------------------------------------------------------------

RACER = textwrap.dedent(
    """\
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from _cachekit import load_format
    from beat_backend._cache.sink import CachedDataSink

    single = load_format({prefix!r})
    sink = CachedDataSink()
    assert sink.setup({target!r}, single, 0, 199)
    for i in range(200):
        sink.write(single.type(value=i * {factor}), i, i)
    while not os.path.exists({go!r}):  # both close at the same moment
        time.sleep(0.001)
    assert sink.close()
    """
)


@pytest.mark.parametrize("factors", [(1, 1), (1, 2)], ids=["same-bytes", "different-bytes"])
@pytest.mark.parametrize("round_", range(3))
def test_two_writers_of_one_output_leave_one_complete_set(tmp_path, prefix, factors, round_):
    cache = tmp_path / "cache"
    cache.mkdir()
    target = cache / "out.data"
    go = tmp_path / "go"
    tests = str(Path(__file__).resolve().parent.parent)
    writers = [
        _scripts.spawn(
            [
                sys.executable,
                "-c",
                RACER.format(tests=tests, prefix=prefix, target=str(target), factor=f, go=str(go)),
            ]
        )
        for f in factors
    ]
    time.sleep(0.5 + 0.05 * round_)
    go.write_text("")
    for writer in writers:
        _, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err
    data = cache / "out.0.199.data"
    maintenance.verify_file_set(str(data))
    assert sorted(p.name for p in cache.iterdir()) == [
        "out.0.199.data",
        "out.0.199.data.checksum",
        "out.0.199.index",
        "out.0.199.index.checksum",
    ]
    from beat_backend._cache.source import CachedDataSource

    source = CachedDataSource()
    assert source.setup(str(target), prefix)
    values = [int(d.value) for d, _, _ in source]
    source.close()
    assert values in ([i * f for i in range(200)] for f in factors)
    for name in os.listdir(cache):
        assert mode(cache / name) == 0o444


def test_a_killed_publisher_leaves_an_incomplete_set_that_the_next_writer_replaces(
    cache, prefix, monkeypatch
):
    first = write_set(cache, prefix, "o")
    import beat_backend._cache.sink as sink_module

    calls = []
    real = sink_module.publish_text

    def dying(path, text):  # dies after renaming the data files, before the checksums
        calls.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(sink_module, "publish_text", dying)
    single = load_format(prefix)
    sink = CachedDataSink()
    assert sink.setup(str(cache / "o.data"), single, 0, 3)
    for i in range(4):
        sink.write(single.type(value=100 + i), i, i)
    with pytest.raises(KeyboardInterrupt):
        sink.close()
    status = maintenance.verify_output(str(cache), "o")
    assert status.status == "incomplete", status  # old checksums went first
    monkeypatch.setattr(sink_module, "publish_text", real)
    write_set(cache, prefix, "o")
    assert maintenance.verify_output(str(cache), "o").status == "ok"
    assert first.exists() and hidden(cache) == []
