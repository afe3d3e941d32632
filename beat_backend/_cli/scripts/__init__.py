"""The BEAT-compatible scripts (processes-and-messages.md §5, platform-client.md §1-§3).

One module per script: ``execute``, ``loop_execute``, ``databases_provider``,
``index``, ``describe``. Each exposes

* ``NAME`` (the console-script name), ``add_arguments(parser)`` and
  ``build_parser()``;
* ``run(args) -> int``: the script body on parsed arguments;
* ``main(argv=None) -> int``: parse ``argv`` (without the program name,
  default ``sys.argv[1:]``) and run; the exit status is returned, never raised;
* ``add_parser(subparsers)``: the ``beat-backend <name>`` subcommand (same
  arguments, same ``run``).

The public entry points are the facades ``beat_backend.scripts.<name>``.
Module level imports stay cheap (no numpy, no zmq): ``--help`` and
``--version`` are fast; the executors are imported inside ``run``.
"""
