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
    ├── RemoteException                          error reported by a peer process
    ├── UserError                                error attributable to user code
    └── OutputError                              DatabaseTester failures

Leaves also subclass the builtin that BEAT code historically raised, so
``except ValueError`` / ``except TypeError`` keep working.
"""

from __future__ import annotations


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
