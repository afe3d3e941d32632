"""The ``beat-backend`` command line (the only place that prints or configures logging).

Each subcommand is a module ``beat_backend._cli.<command>`` exposing
``add_parser(subparsers)`` and ``run(args) -> int``; :data:`main.COMMANDS`
lists them.
"""
