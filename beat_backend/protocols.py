"""What user code implements: one :class:`typing.Protocol` per kind (beyond BEAT).

For type checkers (annotate an object, or check a class with
``x: SequentialAlgorithm = Algorithm()``) and for :func:`isinstance` (the
protocols are ``runtime_checkable``; ``isinstance`` looks at method *names*
only, so ``beat-backend check`` compares signatures with
:func:`inspect.signature` instead).

Algorithms (class ``Algorithm``), by ``type`` and ``api_version``
(algorithms-and-execution.md §1.2, §3.1):

====================================  =========================================
declaration                           protocol
====================================  =========================================
api_version 1, or ``type: legacy``    :class:`LegacyAlgorithm`, :class:`LegacyAnalyzer`
``sequential`` (or no type)           :class:`SequentialAlgorithm`, :class:`SequentialAnalyzer`
``autonomous``                        :class:`AutonomousAlgorithm`, :class:`AutonomousAnalyzer`
``sequential_loop_processor``         :class:`SequentialLoopProcessor`
``autonomous_loop_processor``         :class:`AutonomousLoopProcessor`
``sequential_loop_evaluator``         :class:`SequentialLoopEvaluator`
``autonomous_loop_evaluator``         :class:`AutonomousLoopEvaluator`
====================================  =========================================

An analyzer (a declaration with ``results``) gets ``output``, the one output
its results go to, where the others get ``outputs``. ``setup`` and
``prepare`` are optional for every type (:class:`Setup`, :class:`Prepare`):
they are not members of the protocols above, so a class without them still
matches. :func:`algorithm_protocol` picks the protocol of a declaration.

Database views: :class:`View` (pull-style, what the view runner runs; derive
from ``beat.backend.python.database.View``, which has ``setup`` and
``get_output_mapping``), and :class:`PushView` (the old push-style interface,
which only ``DatabaseTester`` runs).

Every method runs in the block's process, through ``loader.run``: an
exception stops the block with your traceback as the user error, and a
``setup``, ``prepare`` or ``process`` that returns a false value (``None``
included) stops it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - names for the annotations only
    from .data_loaders import DataLoaderList
    from .inputs import InputList
    from .outputs import Output, OutputList

__all__ = [
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
]


# -- optional methods of every algorithm --------------------------------------------------------


@runtime_checkable
class Setup(Protocol):
    """An algorithm with ``setup`` (optional, every type)."""

    def setup(self, parameters: dict) -> bool:
        """Called once, before anything else, with every declared parameter: the
        experiment's values or the defaults, as numpy values (strings as ``numpy.str_``).
        Return a true value to go on."""
        ...


@runtime_checkable
class Prepare(Protocol):
    """An algorithm with ``prepare`` (optional; never called under ``api_version`` 1)."""

    def prepare(self, data_loaders: DataLoaderList) -> bool:
        """Called once after ``setup``, before the first ``process`` (or the first
        request of an evaluator), to read the channels that are not the main one
        (a trained model, ...). Autonomous algorithms and autonomous loop processors
        get only those (``data_loaders.secondaries()``); the others get every loader.
        Return a true value to go on."""
        ...


# -- legacy: api_version 1, or api_version 2 with type legacy -----------------------------------


@runtime_checkable
class LegacyAlgorithm(Protocol):
    """``api_version`` 1 (any ``type``), or ``api_version`` 2 with ``type: legacy``."""

    def process(self, inputs: InputList, outputs: OutputList) -> bool:
        """Called once per unit of the main channel, after the inputs moved to it
        (``inputs[name].data``). Write to ``outputs[name].write(dict)``. Return a true
        value to go on."""
        ...


@runtime_checkable
class LegacyAnalyzer(Protocol):
    """A legacy algorithm with ``results`` (an analyzer)."""

    def process(self, inputs: InputList, output: Output) -> bool:
        """As :meth:`LegacyAlgorithm.process`; ``output.write(dict)`` writes the results
        (every declared result, once the last unit is seen)."""
        ...


# -- sequential -------------------------------------------------------------------------------


@runtime_checkable
class SequentialAlgorithm(Protocol):
    """``type: sequential`` (the default of ``api_version`` 2)."""

    def process(self, inputs: InputList, data_loaders: DataLoaderList, outputs: OutputList) -> bool:
        """Called once per unit of the main channel, after the main inputs moved to it;
        the other channels are read through ``data_loaders``. Write one unit (or fewer:
        every unit must be covered by the end) with ``outputs[name].write(dict)``.
        Return a true value to go on."""
        ...


@runtime_checkable
class SequentialAnalyzer(Protocol):
    """A sequential algorithm with ``results`` (an analyzer)."""

    def process(self, inputs: InputList, data_loaders: DataLoaderList, output: Output) -> bool:
        """As :meth:`SequentialAlgorithm.process`; ``output.write(dict)`` writes the
        results, typically once, when ``inputs.hasMoreData()`` turns false."""
        ...


# -- autonomous -------------------------------------------------------------------------------


@runtime_checkable
class AutonomousAlgorithm(Protocol):
    """``type: autonomous``."""

    def process(self, data_loaders: DataLoaderList, outputs: OutputList) -> bool:
        """Called **once**: walk the loaders yourself (``loader[i]``, ``loader.view``)
        and write with an explicit end index, ``outputs[name].write(dict,
        end_data_index)``. Return a true value."""
        ...


@runtime_checkable
class AutonomousAnalyzer(Protocol):
    """An autonomous algorithm with ``results`` (an analyzer)."""

    def process(self, data_loaders: DataLoaderList, output: Output) -> bool:
        """As :meth:`AutonomousAlgorithm.process`; ``output.write(dict)`` writes the
        results."""
        ...


# -- loops ------------------------------------------------------------------------------------


@runtime_checkable
class LoopChannel(Protocol):
    """The ``loop_channel`` a loop processor gets (``execution.loop.LoopChannel``)."""

    def validate(self, hypothesis: dict) -> tuple[bool, Any]:
        """Send ``hypothesis`` (a dict of the loop's ``request`` format) to the
        evaluator; returns its ``(accepted, answer)``, ``answer`` of the ``answer``
        format."""
        ...


@runtime_checkable
class SequentialLoopProcessor(Protocol):
    """``type: sequential_loop_processor``: a sequential algorithm that uses a loop."""

    def process(
        self,
        inputs: InputList,
        data_loaders: DataLoaderList,
        outputs: OutputList,
        loop_channel: LoopChannel,
    ) -> bool:
        """As :meth:`SequentialAlgorithm.process`, with the loop channel last: it is
        passed by position, and recognised by its name, ``loop_channel``. Ask the
        evaluator with ``loop_channel.validate(dict)``. Return a true value to go on."""
        ...


@runtime_checkable
class AutonomousLoopProcessor(Protocol):
    """``type: autonomous_loop_processor``: an autonomous algorithm that uses a loop."""

    def process(
        self, data_loaders: DataLoaderList, outputs: OutputList, loop_channel: LoopChannel
    ) -> bool:
        """As :meth:`AutonomousAlgorithm.process` (called once), with the loop channel
        last, passed by position and recognised by its name, ``loop_channel``."""
        ...


@runtime_checkable
class AutonomousLoopEvaluator(Protocol):
    """``type: autonomous_loop_evaluator``: the loop a processor asks.

    ``setup`` and ``prepare`` as for every algorithm; then the evaluator serves the
    processor's requests. ``read`` is optional here: it is called only when the
    processor is sequential (define it, as :class:`SequentialLoopEvaluator` does, for
    such a processor).
    """

    def validate(self, result: Any) -> tuple[bool, Any]:
        """Called for each ``loop_channel.validate(...)`` of the processor, with the
        request (an object of the loop's ``request`` format). Must return a tuple
        ``(accepted, answer)``: ``answer`` a dict (or object) of the ``answer`` format."""
        ...

    def write(self, outputs: OutputList, processor_output_name: str, end_data_index: int) -> Any:
        """Called each time the processor writes its output ``processor_output_name``
        (up to ``end_data_index``, or ``None``): write the evaluator's own outputs for
        that range. The return value is not used."""
        ...


@runtime_checkable
class SequentialLoopEvaluator(AutonomousLoopEvaluator, Protocol):
    """``type: sequential_loop_evaluator``: :class:`AutonomousLoopEvaluator` plus ``read``."""

    def read(self, inputs: InputList) -> Any:
        """Called each time the processor moves to its next unit, after this block's
        main inputs moved with it (``inputs[name].data``). The return value is not
        used."""
        ...


# -- database views ---------------------------------------------------------------------------


@runtime_checkable
class View(Protocol):
    """A pull-style database view, the class a set's ``view`` names (§9.3, §9.5).

    Derive from ``beat.backend.python.database.View`` and implement ``index`` and
    ``get``: the base class has ``setup`` and ``get_output_mapping``. The view runner
    creates it with no argument.
    """

    def index(self, root_folder: str, parameters: dict) -> list:
        """Called when the set's index file is built (``beat-backend run`` does it when
        it is missing): return a list of named tuples, one per entry, the entries of one
        higher-level unit consecutive. Store file names, never the data itself."""
        ...

    def setup(
        self,
        root_folder: str,
        parameters: dict,
        objs: list,
        start_index: int | None = None,
        end_index: int | None = None,
    ) -> Any:
        """Called before the data is read, with the entries read back from the index
        file (named tuples with the sorted field names) and the range to serve (by
        keyword). Keep them as ``self.objs`` (the range only). The return value is not
        used."""
        ...

    def get_output_mapping(self, output: str) -> str:
        """The entry field that groups the units of ``output`` (default: its name)."""
        ...

    def get(self, output: str, index: int) -> Any:
        """The value of ``output`` for entry ``index`` of ``self.objs``: a dict of the
        output's format (or an object of it)."""
        ...


@runtime_checkable
class PushView(Protocol):
    """The push-style view of old BEAT code, which only ``DatabaseTester`` runs (§9.6):
    the view runner of ``beat-backend run`` and the platform need a :class:`View`."""

    def setup(self, root_folder: str, outputs: Any, parameters: dict) -> bool:
        """Called once with the (mock) outputs to write to."""
        ...

    def next(self) -> bool:
        """Write the next unit of every connected output (``output.write(data,
        end_data_index)``); return a true value."""
        ...

    def done(self, last_data_index: int) -> bool:
        """Whether everything up to ``last_data_index`` was written."""
        ...


#: (algorithm type, analyzer) -> protocol
_ALGORITHMS: dict[tuple[str, bool], type] = {
    ("legacy", False): LegacyAlgorithm,
    ("legacy", True): LegacyAnalyzer,
    ("sequential", False): SequentialAlgorithm,
    ("sequential", True): SequentialAnalyzer,
    ("autonomous", False): AutonomousAlgorithm,
    ("autonomous", True): AutonomousAnalyzer,
    ("sequential_loop_processor", False): SequentialLoopProcessor,
    ("autonomous_loop_processor", False): AutonomousLoopProcessor,
    ("sequential_loop_evaluator", False): SequentialLoopEvaluator,
    ("autonomous_loop_evaluator", False): AutonomousLoopEvaluator,
}


def algorithm_protocol(algorithm_type: str, analyzer: bool = False) -> type:
    """The protocol of an ``Algorithm`` class: ``algorithm_type`` is ``Algorithm.type``
    (``legacy`` for ``api_version`` 1), ``analyzer`` whether it declares ``results``.
    ``KeyError`` for a type that has none (e.g. an unknown type)."""
    return _ALGORITHMS[(algorithm_type, bool(analyzer))]
