"""The script directories of one block (toolchains-and-experiments.md §4.4), in one place.

Every runner of a block — the local launcher (a planned item,
:func:`item_content`), a Dask worker (the files a task ships) and
``beat-backend block`` (a platform block directory) — describes what the
directories hold in a :class:`BlockContent`; :func:`block_dirs` writes them and
removes them afterwards, :func:`run_in_block_dirs` also runs the block:

* the **run directory** (``execute``, ``loop_execute``): what ``fill_runner``
  puts there (``prefix/`` with the algorithm(s)), then ``configuration.json`` =
  the runner configuration (``convert_experiment_configuration_to_container``)
  with ``uid`` (and the loop's) = this process's (:func:`runner_configuration_here`);
* the **databases-provider directory**, when the block reads a database: what
  ``fill_provider`` puts there (``prefix/`` with the databases), then
  ``configuration.json`` = the provider configuration; a loop block gets a
  second one for ``databases_provider … loop`` (its own copy, or the same).

Each directory is a new ``beat_*`` folder (``tempfile.mkdtemp``, in ``parent``
if given); files are written as :func:`~.planner.dumps_configuration` does.
:func:`write_block_dir` writes the same content as one platform-style block
directory (what ``beat-backend block DIR`` runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

from . import planner
from .processes import ProcessResult, run_block_processes
from .spawner import Spawner

#: ``BlockContent.loop_provider``: the loop provider gets its own copy of the provider directory
OWN = "own"
#: ``BlockContent.loop_provider``: the loop provider reads the main provider's directory
SHARED = "shared"


@dataclasses.dataclass
class BlockContent:
    """What the script directories of one block hold."""

    #: the run directory's ``configuration.json`` (``uid`` rewritten when written)
    runner_configuration: dict
    #: fills the run directory (``prefix/``) before ``configuration.json`` is written
    fill_runner: Callable[[str], None]
    #: the provider directory's ``configuration.json``; ``None``: no databases provider
    provider_configuration: dict | None = None
    #: fills a provider directory (``prefix/``) before ``configuration.json`` is written
    fill_provider: Callable[[str], None] | None = None
    #: the loop provider's directory: :data:`OWN`, :data:`SHARED` or ``None`` (none runs)
    loop_provider: str | None = None

    def __post_init__(self) -> None:
        if self.loop_provider not in (None, OWN, SHARED):
            raise ValueError(
                f"unknown loop_provider {self.loop_provider!r} (expected None, 'own' or 'shared')"
            )

    @property
    def has_loop(self) -> bool:
        """Whether ``loop_execute`` runs (the runner configuration has a ``loop`` section)."""
        return "loop" in self.runner_configuration


@dataclasses.dataclass
class BlockDirs:
    """The directories of one block, as :func:`~.processes.run_block_processes` takes them."""

    run_dir: str
    db_dir: str | None = None
    loop_db_dir: str | None = None


def runner_configuration_here(configuration: dict) -> dict:
    """A copy of ``configuration`` with ``uid`` (and the loop's) = this process's.

    ``execute`` / ``loop_execute`` switch to that user when it differs (§4.4):
    the scripts run as the user running them.
    """
    configuration = dict(configuration)
    configuration["uid"] = os.getuid()
    if "loop" in configuration:
        configuration["loop"] = dict(configuration["loop"], uid=os.getuid())
    return configuration


def item_content(item: planner.PlanItem) -> BlockContent:
    """What a planned item's directories hold: its assets exported from the prefix."""
    return BlockContent(
        runner_configuration=item.runner_configuration,
        fill_runner=functools.partial(planner.export_runner_prefix, item),
        provider_configuration=item.provider_configuration,
        fill_provider=functools.partial(planner.export_provider_prefix, item),
        loop_provider=OWN if item.loop_provider_configuration is not None else None,
    )


def _write_dir(directory: str, fill: Callable[[str], None] | None, configuration: dict) -> str:
    if fill is not None:
        fill(directory)
    with open(os.path.join(directory, "configuration.json"), "wb") as f:
        f.write(planner.dumps_configuration(configuration))
    return directory


def write_block_dir(content: BlockContent, directory: str) -> None:
    """Write ``content`` as one platform-style block directory (``beat-backend block DIR``).

    ``prefix/`` gets what the run directory's holds and, when the block reads a
    database, what the provider directory's holds (the databases);
    ``configuration.json`` is the runner configuration as it is (its ``uid``
    too: ``block`` rewrites it when it runs the block).
    """
    os.makedirs(directory, exist_ok=True)
    content.fill_runner(directory)
    if content.provider_configuration is not None and content.fill_provider is not None:
        content.fill_provider(directory)
    _write_dir(directory, None, content.runner_configuration)


@contextlib.contextmanager
def block_dirs(
    content: BlockContent, parent: str | None = None, keep: bool = False
) -> Iterator[BlockDirs]:
    """Write the script directories of ``content``; they are removed on exit unless ``keep``.

    Directories already made are removed too when writing one fails.
    """
    made: list[str] = []

    def new_dir() -> str:
        directory = tempfile.mkdtemp(prefix="beat_", dir=parent)
        made.append(directory)
        return directory

    try:
        runner = runner_configuration_here(content.runner_configuration)
        dirs = BlockDirs(_write_dir(new_dir(), content.fill_runner, runner))
        provider = content.provider_configuration
        if provider is not None:
            dirs.db_dir = _write_dir(new_dir(), content.fill_provider, provider)
            if content.loop_provider == OWN:
                dirs.loop_db_dir = _write_dir(new_dir(), content.fill_provider, provider)
            elif content.loop_provider == SHARED:
                dirs.loop_db_dir = dirs.db_dir
        yield dirs
    finally:
        if not keep:
            for directory in made:
                shutil.rmtree(directory, ignore_errors=True)


def run_in_block_dirs(
    content: BlockContent,
    cache_root: str,
    *,
    parent: str | None = None,
    keep: bool = False,
    debug: bool = False,
    die_with_parent: bool = False,
    aborted: Callable[[], bool] | None = None,
    spawner: Spawner | None = None,
) -> ProcessResult:
    """Write the directories of ``content`` (:func:`block_dirs`) and run the block in them.

    ``die_with_parent``: the scripts die with the thread that started them;
    ``aborted``: the block is stopped once it returns true (see
    :func:`~.processes.run_block_processes`); ``spawner`` starts the scripts.
    """
    with block_dirs(content, parent=parent, keep=keep) as dirs:
        return run_block_processes(
            dirs.run_dir,
            cache_root,
            db_dir=dirs.db_dir,
            loop_db_dir=dirs.loop_db_dir,
            has_loop=content.has_loop,
            debug=debug,
            die_with_parent=die_with_parent,
            aborted=aborted,
            spawner=spawner,
        )
