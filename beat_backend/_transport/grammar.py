"""The BEAT ZeroMQ message grammar, frame by frame (processes-and-messages.md §2-§3).

Pure functions: build the frames of each request / reply and parse them.
Numbers are ASCII decimal (``%d``), ``None`` marks a missing end index, text is
UTF-8, payloads are ``pack()`` output without the cache's trailing newline.
Nothing received is ever evaluated or unpickled.
"""

from __future__ import annotations

import array
import json
import sys

from .._core.errors import ProtocolError, RemoteException

# requests
DON = b"don"
ERR = b"err"
IFO = b"ifo"
GET = b"get"
VAL = b"val"
WRT = b"wrt"
RDI = b"rdi"
# replies
ACK = b"ack"
TRUE = b"True"
FALSE = b"False"
# error kinds
USR = b"usr"
SYS = b"sys"

COMMANDS = (DON, ERR, IFO, GET, VAL, WRT, RDI)

#: beat_backend extension, sent only to a peer known out of band to be
#: beat_backend (a classic handler stops on an unknown command):
#: ``gtb <name> <first position> <count>`` -> ``<count> <payload> ... <payload>``
#: (the units ``first .. first + count - 1``; start/end are known from ``ifo``).
#: When unit ``first + j`` fails, the reply carries the ``j`` units before it
#: (``<j> <payload> ...``, nothing when ``j == 0``) and the classic ``err``
#: reply follows as the next message; the handler then stops.
GTB = b"gtb"
#: most units a ``gtb`` may ask for
GTB_MAX = 4096
#: beat_backend extension (same condition): ``ifc <name>`` -> ``<n> <indices>``,
#: the ``ifo`` reply in two frames: ``n`` and ``s0 e0 ... s(n-1) e(n-1)`` as
#: little-endian int64 (one frame instead of 2n; errors as for ``ifo``)
IFC = b"ifc"

#: frames longer than this are never decoded as text in error messages
_SHOW = 20


def encode_int(value: int) -> bytes:
    return b"%d" % value


def decode_int(frame: bytes, what: str = "integer") -> int:
    """Parse an ASCII decimal frame (sign allowed); ``ProtocolError`` otherwise."""
    try:
        text = frame.decode("ascii")
        if not text or text.strip() != text:
            raise ValueError
        return int(text, 10)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"invalid {what} frame: {show(frame)}") from None


def text(frame: bytes, what: str = "text") -> str:
    try:
        return frame.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"invalid UTF-8 in {what} frame: {show(frame)}") from None


def show(frame: bytes) -> str:
    """A frame shortened for messages (20 bytes + ``...``)."""
    if len(frame) > _SHOW:
        return repr(frame[:_SHOW])[2:-1] + "..."
    return repr(frame)[2:-1]


# -- requests -------------------------------------------------------------------


def don(statistics: dict | None = None) -> list[bytes]:
    """``don`` [+ statistics JSON]."""
    if statistics is None:
        return [DON]
    return [DON, dumps_statistics(statistics)]


def dumps_statistics(statistics: dict) -> bytes:
    """Statistics JSON as BEAT writes it (simplejson default separators)."""
    import simplejson

    return simplejson.dumps(statistics).encode("utf-8")


def err(kind: str, message: str) -> list[bytes]:
    return [ERR, kind.encode("ascii"), message.encode("utf-8")]


def ifo(name: str) -> list[bytes]:
    return [IFO, name.encode("utf-8")]


def ifc(name: str) -> list[bytes]:
    return [IFC, name.encode("utf-8")]


def get(name: str, position: int) -> list[bytes]:
    return [GET, name.encode("utf-8"), encode_int(position)]


def gtb(name: str, first: int, count: int) -> list[bytes]:
    return [GTB, name.encode("utf-8"), encode_int(first), encode_int(count)]


def val(packed: bytes) -> list[bytes]:
    return [VAL, packed]


def wrt(name: str | bytes, end_data_index: int | None) -> list[bytes]:
    end = b"None" if end_data_index is None else encode_int(end_data_index)
    return [WRT, name if isinstance(name, bytes) else name.encode("utf-8"), end]


def rdi() -> list[bytes]:
    return [RDI]


# -- replies --------------------------------------------------------------------


def ifo_reply(indices: list[tuple[int, int]]) -> list[bytes]:
    """``n, s0, e0, ..., s(n-1), e(n-1)``; ``[b"0"]`` for no unit."""
    frames = [encode_int(len(indices))]
    frames.extend(map(b"%d".__mod__, [v for pair in indices for v in pair]))
    return frames


def get_reply(start: int, end: int, payload: bytes) -> list[bytes]:
    return [encode_int(start), encode_int(end), payload]


def ifc_reply(indices: list[tuple[int, int]]) -> list[bytes]:
    """``n`` and the ``2n`` indices as little-endian int64 (``ifc``)."""
    values = array.array("q", [v for pair in indices for v in pair])
    if sys.byteorder != "little":
        values.byteswap()
    return [encode_int(len(indices)), values.tobytes()]


def val_reply(valid: bool, packed_answer: bytes) -> list[bytes]:
    return [TRUE if valid else FALSE, packed_answer]


# -- parsing --------------------------------------------------------------------


def raise_if_error(frames: list[bytes]) -> None:
    """Raise ``RemoteException(kind, message)`` for an ``err`` reply."""
    if frames and frames[0] == ERR:
        kind = frames[1] if len(frames) > 1 else SYS
        message = frames[2] if len(frames) > 2 else b""
        raise RemoteException(kind, message)


def parse_ifo_reply(frames: list[bytes]) -> list[tuple[int, int]]:
    raise_if_error(frames)
    if not frames:
        raise ProtocolError("empty reply to `ifo'")
    n = decode_int(frames[0], "unit count")
    if n < 0 or len(frames) != 2 * n + 1:
        raise ProtocolError(
            f"reply to `ifo' announces {n} units but carries {len(frames) - 1} index frames"
        )
    values = frames[1:]
    try:
        # fast path: plain ASCII digits, as numbers are sent (``%d``)
        if not all(map(bytes.isdigit, values)):
            raise ValueError
        values = list(map(int, values))
    except (TypeError, ValueError):
        values = [decode_int(f, "data index") for f in values]
    return list(zip(values[0::2], values[1::2]))


def parse_get_reply(frames: list[bytes]) -> tuple[int, int, bytes]:
    raise_if_error(frames)
    if len(frames) != 3:
        raise ProtocolError(f"reply to `get' has {len(frames)} frames instead of 3")
    return decode_int(frames[0], "start index"), decode_int(frames[1], "end index"), frames[2]


def parse_ifc_reply(frames: list[bytes]) -> list[tuple[int, int]]:
    raise_if_error(frames)
    if len(frames) != 2:
        raise ProtocolError(f"reply to `ifc' has {len(frames)} frames instead of 2")
    n = decode_int(frames[0], "unit count")
    if n < 0 or len(frames[1]) != 16 * n:
        raise ProtocolError(
            f"reply to `ifc' announces {n} units but carries {len(frames[1])} bytes of indices"
        )
    values = array.array("q")
    values.frombytes(frames[1])
    if sys.byteorder != "little":
        values.byteswap()
    values = values.tolist()
    return list(zip(values[0::2], values[1::2]))


def parse_val_reply(frames: list[bytes]) -> tuple[bool, bytes]:
    raise_if_error(frames)
    if len(frames) != 2 or frames[0] not in (TRUE, FALSE):
        raise ProtocolError(f"invalid reply to `val': {[show(f) for f in frames]}")
    return frames[0] == TRUE, frames[1]


def parse_ack(frames: list[bytes], command: str) -> None:
    raise_if_error(frames)
    if frames != [ACK]:
        raise ProtocolError(
            f"invalid reply to `{command}': {[show(f) for f in frames]} (expected `ack')"
        )


def parse_end_index(frame: bytes) -> int | None:
    """End index of a ``wrt``: an integer, or ``None`` (anything else counts as None)."""
    if frame == b"None":
        return None
    try:
        return decode_int(frame, "end index")
    except ProtocolError:
        return None


def loads_statistics(frame: bytes) -> dict:
    """Parse a statistics frame (plain JSON data; never evaluated)."""
    try:
        value = json.loads(frame.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError(f"invalid statistics JSON: {show(frame)}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"statistics must be a JSON object, got {type(value).__name__}")
    return value
