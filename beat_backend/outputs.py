"""Outputs of a processing block (BEAT ``outputs``)."""

from ._dataflow.outputs import Output, OutputList, SynchronizationListener
from ._transport.outputs import RemotelySyncedOutput

__all__ = ["SynchronizationListener", "Output", "RemotelySyncedOutput", "OutputList"]

for _cls in (SynchronizationListener, Output, RemotelySyncedOutput, OutputList):
    _cls.__module__ = __name__
del _cls
