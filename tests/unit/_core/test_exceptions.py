"""The exception tree (beat_backend.exceptions / _core.errors)."""

from __future__ import annotations

import pickle

import pytest

from beat_backend import exceptions
from beat_backend._core import errors

# leaf → the builtin it also subclasses (see the docstring of _core/errors.py)
BUILTINS = {
    "AssetNameError": RuntimeError,
    "AssetNotFoundError": FileNotFoundError,
    "DeclarationError": ValueError,
    "DuplicateKeyError": RuntimeError,
    "FormatError": RuntimeError,
    "FormatTypeError": TypeError,
    "CastingError": TypeError,
    "FieldsError": AttributeError,
    "DecodingError": ValueError,
    "CacheError": OSError,
    "ProtocolError": RuntimeError,
    "PeerGoneError": RuntimeError,
}


def test_public_names():
    assert set(exceptions.__all__) == {
        "RemoteException",
        "UserError",
        "OutputError",
        "BeatError",
        *BUILTINS,
    }
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert cls is getattr(errors, name)
        assert cls.__module__ == "beat_backend.exceptions"


@pytest.mark.parametrize(("name", "builtin"), sorted(BUILTINS.items()))
def test_leaves_subclass_their_builtin(name, builtin):
    cls = getattr(exceptions, name)
    assert issubclass(cls, exceptions.BeatError)
    assert issubclass(cls, builtin)
    with pytest.raises(builtin, match="^boom$"):
        raise cls("boom")


def test_nested_classes():
    assert issubclass(exceptions.DuplicateKeyError, exceptions.DeclarationError)
    assert issubclass(exceptions.DuplicateKeyError, ValueError)
    assert issubclass(exceptions.FormatTypeError, exceptions.FormatError)
    assert issubclass(exceptions.FormatTypeError, RuntimeError)
    assert issubclass(exceptions.AssetNotFoundError, OSError)


@pytest.mark.parametrize("name", ["RemoteException", "UserError", "OutputError"])
def test_beat_exceptions_are_not_builtin_leaves(name):
    cls = getattr(exceptions, name)
    assert cls.__mro__[1:] == (exceptions.BeatError, Exception, BaseException, object)


def test_beat_error_is_an_exception():
    assert exceptions.BeatError.__mro__ == (exceptions.BeatError, Exception, BaseException, object)


@pytest.mark.parametrize("kind", ["sys", b"sys"])
@pytest.mark.parametrize("message", ["msg", b"msg"])
def test_remote_exception_system(kind, message):
    exc = exceptions.RemoteException(kind, message)
    assert exc.kind == "sys"
    assert exc.system_error == "msg"
    assert exc.user_error == ""
    assert str(exc) == "(sys) msg"


@pytest.mark.parametrize("kind", ["usr", b"usr", "other"])
def test_remote_exception_user(kind):
    exc = exceptions.RemoteException(kind, "x")
    assert exc.user_error == "x"
    assert exc.system_error == ""
    assert str(exc) == "(usr) x"


def test_remote_exception_non_ascii_and_multiline():
    exc = exceptions.RemoteException(b"usr", "line 1\nlïne 2 ✓".encode())
    assert exc.user_error == "line 1\nlïne 2 ✓"
    assert str(exc) == "(usr) line 1\nlïne 2 ✓"
    bad = exceptions.RemoteException("sys", b"\xff!")
    assert bad.system_error == "\ufffd!"


def test_user_error_str_is_repr():
    exc = exceptions.UserError("Could not setup algorithm (returned False)")
    assert str(exc) == "'Could not setup algorithm (returned False)'"
    assert exc.value == "Could not setup algorithm (returned False)"
    assert str(exceptions.UserError(3)) == "3"


def test_output_error_str_is_repr():
    assert str(exceptions.OutputError("wrong size")) == "'wrong size'"
    assert str(exceptions.OutputError()) == "''"
    assert exceptions.OutputError("x").value == "x"


@pytest.mark.parametrize(
    "exc",
    [
        exceptions.RemoteException(b"sys", b"msg"),
        exceptions.RemoteException("usr", "x"),
        exceptions.UserError("u"),
        exceptions.OutputError("o"),
        exceptions.CastingError("c"),
        exceptions.DuplicateKeyError("Invalid file content\nkey found several times"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_pickle_roundtrip(exc):
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert clone.args == exc.args


# -- the whole tree ------------------------------------------------------------------------

# errors raised by the runner and the CLI: in the tree, each keeping its builtin base
TREE_BUILTINS = {
    "InvalidExperiment": RuntimeError,
    "RunError": RuntimeError,
    "DaskUnavailable": RuntimeError,
    "CacheNotShared": RuntimeError,
    "GraphvizUnavailable": RuntimeError,
}


def _package_exception_classes():
    import importlib
    import inspect
    import pkgutil

    import beat_backend

    found = {}
    for info in pkgutil.walk_packages(beat_backend.__path__, "beat_backend."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("beat_backend")
                and not name.startswith("_")
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_public_exception_class_derives_from_beat_error():
    classes = _package_exception_classes()
    outside = sorted(
        name for name, cls in classes.items() if not issubclass(cls, errors.BeatError)
    )
    # the one exception: SIGTERM's control-flow signal, a BaseException on purpose
    # (no `except Exception' may swallow it), like KeyboardInterrupt
    assert outside == ["beat_backend._cli.scripts._common.Terminated"]
    # the walk sees the whole tree of _core/errors.py (it finds what it must check)
    tree = {o for o in vars(errors).values() if isinstance(o, type) and issubclass(o, Exception)}
    assert tree <= set(classes.values())


@pytest.mark.parametrize(("name", "builtin"), sorted(TREE_BUILTINS.items()))
def test_runner_errors_keep_their_builtin(name, builtin):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.BeatError) and issubclass(cls, builtin)


def test_runner_and_cli_errors_are_one_class_wherever_imported():
    from beat_backend._assets import experiment
    from beat_backend._cli import common
    from beat_backend._cli.scripts import _common
    from beat_backend._execution import dask_launcher, planner

    assert experiment.InvalidExperiment is planner.InvalidExperiment is errors.InvalidExperiment
    assert dask_launcher.DaskUnavailable is errors.DaskUnavailable
    assert dask_launcher.CacheNotShared is errors.CacheNotShared
    assert issubclass(errors.DaskUnavailable, errors.RunError)
    assert issubclass(errors.CacheNotShared, errors.RunError)
    assert common.CommandError is errors.CommandError
    assert _common.SystemFailure is errors.SystemFailure


def test_the_docstring_draws_every_class_of_the_tree():
    drawn = errors.__doc__
    for name, obj in vars(errors).items():
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert f" {name} " in drawn or f"{name}\n" in drawn, name


def test_run_refused_lines_and_document():
    refused = errors.RunRefused(
        "assets",
        "2 problems:",
        ["first", errors.Problem("second", ("look here", "and there"))],
    )
    assert isinstance(refused, errors.RunError)
    assert refused.lines() == [
        "2 problems:",
        "  * first",
        "  * second",
        "    hint: look here",
        "    hint: and there",
    ]
    assert str(refused) == "\n".join(refused.lines())
    assert refused.to_dict() == {
        "kind": "assets",
        "message": "2 problems:",
        "problems": [
            {"message": "first", "hints": []},
            {"message": "second", "hints": ["look here", "and there"]},
        ],
        "text": str(refused),
    }
