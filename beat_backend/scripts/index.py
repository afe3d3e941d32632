"""The ``index`` script (processes-and-messages.md §5): ``main(argv=None) -> int``."""

import sys

from .._cli.scripts.index import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
