"""The BEAT scripts (BEAT ``scripts``): ``execute``, ``loop_execute``,
``databases_provider``, ``index``, ``describe``.

Each module has ``main(argv=None) -> int`` (``argv`` without the program name,
default ``sys.argv[1:]``; the exit status is returned) and runs as
``python -m beat_backend.scripts.<name>``. The console scripts of the same
names call these functions. Implementations: ``beat_backend._cli.scripts``.
"""

__all__ = ["execute", "loop_execute", "databases_provider", "index", "describe"]
