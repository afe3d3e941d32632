"""Loop execution: LoopChannel and LoopExecutor (BEAT ``execution.loop``)."""

from .._execution.loop import LoopChannel, LoopExecutor

__all__ = ["LoopChannel", "LoopExecutor"]

for _cls in (LoopChannel, LoopExecutor):
    _cls.__module__ = __name__
del _cls
