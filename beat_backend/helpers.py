"""Various helper methods and classes (BEAT ``helpers``)."""

from ._execution.config import (
    convert_experiment_configuration_to_container,
    convert_loop_to_container,
    parse_inputs,
    parse_outputs,
)
from ._execution.wiring import (
    AccessMode,
    create_inputs_from_configuration,
    create_outputs_from_configuration,
)

__all__ = [
    "parse_inputs",
    "parse_outputs",
    "convert_loop_to_container",
    "convert_experiment_configuration_to_container",
    "AccessMode",
    "create_inputs_from_configuration",
    "create_outputs_from_configuration",
]

AccessMode.__module__ = __name__
