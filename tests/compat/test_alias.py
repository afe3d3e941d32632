"""The old import name ``beat.backend.python``: resolved from interpreter start.

Every check runs in a fresh interpreter (a subprocess): what matters is what
``import beat.backend.python...`` gives before anything imported beat_backend,
as in ``python -c "import beat.core.algorithm"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from _paths import REPO

import _beat_backend_alias
from beat_backend import _alias

PTH_NAME = "beat_backend-alias.pth"


def _python(code: str, *args: str, env: dict | None = None, cwd=None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON document."""
    done = subprocess.run(
        [sys.executable, *args, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _installed() -> bool:
    purelib = Path(sysconfig.get_paths()["purelib"])
    return any(purelib.glob("beat_backend-*.dist-info"))


needs_install = pytest.mark.skipif(
    not _installed(), reason="beat_backend is not installed (pip install -e .)"
)

# what a fresh interpreter gives for the old names, before importing beat_backend
_FRESH = """\
import json, sys
before = sorted(n for n in ("beat_backend", "numpy", "zmq") if n in sys.modules)
hook = "_beat_backend_alias" in sys.modules
import beat.backend.python.database as old_database
from beat.backend.python.database import View
import beat_backend.database
print(json.dumps({
    "before": before,
    "hook": hook,
    "same": old_database is beat_backend.database,
    "view": View is beat_backend.database.View,
    "finders": sum(type(f).__name__ == "AliasFinder" for f in sys.meta_path),
}))
"""


@needs_install
def test_pth_file_is_installed_beside_the_package():
    purelib = Path(sysconfig.get_paths()["purelib"])
    assert (purelib / PTH_NAME).read_text() == "import _beat_backend_alias\n"
    # listed in the install RECORD: pip uninstall removes it
    (record,) = purelib.glob("beat_backend-*.dist-info/RECORD")
    assert any(line.split(",")[0] == PTH_NAME for line in record.read_text().splitlines())


@needs_install
def test_fresh_interpreter_resolves_the_old_name_first(tmp_path):
    # cwd elsewhere: the repository must not be what makes it work
    report = _python(_FRESH, cwd=tmp_path)
    assert report == {
        "before": [],
        "hook": True,
        "same": True,
        "view": True,
        "finders": 1,
    }


def test_a_pth_line_installs_the_finder_at_start(tmp_path):
    # the mechanism without relying on this environment's install: a site dir
    # holding the same .pth, processed by site.addsitedir before anything else
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / PTH_NAME).write_text("import _beat_backend_alias\n")
    # -S: no site-packages .pth runs; numpy & co. come through PYTHONPATH
    paths = sysconfig.get_paths()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), paths["purelib"], paths["platlib"]]),
    }
    code = f"import site; site.addsitedir({str(site_dir)!r})\n" + _FRESH
    report = _python(code, "-S", env=env, cwd=tmp_path)
    assert report == {"before": [], "hook": True, "same": True, "view": True, "finders": 1}


@needs_install
def test_the_hook_imports_nothing_else():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line.split("|") for line in done.stderr.splitlines() if line.count("|") == 2]
    names = [fields[2].rstrip() for fields in lines]
    position = next(i for i, n in enumerate(names) if n.strip() == "_beat_backend_alias")
    depth = len(names[position]) - len(names[position].lstrip())
    previous = names[position - 1] if position else ""
    # -X importtime lists a module's own imports just before it, indented deeper
    assert len(previous) - len(previous.lstrip()) <= depth, names[: position + 1]
    loaded = {n.strip() for n in names}
    assert not loaded & {"beat_backend", "numpy", "zmq"}


def test_the_package_and_the_hook_share_one_finder():
    assert _alias.AliasFinder is _beat_backend_alias.AliasFinder
    finders = [f for f in sys.meta_path if isinstance(f, _alias.AliasFinder)]
    assert finders == [_alias.installed()]
    _alias.install()  # idempotent
    assert [f for f in sys.meta_path if isinstance(f, _alias.AliasFinder)] == finders


def _fake_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


_NAMESPACE = "from pkgutil import extend_path\n__path__ = extend_path(__path__, __name__)\n"


def test_a_platform_namespace_beat_package_keeps_its_own_modules(tmp_path):
    # beat.core ships beat/__init__.py (pkgutil namespace) and beat/core, no beat/backend
    _fake_package(
        tmp_path,
        {
            "beat/__init__.py": _NAMESPACE,
            "beat/core/__init__.py": "",
            "beat/core/algorithm.py": """\
                from beat.backend.python.algorithm import Algorithm as BackendAlgorithm
                class Algorithm(BackendAlgorithm):
                    pass
            """,
        },
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    report = _python(
        """\
        import json, sys
        import _beat_backend_alias  # what the .pth does
        import beat.core.algorithm
        import beat, beat_backend.algorithm
        print(json.dumps({
            "beat": beat.__file__,
            "subclass": issubclass(beat.core.algorithm.Algorithm, beat_backend.algorithm.Algorithm),
            "backend_path": list(sys.modules["beat.backend"].__path__),
        }))
        """,
        env=env,
        cwd=tmp_path,
    )
    assert report == {
        "beat": str(tmp_path / "beat" / "__init__.py"),
        "subclass": True,
        "backend_path": [],
    }


def test_the_original_package_wins_when_installed(tmp_path):
    _fake_package(
        tmp_path,
        {
            "beat/__init__.py": _NAMESPACE,
            "beat/backend/__init__.py": _NAMESPACE,
            "beat/backend/python/__init__.py": "ORIGINAL = True\n",
            "beat/backend/python/hash.py": "ORIGINAL = True\n",
        },
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    report = _python(
        """\
        import json, sys
        import _beat_backend_alias
        import beat_backend
        import beat.backend.python as old
        import beat.backend.python.hash as old_hash
        print(json.dumps({"original": old.ORIGINAL, "hash": old_hash.ORIGINAL,
                          "ours": old is beat_backend}))
        """,
        env=env,
        cwd=tmp_path,
    )
    assert report == {"original": True, "hash": True, "ours": False}


def test_a_missing_old_submodule_is_a_module_not_found_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    report = _python(
        """\
        import json
        import _beat_backend_alias
        try:
            import beat.backend.python.nothing_here
        except ModuleNotFoundError as exc:
            print(json.dumps({"name": exc.name}))
        """,
        env=env,
        cwd=tmp_path,
    )
    assert report == {"name": "beat_backend.nothing_here"}
