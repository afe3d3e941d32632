"""The one exception tree of beat_backend.

::

    BeatError
    ├── AssetNameError        (RuntimeError)     invalid asset name / path escaping a root
    ├── AssetNotFoundError    (FileNotFoundError) a declaration or code file is missing
    ├── DeclarationError      (ValueError)       malformed JSON in a declaration
    │   └── DuplicateKeyError (RuntimeError)     a key found several times
    ├── FormatError           (RuntimeError)     a dataformat cannot be prototyped
    │   └── FormatTypeError   (TypeError)        unknown base type / bad array dims
    ├── CastingError          (TypeError)        value cannot be cast / has a wrong shape
    ├── FieldsError           (AttributeError)   missing or unexpected dataformat fields
    ├── DecodingError         (ValueError)       truncated or corrupt packed bytes
    ├── CacheError            (OSError)          broken cache file sets
    ├── ProtocolError         (RuntimeError)     malformed ZeroMQ messages
    ├── PeerGoneError         (RuntimeError)     a peer process died / a deadline expired
    ├── ConfigurationError    (ValueError)       an environment variable has an invalid value
    ├── RemoteException                          error reported by a peer process
    ├── UserError                                error attributable to user code
    ├── OutputError                              DatabaseTester failures
    ├── InvalidExperiment     (RuntimeError)     an experiment cannot be planned (``errors``)
    ├── RunError              (RuntimeError)     ``beat-backend run`` cannot go on
    │   ├── DaskUnavailable                      the ``distributed`` extra is missing
    │   ├── CacheNotShared                       a Dask worker does not see the cache
    │   ├── IndexFailed                          a dataset index could not be built
    │   ├── GraphvizUnavailable                  Graphviz's ``dot`` is not on the PATH
    │   └── RunRefused                           problems found before anything ran
    ├── SystemFailure                            a script's set-up failed (``err sys``)
    └── CommandError                             a usage error of a ``beat-backend`` command

Leaves also subclass the builtin that BEAT code historically raised, so
``except ValueError`` / ``except TypeError`` keep working. The classes are
re-exported where they are raised (``_assets.experiment``,
``_execution.dask_launcher``, ``_cli.common``, ``_cli.scripts._common``).
"""

from __future__ import annotations

from dataclasses import dataclass


class BeatError(Exception):
    """Base class of every error raised by beat_backend itself."""


class AssetNameError(BeatError, RuntimeError):
    """An asset name (or configured path) is malformed or escapes its root."""


class AssetNotFoundError(BeatError, FileNotFoundError):
    """A declaration or code file does not exist."""


class DeclarationError(BeatError, ValueError):
    """A declaration file is not valid JSON (the message names the file)."""


class DuplicateKeyError(DeclarationError, RuntimeError):
    """A JSON object holds the same key several times."""


class FormatError(BeatError, RuntimeError):
    """A dataformat cannot be turned into a type (not properly initialized)."""


class FormatTypeError(FormatError, TypeError):
    """A dataformat field declares an unknown type or invalid array dimensions."""


class CastingError(BeatError, TypeError):
    """A value cannot be cast to the declared type or has the wrong shape."""


class FieldsError(BeatError, AttributeError):
    """Fields are missing from (or unexpected in) a dataformat value."""


class DecodingError(BeatError, ValueError):
    """Packed bytes are truncated or inconsistent with the dataformat."""


class CacheError(BeatError, OSError):
    """A cache file set is missing, incomplete or corrupt."""


class ProtocolError(BeatError, RuntimeError):
    """A ZeroMQ message does not follow the BEAT grammar."""


class PeerGoneError(BeatError, RuntimeError):
    """A peer process died, or a configured deadline expired."""


class ConfigurationError(BeatError, ValueError):
    """An environment variable of beat_backend has an invalid value (the text names both)."""


class RemoteException(BeatError):
    """An error reported by a peer process (``err`` message).

    ``kind == "sys"`` (str or bytes) gives a system error, anything else a
    user error. ``str()`` is ``(sys) <message>`` or ``(usr) <message>``.
    """

    def __init__(self, kind, message):
        super().__init__(kind, message)
        if isinstance(kind, bytes):
            kind = kind.decode("utf-8", errors="replace")
        if isinstance(message, bytes):
            message = message.decode("utf-8", errors="replace")
        self.kind = kind
        if kind == "sys":
            self.system_error = message
            self.user_error = ""
        else:
            self.system_error = ""
            self.user_error = message

    def __str__(self):
        if self.kind == "sys":
            return f"(sys) {self.system_error}"
        return f"(usr) {self.user_error}"


class UserError(BeatError):
    """An error attributable to user code; ``str()`` is ``repr(value)``."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return repr(self.value)


class OutputError(BeatError):
    """A DatabaseTester check failed."""

    def __init__(self, value=""):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return repr(self.value)


class InvalidExperiment(BeatError, RuntimeError):
    """An experiment cannot be planned; ``errors`` lists every reason."""

    def __init__(self, name: str, errors: list[str]):
        self.name = name
        self.errors = list(errors)
        super().__init__(f"experiment `{name}' is not valid:\n  * " + "\n  * ".join(self.errors))


class RunError(BeatError, RuntimeError):
    """``beat-backend run`` cannot go on: a dataset cannot be indexed, a block
    needs outputs that are not cached, a block is unknown, the cluster is
    unreachable."""


class DaskUnavailable(RunError):
    """``distributed`` is not installed."""


class CacheNotShared(RunError):
    """Some Dask worker does not see the cache folder the client sees."""


class GraphvizUnavailable(RunError):
    """Graphviz's ``dot`` program (to draw an experiment as SVG or PNG) is not on the PATH."""


class IndexFailed(RunError):
    """The ``index`` script could not build a dataset's index (the view's code ran).

    ``dataset`` is ``<database>/<protocol>/<set>``, ``status`` the script's exit
    status, ``output`` what it printed on stderr, ``location`` the
    ``{"file", "line"}`` of the view's code it names (or ``None``).
    """

    def __init__(self, dataset: str, status: int, output: str, location: dict | None = None):
        self.dataset = dataset
        self.status = status
        self.output = output
        self.location = location
        super().__init__(f"could not index dataset {dataset} (index exited {status}):\n{output}")


@dataclass(frozen=True)
class Problem:
    """One problem found before a run: the message (a text the spec or the platform
    defines stays as it is) and hint lines the CLI prints under it."""

    message: str
    hints: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"message": self.message, "hints": list(self.hints)}


class RunRefused(RunError):
    """The run stopped before any process started; every problem found.

    ``kind`` says which check refused it (``invalid``, ``assets``,
    ``stale-index``, ...); :meth:`lines` is what the CLI prints, one title
    line then ``  * <message>`` and ``    hint: <hint>`` lines.
    """

    def __init__(self, kind: str, title: str, problems):
        self.kind = kind
        self.title = title
        self.problems = tuple(p if isinstance(p, Problem) else Problem(str(p)) for p in problems)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        lines = [self.title]
        for problem in self.problems:
            lines.append(f"  * {problem.message}")
            lines.extend(f"    hint: {hint}" for hint in problem.hints)
        return lines

    def to_dict(self) -> dict:
        """The ``"error"`` of ``run --json`` (``text``: exactly what the text output prints)."""
        return {
            "kind": self.kind,
            "message": self.title,
            "problems": [p.to_dict() for p in self.problems],
            "text": "\n".join(self.lines()),
        }


class SystemFailure(BeatError):
    """A failure of the platform's set-up, reported as ``err sys <message>`` (no traceback)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class CommandError(BeatError):
    """A usage problem detected by a ``beat-backend`` subcommand: printed, exit status 2."""
