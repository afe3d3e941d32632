"""ZeroMQ message handlers (BEAT ``execution.messagehandlers``)."""

from .._execution.messagehandlers import LoopMessageHandler, MessageHandler

__all__ = ["MessageHandler", "LoopMessageHandler"]

for _cls in (MessageHandler, LoopMessageHandler):
    _cls.__module__ = __name__
del _cls
