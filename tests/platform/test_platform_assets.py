"""beat.core's own asset classes load the bundled prefix through our base classes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _platform import EXPERIMENTS, copy_prefix

from beat_backend import algorithm as our_algorithm
from beat_backend._core.resources import embedded_prefix

PREFIX = Path(embedded_prefix())

#: folder -> (beat.core module, class, what a name looks like)
KINDS = {
    "dataformats": ("dataformat", "DataFormat"),
    "libraries": ("library", "Library"),
    "algorithms": ("algorithm", "Algorithm"),
    "protocoltemplates": ("protocoltemplate", "ProtocolTemplate"),
    "databases": ("database", "Database"),
    "toolchains": ("toolchain", "Toolchain"),
    "experiments": ("experiment", "Experiment"),
}


def _names(folder: str) -> list[str]:
    root = PREFIX / folder
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.json"))


def test_the_bundled_prefix_has_every_kind():
    assert all(_names(folder) for folder in KINDS)
    assert sorted(_names("experiments")) == sorted(EXPERIMENTS)


@pytest.mark.parametrize(
    ("folder", "name"), [(folder, name) for folder in KINDS for name in _names(folder)]
)
def test_every_asset_loads_valid_with_the_platform_classes(beat_core, folder, name):
    module, klass = KINDS[folder]
    obj = getattr(getattr(beat_core, module), klass)(str(PREFIX), name)
    assert obj.valid, "\n".join(obj.errors)
    if folder not in ("toolchains", "experiments"):
        # the platform's subclasses of our classes, registered in the caches by name
        assert obj.name == name
        assert obj.storage.json.path == str(PREFIX / folder / f"{name}.json")


def test_platform_caches_hold_the_objects_not_placeholders(beat_core):
    dataformats, libraries = {}, {}
    algo = beat_core.algorithm.Algorithm(
        str(PREFIX), "example/train_linear/1", dataformats, libraries
    )
    assert algo.valid, algo.errors
    assert isinstance(algo, our_algorithm.Algorithm)
    assert libraries and all(
        isinstance(lib, beat_core.library.Library) for lib in libraries.values()
    )
    assert dataformats and all(
        isinstance(fmt, beat_core.dataformat.DataFormat) for fmt in dataformats.values()
    )


def test_database_sets_as_the_platform_checks_them(beat_core, tmp_path):
    prefix = copy_prefix(tmp_path)
    db = beat_core.database.Database(str(prefix), "synthetic/1")
    assert db.valid, db.errors
    for protocol in db.protocol_names:
        names = db.set_names(protocol)
        assert names == list(db.sets(protocol))  # no duplicates in the example
    # a template with a duplicated set name: the platform reports it
    template = prefix / "protocoltemplates" / "two_classes" / "1.json"
    declaration = json.loads(template.read_text())
    declaration["sets"].append(dict(declaration["sets"][0]))
    template.write_text(json.dumps(declaration))
    db = beat_core.database.Database(str(prefix), "synthetic/1")
    assert not db.valid
    assert any("found different sets with the same name" in e for e in db.errors), db.errors


def test_hashed_user_folders_under_the_platform_storages(beat_core, tmp_path):
    # toolchains and experiments (platform Storage subclasses over hashed_or_simple)
    # found in their hashed user folder
    prefix = copy_prefix(tmp_path)
    hashed = beat_core.hash.toUserPath("example")
    for folder in ("toolchains", "experiments"):
        simple = prefix / folder / "example"
        target = prefix / folder / hashed
        target.parent.mkdir(parents=True, exist_ok=True)
        simple.rename(target)
    experiment = beat_core.experiment.Experiment(str(prefix), EXPERIMENTS[0])
    assert experiment.valid, experiment.errors
    assert experiment.storage.json.path.startswith(str(prefix / "experiments" / hashed))
    assert experiment.toolchain.storage.json.path.startswith(str(prefix / "toolchains" / hashed))


_PLOTTER = {
    "dataformat": "plot/scores/1",
    "language": "python",
    "parameters": {
        "title": {"default": "Scores", "type": "string", "description": "plot title"},
        "dpi": {"default": 72, "type": "uint16", "range": [20, 600]},
        "mimetype": {
            "default": "image/png",
            "type": "string",
            "choice": ["image/png", "application/pdf"],
        },
    },
}


def test_the_platform_plotter_borrows_algorithm_members(beat_core, tmp_path):
    prefix = copy_prefix(tmp_path)
    fmt = prefix / "dataformats" / "plot" / "scores" / "1.json"
    fmt.parent.mkdir(parents=True)
    fmt.write_text(json.dumps({"values": [0, "float32"]}))
    folder = prefix / "plotters" / "example" / "scores"
    folder.mkdir(parents=True)
    (folder / "1.json").write_text(json.dumps(_PLOTTER))
    (folder / "1.py").write_text("def process(data, parameters):\n    return b''\n")
    plotter = beat_core.plotter.Plotter(str(prefix), "example/scores/1")
    assert plotter.valid, plotter.errors
    assert not isinstance(plotter, our_algorithm.Algorithm)
    assert plotter.language == "python"
    assert sorted(plotter.parameters) == ["dpi", "mimetype", "title"]
    assert plotter.uses is None
    assert plotter.description is None
    assert plotter.clean_parameter("dpi", "96") == 96
    with pytest.raises(ValueError, match="must be one of"):
        plotter.clean_parameter("mimetype", "image/gif")
    assert json.loads(plotter.json_dumps())["dataformat"] == "plot/scores/1"
    assert str(plotter) == plotter.json_dumps()


def test_fresh_interpreter_imports_the_platform_first(beat_core):
    # the old import name resolves before anything imported beat_backend
    code = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        "import beat.core.algorithm, beat.core.execution\n"
        "import beat.backend.python.algorithm as old, beat_backend.algorithm as new\n"
        "assert old is new\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
