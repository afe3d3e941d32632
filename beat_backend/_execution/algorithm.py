"""``AlgorithmExecutor``: runs one algorithm block in this process (spec §8.1)."""

from __future__ import annotations

import functools
import logging
import os
import time

from .._assets.algorithm import Algorithm
from .._assets.runner import Runner
from .._core.errors import PeerGoneError
from .._core.jsonio import loads_declaration
from .._dataflow.stats import io_statistics
from .._transport import grammar
from .._transport.channel import GRACE, SLICE, channel_for
from .._transport.pipeline import request as pipeline_request
from .config import check_runner_configuration
from .loop import LoopChannel
from .wiring import (
    AccessMode,
    create_inputs_from_configuration,
    create_outputs_from_configuration,
    discard_outputs,
    run_or_discard,
)

logger = logging.getLogger(__name__)


def read_configuration(directory: str) -> dict:
    """``<directory>/configuration.json`` (key order kept; a syntax error names the file)."""
    path = os.path.join(directory, "configuration.json")
    with open(path, "rb") as f:
        return loads_declaration(f.read(), path)


def advance(input_list) -> None:
    """Move the (restricted) main group to its next unit."""
    group = input_list.main_group
    group.restricted_access = False
    try:
        group.next()
    finally:
        group.restricted_access = True


def bind_process(runner, arguments: dict):
    """The per-unit call of ``runner.process(**arguments)`` (checked once by our Runner)."""
    if type(runner).process is Runner.process:
        return runner.bind_process(**arguments)
    return functools.partial(runner.process, **arguments)  # e.g. a subclass's own process


def request(socket, frames, what: str) -> list:
    """Send a request and return its reply (``RemoteException`` on ``err``)."""
    # after the replies of the ``get`` requests still in flight (read-ahead)
    reply = pipeline_request(channel_for(socket, what=what), frames)
    grammar.raise_if_error(reply)
    return reply


class AlgorithmExecutor:
    """Executes the user algorithm of a block given its execution directory.

    Its links, to the platform (``socket``), the databases provider
    (``db_socket``) and the loop evaluator (``loop_socket``), are connected
    ZeroMQ PAIR sockets or :class:`~beat_backend._transport.channel.Channel`
    objects (e.g. ends of ``memory_pair()``: no ZeroMQ at all). ``channel``
    (keyword only) names the platform link as a channel; ``socket`` is then
    ``None``.
    """

    def __init__(
        self,
        socket,
        directory,
        dataformat_cache=None,
        database_cache=None,
        library_cache=None,
        cache_root="/cache",
        db_socket=None,
        loop_socket=None,
        *,
        channel=None,
    ):
        if channel is not None:
            if socket is not None:
                raise ValueError("AlgorithmExecutor: give a platform socket or a channel, not both")
            socket = channel
        self.socket = socket
        self.db_socket = db_socket
        self.loop_socket = loop_socket
        self.directory = directory
        self.data = read_configuration(directory)
        check_runner_configuration(self.data, os.path.join(directory, "configuration.json"))
        self.cache = cache_root
        self.prefix = os.path.join(directory, "prefix")
        self.algorithm = Algorithm(
            self.prefix,
            self.data["algorithm"],
            {} if dataformat_cache is None else dataformat_cache,
            {} if library_cache is None else library_cache,
        )
        if not self.algorithm.valid:
            raise RuntimeError(
                f"invalid algorithm `{self.data['algorithm']}':\n"
                + "\n".join(self.algorithm.errors)
            )
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
            self.data,
            self.algorithm,
            self.prefix,
            cache_root,
            self.input_list,
            self.data_loaders,
            loop_socket=loop_socket,
        )
        self.loop_channel = None
        if loop_socket is not None:
            self.loop_channel = LoopChannel(loop_socket)
            self.loop_channel.setup(self.algorithm, self.prefix)
        self._runner = None
        #: what the user's ``process()`` last returned (a falsy value fails the block)
        self.returned = None

    @property
    def runner(self):
        """The algorithm runner (loaded on first use)."""
        if self._runner is None:
            self._runner = self.algorithm.runner()
        return self._runner

    @property
    def schema_version(self):
        return self.data.get("schema_version", 1)

    @property
    def analysis(self):
        """Whether this block is an analyzer."""
        return "result" in self.data

    def setup(self):
        """The user's ``setup(parameters)``; falsy or raising: the outputs are discarded."""
        return run_or_discard(lambda: self.runner.setup(self.data["parameters"]), self.output_list)

    def prepare(self):
        """The user's ``prepare(data_loaders)``; falsy or raising: the outputs are discarded."""
        return run_or_discard(lambda: self.runner.prepare(self.data_loaders), self.output_list)

    def _process_sequential(self, runner):
        algorithm = self.algorithm
        legacy = algorithm.type == algorithm.LEGACY
        if legacy:
            logger.warning(
                "%s is using LEGACY I/O API, please upgrade this algorithm as soon as possible",
                algorithm.name,
            )
        outputs = (
            {"output": self.output_list[0]} if self.analysis else {"outputs": self.output_list}
        )
        if legacy:
            arguments = {"inputs": self.input_list, **outputs}
        elif self.analysis:
            arguments = {"inputs": self.input_list, "data_loaders": self.data_loaders, **outputs}
        else:
            arguments = {
                "inputs": self.input_list,
                "data_loaders": self.data_loaders,
                "loop_channel": self.loop_channel,
                **outputs,
            }
        # per unit: the dispatch is bound (and checked) once, at the first unit
        call = None
        loop_socket = self.loop_socket
        has_more = self.input_list.hasMoreData
        retval = True
        while has_more():
            advance(self.input_list)
            if loop_socket is not None:
                request(loop_socket, grammar.rdi(), "loop evaluator")
            if call is None:
                call = bind_process(runner, arguments)
            retval = call()
            if not retval:
                break
        return retval

    def process(self):
        """Run the user code over the data, close the outputs and report ``don``."""
        runner = self.runner
        algorithm = self.algorithm
        try:
            if algorithm.is_sequential or algorithm.type == algorithm.LEGACY:
                retval = self._process_sequential(runner)
            elif self.analysis:
                retval = runner.process(data_loaders=self.data_loaders, output=self.output_list[0])
            else:
                retval = runner.process(
                    data_loaders=self.data_loaders,
                    outputs=self.output_list,
                    loop_channel=self.loop_channel,
                )
            self.returned = retval
            if retval:
                self._check_provider()
        except BaseException:
            # a failed block never leaves a complete-looking output behind
            discard_outputs(self.output_list)
            raise
        if not retval:
            discard_outputs(self.output_list)
            return False
        for output in self.output_list:
            output.close()
        missing = [o.name for o in self.output_list if o.isDataMissing()]
        if missing:
            raise RuntimeError("Missing data on the following output(s): " + ", ".join(missing))
        statistics = io_statistics(self.data, self.input_list, self.output_list)
        self.done(statistics)
        return True

    def _check_provider(self):
        """``PeerGoneError`` if the databases provider died (data read ahead may hide it).

        Checked before the outputs are published: a block whose provider died
        never leaves a complete-looking output behind (spec §7).
        """
        if self.db_socket is None:
            return
        channel = channel_for(self.db_socket, what="databases provider")
        disconnected = getattr(channel, "disconnected", None)
        if disconnected is None or not disconnected():
            return
        limit = time.monotonic() + GRACE + SLICE  # a peer may reconnect within GRACE
        while not channel.peer_gone():
            if not disconnected() or time.monotonic() > limit:
                return
            time.sleep(SLICE)
        raise PeerGoneError(f"the {channel.what} process disconnected (it died or exited)")

    def done(self, statistics):
        """Tell the databases provider, the loop and the platform that the block is done."""
        if self.db_socket is not None:
            request(self.db_socket, grammar.don(statistics), "databases provider")
        if self.loop_socket is not None:
            request(self.loop_socket, grammar.don(), "loop evaluator")
        request(self.socket, grammar.don(statistics), "platform")
