"""The BEAT-named facades export exactly the API document's names (plus listed extras).

Source of the lists: ``beat-backend-python-api.txt`` (one entry per
``beat.backend.python.<module>.<name>``) and the spec's extra public names.
Later issues add their modules to :data:`FACADES`. A module that does not
import is a failure, not a skip.
"""

from __future__ import annotations

import importlib

import pytest

#: module -> (names of the API document, extra public names the spec defines)
FACADES: dict[str, tuple[list[str], list[str]]] = {
    "beat_backend.hash": (
        [
            "toPath",
            "toUserPath",
            "hash",
            "hashJSON",
            "hashJSONFile",
            "hashFileContents",
            "hashDataset",
        ],
        # platform-side hashes (prefix-and-hashing.md §3.8) and the private
        # helpers the platform imports (platform-client.md §4)
        ["hashBlockOutput", "hashAnalyzer", "hashJSONStr", "_compact", "_sha256", "_stringify"],
    ),
    "beat_backend.utils": (
        [
            "hashed_or_simple",
            "safe_rmfile",
            "safe_rmdir",
            "extension_for_language",
            "Prefix",
            "File",
            "AbstractStorage",
            "Storage",
            "CodeStorage",
            "NumpyJSONEncoder",
            "error_on_duplicate_key_hook",
            "has_argument",
        ],
        [],
    ),
    "beat_backend.baseformat": (
        [
            "setup_scalar",
            "setup_array",
            "pack_array",
            "pack_scalar",
            "read_some",
            "read_string",
            "unpack_array",
            "unpack_scalar",
            "baseformat",
        ],
        [],
    ),
    "beat_backend.dataformat": (["Storage", "DataFormat"], []),
    "beat_backend.loader": (["load_module", "run"], []),
    "beat_backend.library": (["Storage", "Library"], []),
    "beat_backend.algorithm": (["Storage", "Runner", "Algorithm"], []),
    "beat_backend.protocoltemplate": (["Storage", "ProtocolTemplate"], []),
    "beat_backend.database": (["Storage", "Runner", "Database", "View", "DatabaseTester"], []),
    "beat_backend.inputs": (["first", "Input", "InputGroup", "InputList"], []),
    "beat_backend.outputs": (
        ["SynchronizationListener", "Output", "RemotelySyncedOutput", "OutputList"],
        [],
    ),
    # minibatches and multiplexing for autonomous algorithms (issue 19)
    "beat_backend.data_loaders": (["DataView", "DataLoader", "DataLoaderList"], ["Batch", "mux"]),
    "beat_backend.stats": (["io_statistics", "update"], []),
    "beat_backend.execution": (
        [
            "AlgorithmExecutor",
            "DBExecutor",
            "LoopExecutor",
            "LoopMessageHandler",
            "MessageHandler",
        ],
        [],
    ),
    "beat_backend.execution.algorithm": (["AlgorithmExecutor"], []),
    "beat_backend.execution.loop": (["LoopChannel", "LoopExecutor"], []),
    "beat_backend.execution.database": (["DBExecutor"], []),
    "beat_backend.execution.messagehandlers": (["MessageHandler", "LoopMessageHandler"], []),
    "beat_backend.execution.helpers": (["make_data_format"], []),
    # the scripts (processes-and-messages.md §5): main(argv=None) -> int each
    "beat_backend.scripts.execute": (["main"], []),
    "beat_backend.scripts.loop_execute": (["main"], []),
    "beat_backend.scripts.databases_provider": (["main"], []),
    "beat_backend.scripts.index": (["main"], []),
    "beat_backend.scripts.describe": (["main"], []),
    "beat_backend.helpers": (
        [
            "parse_inputs",
            "parse_outputs",
            "convert_loop_to_container",
            "convert_experiment_configuration_to_container",
            "AccessMode",
            "create_inputs_from_configuration",
            "create_outputs_from_configuration",
        ],
        [],
    ),
    "beat_backend.exceptions": (
        # algorithms-and-execution.md §10
        ["RemoteException", "UserError", "OutputError"],
        # beat_backend's own hierarchy (beat_backend/_core/errors.py)
        [
            "BeatError",
            "AssetNameError",
            "AssetNotFoundError",
            "DeclarationError",
            "DuplicateKeyError",
            "FormatError",
            "FormatTypeError",
            "CastingError",
            "FieldsError",
            "DecodingError",
            "CacheError",
            "ProtocolError",
            "PeerGoneError",
        ],
    ),
    # beyond BEAT (#19): the protocols of user code
    "beat_backend.protocols": (
        [],
        [
            "AutonomousAlgorithm",
            "AutonomousAnalyzer",
            "AutonomousLoopEvaluator",
            "AutonomousLoopProcessor",
            "LegacyAlgorithm",
            "LegacyAnalyzer",
            "LoopChannel",
            "Prepare",
            "PushView",
            "SequentialAlgorithm",
            "SequentialAnalyzer",
            "SequentialLoopEvaluator",
            "SequentialLoopProcessor",
            "Setup",
            "View",
            "algorithm_protocol",
        ],
    ),
    "beat_backend.data": (
        [
            "mixDataIndices",
            "getAllFilenames",
            "DataSource",
            "FileInfos",
            "CachedDataSource",
            "DatabaseOutputDataSource",
            "RemoteDataSource",
            "DataSink",
            "StdoutDataSink",
            "CachedDataSink",
            "load_data_index",
            "load_data_index_db",
            "foundSplitRanges",
        ],
        # cache-files.md §7.4: RemoteException is also importable from data
        ["RemoteException"],
    ),
}

#: facade -> {name: the facade where that class is canonical (and its __module__)}
REEXPORTED: dict[str, dict[str, str]] = {
    "beat_backend.data": {"RemoteException": "beat_backend.exceptions"},
    # the package re-exports the classes of its submodules
    "beat_backend.execution": {
        "AlgorithmExecutor": "beat_backend.execution.algorithm",
        "DBExecutor": "beat_backend.execution.database",
        "LoopExecutor": "beat_backend.execution.loop",
        "LoopMessageHandler": "beat_backend.execution.messagehandlers",
        "MessageHandler": "beat_backend.execution.messagehandlers",
    },
}


@pytest.fixture(params=sorted(FACADES), ids=lambda name: name.rpartition(".")[2])
def facade(request):
    name = request.param
    api, extras = FACADES[name]
    return name, importlib.import_module(name), api, extras


def test_expected_lists_have_no_duplicates():
    for name, (api, extras) in FACADES.items():
        expected = api + extras
        assert len(expected) == len(set(expected)), name


def test_all_matches_the_api_document(facade):
    name, module, api, extras = facade
    exported = list(module.__all__)
    duplicates = sorted({n for n in exported if exported.count(n) > 1})
    assert not duplicates, f"{name}.__all__ repeats {duplicates}"
    assert set(exported) == set(api) | set(extras), (
        f"{name}: missing {sorted(set(api) | set(extras) - set(exported))}, "
        f"unexpected {sorted(set(exported) - set(api) - set(extras))}"
    )


def test_every_exported_name_exists(facade):
    name, module, _, _ = facade
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name} lacks {missing}"


def test_public_classes_carry_the_facade_module(facade):
    name, module, _, _ = facade
    wrong = {
        n: obj.__module__
        for n in module.__all__
        if not n.startswith("_")
        and isinstance(obj := getattr(module, n), type)
        and obj.__module__ != REEXPORTED.get(name, {}).get(n, name)
    }
    assert not wrong, f"classes of {name} with another __module__: {wrong}"


def test_star_import_gives_exactly_all(facade):
    name, _, api, extras = facade
    namespace: dict = {}
    exec(f"from {name} import *", namespace)
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(api) | set(extras)


def test_reexported_classes_are_the_canonical_objects():
    for name, names in REEXPORTED.items():
        module = importlib.import_module(name)
        for n, canonical in names.items():
            assert n in module.__all__, (name, n)
            assert getattr(module, n) is getattr(importlib.import_module(canonical), n)
