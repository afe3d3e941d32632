"""Inputs of a processing block (BEAT ``inputs``)."""

from ._dataflow.inputs import Input, InputGroup, InputList, first

__all__ = ["first", "Input", "InputGroup", "InputList"]

for _cls in (Input, InputGroup, InputList):
    _cls.__module__ = __name__
del _cls
