"""End to end: what ``beat-backend run`` takes from its environment (issue #17, point 7).

The console script runs in a subprocess with a temporary ``HOME`` (and
``XDG_CACHE_HOME``), from a folder holding its own ``./prefix``:

* without ``--cache``, the cache is the per-user one: ``$XDG_CACHE_HOME/beat_backend``
  when that is set, else ``~/.cache/beat_backend``;
* without ``--prefix``, ``$BEAT_PREFIX`` is the prefix (before ``./prefix``);
  ``--prefix`` wins over it;
* an invalid ``BEAT_BACKEND_CONNECT_TIMEOUT`` refuses the run before anything runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _paths import EXAMPLE_PREFIX

SMALL = "example/example/two_classes/1/linear_small"
SCRIPT = shutil.which("beat-backend", path=os.path.dirname(sys.executable)) or "beat-backend"
BLOCKS = ["normalize_train", "training", "normalize_test", "score", "analysis"]


def _environment(home: Path, **extra: str) -> dict[str, str]:
    """This environment without BEAT_* and XDG_* variables, ``HOME`` = ``home``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEAT_", "XDG_"))}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, dict | None, str]:
    """``beat-backend run --json ARGS`` in ``cwd``: status, document, stderr."""
    done = subprocess.run(
        [SCRIPT, "run", "--json", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    document = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, document, done.stderr


def statuses(document: dict) -> dict[str, str]:
    return {b["name"]: b["status"] for b in document["blocks"]}


def output_files(root: Path) -> list[str]:
    """The cache's data files (outputs and index files) under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.data") if p.is_file()) + sorted(
        str(p.relative_to(root)) for p in root.rglob("*.db") if p.is_file()
    )


@pytest.fixture
def places(tmp_path) -> dict[str, Path]:
    """``home`` (empty), ``work`` (the current folder, with a ``./prefix`` lacking the
    experiments used here), ``xdg`` (not created)."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    shutil.copytree(EXAMPLE_PREFIX, work / "prefix")
    shutil.rmtree(work / "prefix" / "experiments")
    return {"home": home, "work": work, "xdg": tmp_path / "xdg"}


@pytest.mark.parametrize("xdg", [True, False], ids=["XDG_CACHE_HOME", "HOME"])
def test_the_default_cache_is_the_per_user_one(places, xdg):
    home, work = places["home"], places["work"]
    extra = {"XDG_CACHE_HOME": str(places["xdg"])} if xdg else {}
    expected = places["xdg"] / "beat_backend" if xdg else home / ".cache" / "beat_backend"
    env = _environment(home, **extra)
    status, document, err = run(["--prefix", str(EXAMPLE_PREFIX), SMALL], work, env)
    assert status == 0, err
    assert statuses(document) == dict.fromkeys(BLOCKS, "ran")
    files = output_files(expected)
    assert len([f for f in files if f.endswith(".data")]) == len(BLOCKS)
    assert len([f for f in files if f.endswith(".db")]) == 2  # train and test sets
    # nothing anywhere else: not in ~/.cache when XDG_CACHE_HOME is set, not in the folder
    written = [p for root in (home, places["xdg"]) for p in root.rglob("*.data")]
    written += [p for p in work.rglob("*.data") if work / "prefix" not in p.parents]
    written = sorted(map(str, written))
    assert written == sorted(str(expected / f) for f in files if f.endswith(".data"))
    # a second run finds everything there
    status, document, err = run(["--prefix", str(EXAMPLE_PREFIX), SMALL], work, env)
    assert status == 0, err
    assert statuses(document) == dict.fromkeys(BLOCKS, "cached")


def _prefix_with(tmp_path: Path, name: str, experiment: str) -> Path:
    """A copy of the example prefix whose only experiment is ``SMALL`` renamed ``experiment``."""
    root = tmp_path / name
    shutil.copytree(EXAMPLE_PREFIX, root)
    source = root / "experiments" / f"{SMALL}.json"
    data = json.loads(source.read_text(encoding="utf-8"))
    shutil.rmtree(root / "experiments")
    target = root / "experiments" / f"{experiment}.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(data), encoding="utf-8")
    return root


def test_beat_prefix_selects_the_prefix_and_prefix_wins_over_it(places, tmp_path):
    home, work = places["home"], places["work"]
    from_env = "example/example/two_classes/1/from_env"
    from_option = "example/example/two_classes/1/from_option"
    env_prefix = _prefix_with(tmp_path, "env_prefix", from_env)
    option_prefix = _prefix_with(tmp_path, "option_prefix", from_option)
    env = _environment(home, BEAT_PREFIX=str(env_prefix))
    cache = ["--cache", str(tmp_path / "cache")]

    # no --prefix: $BEAT_PREFIX, not ./prefix (which lacks the experiment)
    status, document, err = run([*cache, from_env], work, env)
    assert status == 0, err
    assert document["experiment"] == from_env
    assert statuses(document) == dict.fromkeys(BLOCKS, "ran")

    # --prefix wins over $BEAT_PREFIX
    status, document, err = run([*cache, "--prefix", str(option_prefix), from_option], work, env)
    assert status == 0, err
    assert document["experiment"] == from_option
    assert statuses(document) == dict.fromkeys(BLOCKS, "cached")  # same blocks, same hashes
    status, document, err = run([*cache, "--prefix", str(option_prefix), from_env], work, env)
    assert status == 2
    assert document["error"]["kind"] == "invalid"
    assert from_env in document["error"]["message"]

    # without --prefix, the experiment only --prefix's prefix has is unknown
    status, document, err = run([*cache, from_option], work, env)
    assert status == 2
    assert from_option in document["error"]["message"]

    # without either: ./prefix
    del env["BEAT_PREFIX"]
    status, document, err = run([*cache, from_env], work, env)
    assert status == 2
    assert from_env in document["error"]["message"]


def test_an_invalid_connect_timeout_refuses_the_run(places, tmp_path):
    env = _environment(places["home"], BEAT_BACKEND_CONNECT_TIMEOUT="soon")
    cache = tmp_path / "cache"
    args = ["--prefix", str(EXAMPLE_PREFIX), "--cache", str(cache), SMALL]
    status, document, err = run(args, places["work"], env)
    message = (
        "BEAT_BACKEND_CONNECT_TIMEOUT='soon' is not valid: give a number of seconds >= 0 "
        "(0 waits forever)"
    )
    assert status == 2, err
    assert document == {
        "experiment": SMALL,
        "blocks": [],
        "results": {},
        "error": {
            "kind": "environment",
            "message": "invalid environment:",
            "problems": [{"message": message, "hints": []}],
            "text": f"invalid environment:\n  * {message}",
        },
    }
    assert not cache.exists()
    done = subprocess.run(
        [SCRIPT, "run", *args], cwd=places["work"], env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == ["invalid environment:", f"  * {message}"]
