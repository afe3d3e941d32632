"""``beat-backend doctor``: versions, shadowing, and what the old import name gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from _paths import REPO

from beat_backend._cli import doctor
from beat_backend._cli.main import main
from beat_backend._version import __version__

INSTALLED = any(Path(sysconfig.get_paths()["purelib"]).glob("beat_backend-*.dist-info"))


def test_doctor_reports_versions_and_the_verdict(capsys):
    status = main(["doctor"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert status == 0, out
    assert lines[0] == f"{'python':<20} {sys.version.split()[0]} ({sys.executable})"
    assert lines[1].startswith(f"{'beat_backend':<20} {__version__} (")
    import numpy
    import zmq

    assert f"{'numpy':<20} {numpy.__version__}" in lines
    assert f"{'pyzmq':<20} {zmq.__version__}" in lines
    assert f"{'beat.backend.python':<20} (not installed)" in lines
    assert f"{'shadowing':<20} none (the original beat.backend.python is not installed)" in lines
    assert lines[-1] == f"{'ok':<20} beat.backend.python resolves to beat_backend"
    if INSTALLED:
        assert f"{'alias hook':<20} active at interpreter start (beat_backend-alias.pth)" in lines


def test_doctor_json(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["original_installed"] is False
    assert report["probe"]["ours"] is True
    assert report["probe"]["imported_first"] is False
    assert set(report["versions"]) == set(doctor.DISTRIBUTIONS)
    assert report["hook_at_start"] is INSTALLED


def test_doctor_names_an_original_package_that_shadows_us(tmp_path):
    # an "installed" original: its modules and its distribution metadata
    original = tmp_path / "beat" / "backend" / "python"
    original.mkdir(parents=True)
    for folder in (tmp_path / "beat", tmp_path / "beat" / "backend"):
        (folder / "__init__.py").write_text(
            "from pkgutil import extend_path\n__path__ = extend_path(__path__, __name__)\n"
        )
    (original / "__init__.py").write_text("")
    info = tmp_path / "beat.backend.python-1.7.12.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: beat.backend.python\nVersion: 1.7.12\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "beat_backend._cli.main", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{'beat.backend.python':<20} 1.7.12" in lines
    assert lines[-1] == (
        f"{'PROBLEM':<20} beat.backend.python is another package: {original / '__init__.py'}"
    )
    assert any(
        line.startswith(f"{'shadowing':<20} the original beat.backend.python is installed")
        for line in lines
    )


def test_probe_failure_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(doctor, "_PROBE", "import sys; sys.exit('probe broke')")
    report = doctor.diagnose()
    assert report["ok"] is False
    assert report["verdict"] == (
        "beat.backend.python does not resolve: the probe interpreter failed: probe broke"
    )


@pytest.mark.parametrize("jsonschema_version", ["4.26.0", "3.2.0"])
def test_jsonschema_warning_only_beside_beat_core(jsonschema_version):
    report = {
        "python": "3.11",
        "beat_backend": "x",
        "versions": {"beat.core": "1.13.5", "jsonschema": jsonschema_version},
        "hook_at_start": True,
        "original_installed": False,
        "ok": True,
        "verdict": "v",
    }
    warning = f"{'warning':<20} beat.core needs jsonschema==3.2 (its schema loader breaks on 4.x)"
    assert (warning in doctor._lines(report)) is (jsonschema_version != "3.2.0")
    report["versions"]["beat.core"] = None
    assert warning not in doctor._lines(report)
