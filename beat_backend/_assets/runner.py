"""The runner wrapping a user algorithm object (BEAT ``algorithm.Runner``).

Every call into user code goes through :func:`loader.run`, so user exceptions
become ``exc(original)`` (with the user's traceback) when ``exc`` is given.
"""

from __future__ import annotations

import functools
import logging
import types

from . import loader
from .storage import has_argument

logger = logging.getLogger(__name__)

#: the algorithm types (values of ``Algorithm.type``) the runner treats specially
LEGACY = "legacy"
#: types whose ``prepare`` only sees the secondary data loaders
SECONDARIES_ONLY = ("autonomous", "autonomous_loop_processor")


class Runner:
    """A loader for algorithm objects, with the per-type call conventions.

    ``module`` is the loaded user module, ``obj_name`` the class to
    instantiate, ``algorithm`` the :class:`Algorithm` (parameters, type) and
    ``exc`` the exception class user errors are translated into.
    """

    def __init__(self, module: types.ModuleType, obj_name: str, algorithm, exc=None):
        try:
            class_ = getattr(module, obj_name)
        except AttributeError as e:
            if exc is None:
                raise
            raise exc(e).with_traceback(e.__traceback__) from e
        self.obj = loader.run(class_, "__new__", exc)
        self.name = module.__name__
        self.algorithm = algorithm
        self.exc = exc
        self.ready = not hasattr(self.obj, "setup")
        has_api_v1 = algorithm.api_version == 1
        has_prepare = hasattr(self.obj, "prepare")
        self.prepared = has_api_v1 or not has_prepare
        if has_api_v1 and has_prepare:
            logger.warning("Prepare is a reserved function name starting with API V2")

    def __getattr__(self, key):
        # only called for attributes the runner lacks: delegate to the user object
        obj = self.__dict__.get("obj")
        if obj is None:
            raise AttributeError(key)
        return getattr(obj, key)

    # -- setup / prepare ----------------------------------------------------

    def _check_parameters(self, parameters) -> dict:
        declared = self.algorithm.parameters or {}
        given = dict(parameters or {})
        unknown = [key for key in given if key not in declared]
        if unknown:
            raise (self.exc or KeyError)(
                "parameters `%s' are not declared for algorithm `%s' - valid parameters are `%s'"
                % (",".join(unknown), self.name, ",".join(declared))
            )
        completed = {}
        for key, definition in declared.items():
            if key in given:
                try:
                    completed[key] = self.algorithm.clean_parameter(key, given[key])
                except Exception as e:
                    raise (self.exc or ValueError)(
                        "parameter `%s' cannot be safely cast to the declared type on "
                        "algorithm `%s': %s" % (key, self.name, e)
                    ) from e
            elif "default" in definition:
                completed[key] = definition["default"]
            else:
                raise (self.exc or KeyError)(
                    "parameter `%s' of algorithm `%s' has no value and no default"
                    % (key, self.name)
                )
        return completed

    def setup(self, parameters: dict):
        """Set up the algorithm (only effective on the first call); returns ``ready``."""
        if self.ready:
            return True
        completed = self._check_parameters(parameters)
        self.ready = loader.run(self.obj, "setup", self.exc, completed)
        return self.ready

    def prepare(self, data_loaders):
        """Let the algorithm read its non-principal channels; returns ``prepared``."""
        if self.prepared:
            return self.prepared
        if not self.ready:
            raise (self.exc or RuntimeError)(f"Algorithm '{self.name}' is not yet setup")
        if self.algorithm.api_version == 1 or not hasattr(self.obj, "prepare"):
            self.prepared = True
            return self.prepared
        if self.algorithm.type in SECONDARIES_ONLY:
            data_loaders = data_loaders.secondaries()
        self.prepared = loader.run(self.obj, "prepare", self.exc, data_loaders)
        return self.prepared

    # -- process ------------------------------------------------------------

    def _check_state(self, error):
        if not self.ready:
            raise error(f"Algorithm '{self.name}' is not yet setup")
        if not self.prepared:
            raise error(f"Algorithm '{self.name}' is not yet prepared")

    def process(self, inputs=None, data_loaders=None, outputs=None, output=None, loop_channel=None):
        """Run the user ``process`` with the arguments of the algorithm's type."""
        args = self._process_arguments(inputs, data_loaders, outputs, output, loop_channel)
        return loader.run(self.obj, "process", self.exc, *args)

    def bind_process(
        self, inputs=None, data_loaders=None, outputs=None, output=None, loop_channel=None
    ) -> functools.partial:
        """``process`` with these arguments, checked now: a callable run once per unit.

        The checks of :meth:`process` (state, arguments, loop channel) run
        here, with the same errors; each call runs the user's ``process``.
        """
        args = self._process_arguments(inputs, data_loaders, outputs, output, loop_channel)
        return functools.partial(loader.run, self.obj, "process", self.exc, *args)

    def _process_arguments(self, inputs, data_loaders, outputs, output, loop_channel) -> list:
        error = self.exc or RuntimeError

        def required(argument, name):
            if argument is None:
                raise error(f"Missing argument: {name}")

        self._check_state(error)
        if self.algorithm.isAnalyzer:
            required(output, "output")
            destination = output
        else:
            required(outputs, "outputs")
            destination = outputs

        if self.algorithm.type == LEGACY:
            required(inputs, "inputs")
            return [inputs, destination]

        if self.algorithm.is_sequential:
            required(inputs, "inputs")
            required(data_loaders, "data_loaders")
            args = [inputs, data_loaders, destination]
        elif self.algorithm.is_autonomous:
            required(data_loaders, "data_loaders")
            args = [data_loaders, destination]
        else:
            raise error(f"Unknown algorithm type: {self.algorithm.type}")

        accepts_loop = self._accepts_loop_channel()
        if loop_channel is not None:
            if not accepts_loop:
                raise error(f"Algorithm '{self.name}' is not a valid loop enabled algorithm")
            args.append(loop_channel)
        elif accepts_loop:
            raise error(
                f"Algorithm '{self.name}' is a loop enabled algorithm but no loop_channel given"
            )
        return args

    def _accepts_loop_channel(self) -> bool:
        # inspect.signature costs ~30 us: once per process function, not per unit
        method = getattr(self.obj, "process", None)
        key = getattr(method, "__func__", method)
        cached = self.__dict__.get("_loop_argument")
        if cached is None or cached[0] is not key:
            cached = (key, has_argument(method, "loop_channel"))
            self.__dict__["_loop_argument"] = cached
        return cached[1]

    # -- loop evaluators ----------------------------------------------------

    def _check_loop(self, error):
        if not self.algorithm.is_loop:
            raise error(f"Wrong algorithm type: {self.algorithm.type}")

    def validate(self, result):
        """Ask the evaluator about ``result``; returns its ``(bool, answer)`` tuple."""
        error = self.exc or RuntimeError
        self._check_loop(error)
        self._check_state(error)
        answer = loader.run(self.obj, "validate", self.exc, result)
        if not isinstance(answer, tuple):
            raise error("Improper implementation: validate must return a tuple")
        return answer

    def write(self, outputs, processor_output_name, end_data_index):
        """Let the evaluator write its outputs."""
        self._check_loop(self.exc or RuntimeError)
        return loader.run(
            self.obj, "write", self.exc, outputs, processor_output_name, end_data_index
        )

    def read(self, inputs):
        """Let a sequential evaluator read its inputs (the processor advanced)."""
        self._check_loop(self.exc or RuntimeError)
        return loader.run(self.obj, "read", self.exc, inputs)
