"""The calls the runners make into user code (algorithms-and-execution.md §3, §3.1, §9.3).

One :class:`Call` per method a runner calls, with the arguments it passes:
:func:`algorithm_calls` for the ``Algorithm`` class of each type and API
version (the algorithm runner, :mod:`.runner`, and the loop executor), and
:data:`VIEW_CALLS` for database view classes (the view runner). The checks of
user code against its declaration (:mod:`.usercode`) and the protocols of
:mod:`beat_backend.protocols` follow this table; the messages name a kind of
algorithm with :func:`label`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LOOP_CHANNEL",
    "PUSH_VIEW_METHODS",
    "VIEW_CALLS",
    "Call",
    "algorithm_calls",
    "label",
]

#: the argument of a loop processor's ``process`` the runner finds by its name
LOOP_CHANNEL = "loop_channel"

#: a push-style view (``DatabaseTester`` only, §9.6): what it has instead of index/get
PUSH_VIEW_METHODS = ("setup", "next", "done")


@dataclass(frozen=True)
class Call:
    """``method(*args, **{keyword: ...})``: how a runner calls a method of user code."""

    method: str
    #: the positional arguments, in order (named as the spec names them)
    args: tuple[str, ...]
    #: the arguments passed by keyword
    keywords: tuple[str, ...] = ()
    #: whether the method must exist (optional ones are checked only when present)
    required: bool = True

    def shown(self) -> str:
        """``process(inputs, data_loaders, outputs)``, keywords as ``name=...``."""
        return f"{self.method}({', '.join([*self.args, *(f'{k}=...' for k in self.keywords)])})"

    def called_with(self) -> str:
        """``3 (inputs, data_loaders, outputs)`` (and ``and the keywords ...``)."""
        text = f"{len(self.args)} ({', '.join(self.args)})" if self.args else "no argument"
        if self.keywords:
            text += " and the keywords " + ", ".join(self.keywords)
        return text


def label(algorithm_type: str, analyzer: bool = False) -> str:
    """``a sequential algorithm``, ``an autonomous analyzer``, ``a sequential loop evaluator``."""
    words = str(algorithm_type).replace("_", " ")
    if "loop" not in words.split():
        words += " analyzer" if analyzer else " algorithm"
    return ("an " if words[:1] in tuple("aeiou") else "a ") + words


def _process(algorithm_type: str, out: str) -> Call | None:
    if algorithm_type == "legacy":
        return Call("process", ("inputs", out))
    if algorithm_type in ("sequential", "sequential_loop_processor"):
        args: tuple[str, ...] = ("inputs", "data_loaders", out)
    elif algorithm_type in ("autonomous", "autonomous_loop_processor"):
        args = ("data_loaders", out)
    else:
        return None
    if algorithm_type.endswith("_loop_processor"):
        args += (LOOP_CHANNEL,)
    return Call("process", args)


def algorithm_calls(
    algorithm_type: str, api_version: int = 2, analyzer: bool = False
) -> tuple[Call, ...]:
    """The calls into the ``Algorithm`` object of an algorithm of ``algorithm_type``
    (``Algorithm.type``: ``legacy`` for API version 1), in the order they happen.

    ``setup`` and ``prepare`` are optional (``prepare`` is never called under
    API version 1); an analyzer's ``process`` gets ``output``, not
    ``outputs``. An evaluator's ``read`` is required for the sequential type
    only. An unknown type (which ``Runner.process`` refuses) has only the
    optional calls.
    """
    calls = [Call("setup", ("parameters",), required=False)]
    if api_version != 1:
        calls.append(Call("prepare", ("data_loaders",), required=False))
    process = _process(algorithm_type, "output" if analyzer else "outputs")
    if process is not None:
        calls.append(process)
    elif algorithm_type in ("sequential_loop_evaluator", "autonomous_loop_evaluator"):
        calls += [
            Call("validate", ("result",)),
            Call("write", ("outputs", "processor_output_name", "end_data_index")),
            Call("read", ("inputs",), required=algorithm_type.startswith("sequential")),
        ]
    return tuple(calls)


#: the calls of the view runner into a view object (``database.Runner``, §9.3)
VIEW_CALLS: tuple[Call, ...] = (
    Call("index", ("root_folder", "parameters")),
    Call("setup", ("root_folder", "parameters", "objs"), ("start_index", "end_index")),
    Call("get_output_mapping", ("output",)),
    Call("get", ("output", "index")),
)
