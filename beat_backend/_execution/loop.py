"""Loops: the processor's ``LoopChannel`` and the evaluator's ``LoopExecutor`` (spec §8.2-8.3)."""

from __future__ import annotations

import logging
import os

from .._assets.algorithm import Algorithm
from .._assets.dataformat import DataFormat
from .._core.errors import DeclarationError
from .._core.jsonio import loads_declaration
from .._transport import grammar
from .._transport.channel import channel_for
from .config import check_runner_configuration
from .messagehandlers import LoopMessageHandler
from .wiring import (
    AccessMode,
    create_inputs_from_configuration,
    create_outputs_from_configuration,
    discard_outputs,
    run_or_discard,
)

logger = logging.getLogger(__name__)


def make_data_format(data, data_format):
    """Convert a dict to an object of ``data_format`` (safe casting, no defaults)."""
    if not isinstance(data, dict):
        raise TypeError(f"Can't transform {type(data)} in dataformat")
    return data_format.type().from_dict(data, casting="safe", add_defaults=False)


def _loop_formats(algorithm, prefix):
    formats = getattr(algorithm, "dataformats", {}) or {}
    request = algorithm.loop_map["request"]
    answer = algorithm.loop_map["answer"]
    return (
        formats.get(request) or DataFormat(prefix, request),
        formats.get(answer) or DataFormat(prefix, answer),
    )


class LoopChannel:
    """The link from a loop-using algorithm (processor) to its loop (evaluator)."""

    def __init__(self, socket):
        self.socket = socket
        self.request_data_format = None
        self.answer_data_format = None

    def setup(self, algorithm, prefix):
        """Load the ``request``/``answer`` formats of the algorithm's loop."""
        self.request_data_format, self.answer_data_format = _loop_formats(algorithm, prefix)

    def validate(self, hypothesis):
        """Ask the loop to validate ``hypothesis`` (a dict); returns ``(bool, answer)``."""
        data = make_data_format(hypothesis, self.request_data_format)
        channel = channel_for(self.socket, what="loop evaluator")
        channel.send(grammar.val(data.pack()))
        reply = channel.recv()
        if reply and reply[0] == grammar.ERR:
            channel.send([grammar.ACK])
        valid, packed = grammar.parse_val_reply(reply)
        answer = self.answer_data_format.type._from_buffer(packed, 0, True)[0]
        return valid, answer


class _UserCodeError(RuntimeError):
    """An exception raised by the evaluator's user code (reported as a user error)."""


class LoopExecutor:
    """Executes the loop evaluator of a block, served through a LoopMessageHandler.

    ``channel`` (keyword only, with ``message_handler=None``): serve the
    processor over this :class:`~beat_backend._transport.channel.Channel`
    through a new ``LoopMessageHandler(None, channel=channel)``. ``db_socket``
    is a connected ZeroMQ PAIR socket or a channel.
    """

    def __init__(
        self,
        message_handler,
        directory,
        dataformat_cache=None,
        database_cache=None,
        library_cache=None,
        cache_root="/cache",
        db_socket=None,
        *,
        channel=None,
    ):
        if channel is not None:
            if message_handler is not None:
                raise ValueError("LoopExecutor: give a message handler or a channel, not both")
            message_handler = LoopMessageHandler(None, channel=channel)
        self.message_handler = message_handler
        self.directory = directory
        self.db_socket = db_socket
        path = os.path.join(directory, "configuration.json")
        with open(path, "rb") as f:
            config = loads_declaration(f.read(), path)
        if not isinstance(config, dict) or not isinstance(config.get("loop"), dict):
            raise DeclarationError(f"configuration `{path}': loop: missing")
        self.data = config["loop"]
        check_runner_configuration(self.data, path, "loop")
        self.cache = cache_root
        self.prefix = os.path.join(directory, "prefix")
        self.errors = []
        self._runner = None
        self.algorithm = Algorithm(
            self.prefix,
            self.data["algorithm"],
            {} if dataformat_cache is None else dataformat_cache,
            {} if library_cache is None else library_cache,
        )
        if not self.algorithm.valid:
            self.errors = list(self.algorithm.errors)
            logger.error("Failed to load algorithm:\n%s", "\n".join(self.errors))
            return
        self.input_list, self.data_loaders = create_inputs_from_configuration(
            self.data,
            self.algorithm,
            self.prefix,
            cache_root,
            cache_access=AccessMode.LOCAL,
            db_access=AccessMode.REMOTE if db_socket is not None else AccessMode.LOCAL,
            socket=db_socket,
            databases=database_cache,
        )
        self.output_list, _ = create_outputs_from_configuration(
            self.data, self.algorithm, self.prefix, cache_root, self.input_list, self.data_loaders
        )
        self.message_handler.setup(self.algorithm, self.prefix)
        self.message_handler.set_executor(self)

    @property
    def runner(self):
        if self._runner is None:
            self._runner = self.algorithm.runner(exc=_UserCodeError)
        return self._runner

    @property
    def address(self):
        return self.message_handler.address

    @property
    def valid(self):
        return not self.errors

    def setup(self):
        """The user's ``setup(parameters)``; falsy or raising: the outputs are discarded."""
        return run_or_discard(lambda: self.runner.setup(self.data["parameters"]), self.output_list)

    def prepare(self):
        """The user's ``prepare(data_loaders)``; falsy or raising: the outputs are discarded."""
        return run_or_discard(lambda: self.runner.prepare(self.data_loaders), self.output_list)

    def process(self):
        """Start serving the processor's requests."""
        self.message_handler.start()

    def validate(self, hypothesis):
        return self.runner.validate(hypothesis)

    def write(self, processor_output_name, end_data_index=None):
        return self.runner.write(self.output_list, processor_output_name, end_data_index)

    def read(self):
        group = self.input_list.main_group
        group.restricted_access = False
        try:
            group.next()
        finally:
            group.restricted_access = True
        return self.runner.read(self.input_list)

    def wait(self):
        self.message_handler.join()

    def close(self):
        for output in getattr(self, "output_list", []):
            output.close()

    def discard(self):
        """Drop the outputs being written (the processor is gone: nothing is published)."""
        discard_outputs(getattr(self, "output_list", []))
