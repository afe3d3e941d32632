"""What ``beat-backend run`` tells about a failed block, beyond the platform's errors.

* :func:`outputs`: the tail of what each script printed (``execute`` always,
  a databases provider or ``loop_execute`` when it said something useful),
  at most :data:`TAIL_LINES` lines and :data:`TAIL_BYTES` bytes per stream;
* :func:`locate`: the file and line of the user's code the error points at,
  in the user's prefix (the scripts run on exported copies of it);
* :func:`condense`: a tail without the copies of an error already shown;
* :func:`user_paths`: a text whose traceback entries of user code name the
  user's files, not the copies the scripts ran (what the CLI shows).
* :func:`hints`: what the scripts logged that says more than the errors
  (:data:`RETURNED_NONE`: a user method returned ``None``, not ``False``).

The errors themselves (``user_error``, ``system_error``) stay exactly the
texts the platform gets.
"""

from __future__ import annotations

import dataclasses
import os
import re

from .processes import ProcessOutput, ProcessResult

__all__ = [
    "TAIL_BYTES",
    "TAIL_LINES",
    "Tail",
    "RETURNED_NONE",
    "condense",
    "hints",
    "locate",
    "locate_text",
    "outputs",
    "tail",
    "user_file",
    "user_paths",
]

#: lines kept of each stream of a process (the last ones)
TAIL_LINES = 50
#: bytes (UTF-8) kept of each stream of a process, at most
TAIL_BYTES = 8 * 1024

#: a traceback entry (``File "<path>", line <n>``; a ``SyntaxError`` has no ``, in``)
_FRAME = re.compile(r'File "([^"\n]+)", line (\d+)')
#: the folders of a prefix holding user code
_CODE = ("algorithms", "databases", "libraries")
#: what ``execute`` / ``loop_execute`` log when a user method returned ``None``: the
#: platform only gets ``Could not <step> algorithm (returned False)``
RETURNED_NONE = "{}() returned None; return True to go on"
_RETURNED_NONE = re.compile(
    r"^.*?\b((?:setup|prepare|process)\(\) returned None; return True to go on)$", re.M
)


@dataclasses.dataclass(frozen=True)
class Tail:
    """The end of a text: ``text`` and how many earlier lines are not in it."""

    text: str
    omitted: int = 0


def tail(text: str, lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> Tail:
    """The last ``lines`` lines of ``text``, and at most ``max_bytes`` bytes of them.

    Trailing blank lines are dropped. A last line longer than ``max_bytes``
    keeps its end (cut at a character boundary) and counts as kept.
    """
    all_lines = text.rstrip().split("\n") if text.strip() else []
    kept = all_lines[-lines:] if lines > 0 else []
    size = sum(len(line.encode("utf-8")) + 1 for line in kept) - 1
    while len(kept) > 1 and size > max_bytes:
        size -= len(kept.pop(0).encode("utf-8")) + 1
    if kept and size > max_bytes:
        kept[0] = kept[0].encode("utf-8")[-max_bytes:].decode("utf-8", "ignore")
    return Tail("\n".join(kept), len(all_lines) - len(kept))


def _useful(process: ProcessOutput) -> bool:
    """Whether a helper process (not ``execute``) said something about the failure.

    One the runner stopped (after ``execute`` ended) only says so, unless its
    user code printed something; one that exited on its own tells why.
    """
    if process.stopped:
        return bool(process.stdout.strip())
    return process.status != 0 or bool(process.stdout.strip() or process.stderr.strip())


def outputs(result: ProcessResult) -> list[dict]:
    """The tails of what the block's scripts printed, ``execute`` first.

    Each entry: ``process``, ``exit_status``, ``stopped`` (by the runner),
    ``stdout``, ``stderr`` (tails, see :func:`tail`) and ``omitted``
    (``{"stdout": n, "stderr": n}``: earlier lines not shown). A result
    without per-process outputs (another launcher) gives one ``block`` entry.
    """
    processes = result.processes
    if not processes and (result.stdout.strip() or result.stderr.strip()):
        processes = [ProcessOutput("block", result.status, result.stdout, result.stderr)]
    entries = []
    for process in processes:
        # `execute' (`[<slot>] execute' for a split block) always
        if process.name.rsplit("] ", 1)[-1] not in ("execute", "block") and not _useful(process):
            continue
        stdout, stderr = tail(process.stdout), tail(process.stderr)
        entries.append(
            {
                "process": process.name,
                "exit_status": process.status,
                "stopped": process.stopped,
                "stdout": stdout.text,
                "stderr": stderr.text,
                "omitted": {"stdout": stdout.omitted, "stderr": stderr.omitted},
            }
        )
    return entries


def hints(result: ProcessResult) -> list[str]:
    """Hints the scripts of a failed block logged (:data:`RETURNED_NONE`), each once."""
    found: list[str] = []
    for process in result.processes or [result]:
        for match in _RETURNED_NONE.finditer(process.stderr or ""):
            if match.group(1) not in found:
                found.append(match.group(1))
    return found


def _hint_of(line: str) -> str | None:
    match = _RETURNED_NONE.match(line)
    return match.group(1) if match else None


def condense(text: str, errors: dict[str, str], shown_hints=()) -> str:
    """``text`` without the errors already shown (``{label: error}``): ``""`` when it
    only repeats one (its end, or one log line of it), else each copy of an error
    replaced by ``(the <label> above)``. The log lines of ``shown_hints`` are left out."""
    if shown_hints:
        text = "\n".join(line for line in text.split("\n") if _hint_of(line) not in shown_hints)
    text = text.strip()
    for label, error in errors.items():
        error = error.strip()
        if not text or not error:
            continue
        if error.endswith(text):
            return ""
        head, found, rest = text.partition(error)
        if found and not rest.strip() and "\n" not in head.strip():
            return ""
        text = text.replace(error, f"(the {label} above)")
    return text


def _under(path: str, folder: str) -> str | None:
    """``path`` relative to ``folder`` when it lies below it (symbolic links resolved)."""
    for candidate, root in ((path, folder), (os.path.realpath(path), os.path.realpath(folder))):
        relative = os.path.relpath(candidate, root)
        if not relative.startswith(os.pardir + os.sep) and relative != os.pardir:
            return relative
    return None


def user_file(path: str, prefix: str) -> str | None:
    """The file of the user's ``prefix`` a traceback path stands for (``None``: not user code).

    The scripts run on exported copies of the prefix: ``execute`` and
    ``loop_execute`` show algorithms relative to ``<copy>/algorithms``
    (``example/normalize/1.py``), a databases provider relative to
    ``<copy>`` (``databases/synthetic/1.py``); other frames of user code
    (libraries, a view in a full traceback) name ``<scratch>/prefix/<kind>/…``.
    """
    prefix = os.path.abspath(prefix)
    parts = path.split("/")
    candidates = []
    if os.path.isabs(path):
        relative = _under(path, prefix)
        if relative is not None:
            candidates.append(os.path.join(prefix, relative))
        for i in range(len(parts) - 2, -1, -1):  # the last `prefix/<kind>/' of the path
            if parts[i] == "prefix" and parts[i + 1] in _CODE:
                candidates.append(os.path.join(prefix, *parts[i + 1 :]))
                break
    elif os.pardir not in parts:
        candidates.append(os.path.join(prefix, "algorithms", *parts))
        if parts[0] in _CODE:
            candidates.append(os.path.join(prefix, *parts))
    for candidate in candidates:
        relative = _under(candidate, prefix)
        if relative and relative.split(os.sep, 1)[0] in _CODE and os.path.isfile(candidate):
            return candidate
    return None


def locate_text(text: str, prefix: str) -> dict | None:
    """``{"file": <file in prefix>, "line": n}`` of the innermost traceback entry of
    ``text`` that is user code (:func:`user_file`); ``None`` when none is."""
    for match in reversed(list(_FRAME.finditer(text or ""))):
        found = user_file(match.group(1), prefix)
        if found is not None:
            return {"file": found, "line": int(match.group(2))}
    return None


def locate(result: ProcessResult, prefix: str) -> dict | None:
    """Where in the user's code the block failed: from its user error, else its system
    error (:func:`locate_text`)."""
    return locate_text(result.user_error, prefix) or locate_text(result.system_error, prefix)


def user_paths(text: str, prefix: str, databases: str | None = None) -> str:
    """``text`` with each traceback entry of user code naming the user's file in ``prefix``
    (:func:`user_file`) instead of the copy (or relative path) the scripts ran; those of
    databases in ``databases`` when given (a block directory's databases may come from
    another prefix). Other entries are left as they are."""

    def replaced(match: re.Match) -> str:
        path, found = match.group(1), None
        if databases is not None:
            found = user_file(path, databases)
            if found is not None and _under(found, databases).split(os.sep, 1)[0] != "databases":
                found = None
        found = found or user_file(path, prefix)
        return match.group(0) if found is None else f'File "{found}", line {match.group(2)}'

    return _FRAME.sub(replaced, text or "")
