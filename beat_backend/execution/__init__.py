"""Execution utilities (BEAT ``execution``): executors and message handlers."""

from .algorithm import AlgorithmExecutor
from .database import DBExecutor
from .loop import LoopExecutor
from .messagehandlers import LoopMessageHandler, MessageHandler

__all__ = [
    "AlgorithmExecutor",
    "DBExecutor",
    "LoopExecutor",
    "LoopMessageHandler",
    "MessageHandler",
]
