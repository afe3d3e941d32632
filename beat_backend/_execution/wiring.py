"""Building inputs, data loaders and outputs from an executor configuration.

(algorithms-and-execution.md §7.3 and §7.4.)
"""

from __future__ import annotations

import glob
import os

from .._cache.index import parse_range
from .._cache.sink import CachedDataSink
from .._cache.source import CachedDataSource
from .._core.names import confined_path
from .._dataflow.data_loaders import DataLoader, DataLoaderList
from .._dataflow.inputs import Input, InputGroup, InputList
from .._dataflow.outputs import Output, OutputList, SynchronizationListener
from .._transport.outputs import RemotelySyncedOutput


class AccessMode:
    """Possible access modes."""

    NONE = 0
    LOCAL = 1
    REMOTE = 2


def _range_of(config, channel):
    """``(start, end)`` applied to inputs of ``channel`` (main channel only)."""
    rng = config.get("range")
    if rng and channel == config["channel"]:
        return rng[0], rng[1]
    return None, None


def _is_input_list_member(algorithm, is_main):
    if algorithm.type == algorithm.LEGACY:
        return True
    return algorithm.is_sequential and is_main


def create_inputs_from_configuration(
    config,
    algorithm,
    prefix,
    cache_root,
    cache_access=AccessMode.NONE,
    db_access=AccessMode.NONE,
    unpack=True,
    socket=None,
    databases=None,
    no_synchronisation_listeners=False,
):
    """Build ``(InputList, DataLoaderList)`` for the configured inputs."""
    views = {}
    input_list = InputList()
    data_loader_list = DataLoaderList()
    main_channel = config["channel"]

    for name, details in config["inputs"].items():
        channel = details["channel"]
        is_main = channel == main_channel
        start_index, end_index = _range_of(config, channel)

        if "database" in details:
            if db_access == AccessMode.LOCAL:
                if databases is None:
                    raise OSError("No databases provided")
                key = (details["database"], details["protocol"], details["set"])
                view = views.get(key)
                if view is None:
                    db = databases[details["database"]]
                    view = db.view(details["protocol"], details["set"])
                    view.setup(
                        confined_path(cache_root, details["path"], "database index path"),
                        start_index=start_index,
                        end_index=end_index,
                        pack=False,
                    )
                    views[key] = view
                data_source = view.data_sources[details["output"]]
            elif db_access == AccessMode.REMOTE:
                if socket is None:
                    raise OSError("No socket provided for remote data sources")
                from .._transport.remote import RemoteDataSource

                data_source = RemoteDataSource()
                data_source.setup(socket, name, algorithm.input_map[name], prefix, unpack=unpack)
            else:
                continue
        else:
            if cache_access != AccessMode.LOCAL:
                continue
            path = confined_path(cache_root, details["path"], "cache input path") + ".data"
            data_source = CachedDataSource()
            if not data_source.setup(path, prefix, start_index, end_index, unpack):
                raise OSError(f"cannot load cache file `{details['path']}'")

        if _is_input_list_member(algorithm, is_main):
            group = input_list.group(channel)
            if group is None:
                listener = None if no_synchronisation_listeners else SynchronizationListener()
                group = InputGroup(channel, listener, restricted_access=is_main)
                input_list.add(group)
            group.add(Input(name, algorithm.input_map[name], data_source))
        else:
            loader = data_loader_list[channel]
            if loader is None:
                loader = DataLoader(channel)
                data_loader_list.add(loader)
            loader.add(name, data_source)

    main_loader = data_loader_list[main_channel]
    if main_loader is not None:
        data_loader_list.main_loader = main_loader
    return input_list, data_loader_list


def _largest_index_end(cache_root, path):
    base = confined_path(cache_root, path, "cache input path")
    ends = [r[1] for r in map(parse_range, glob.glob(glob.escape(base) + ".*.index")) if r]
    return max(ends) if ends else -1


def _sink_range(config, input_list, data_loaders, cache_root):
    rng = config.get("range") or [None, None]
    if rng[0] is not None and rng[1] is not None:
        return rng[0], rng[1]
    start, end = _natural_range(config, input_list, data_loaders, cache_root)
    return (start if rng[0] is None else rng[0]), (end if rng[1] is None else rng[1])


def _natural_range(config, input_list, data_loaders, cache_root):
    main_channel = config["channel"]
    for _name, details in config["inputs"].items():
        if details["channel"] == main_channel and "database" not in details:
            return 0, _largest_index_end(cache_root, details["path"])
    for name, details in config["inputs"].items():
        if details["channel"] != main_channel:
            continue
        item = input_list[name] if input_list is not None else None
        if item is not None:
            source = item.data_source
            return 0, (source.last_data_index() if len(source) else -1)
        break
    if data_loaders is not None and data_loaders.main_loader is not None:
        return 0, data_loaders.main_loader.data_index_end
    return 0, -1


def create_outputs_from_configuration(
    config,
    algorithm,
    prefix,
    cache_root,
    input_list=None,
    data_loaders=None,
    loop_socket=None,
):
    """Build ``(OutputList, list of sinks)`` writing into the cache."""
    data_sinks = []
    output_list = OutputList()

    listener = None
    if input_list is not None and input_list.main_group is not None:
        listener = input_list.main_group.synchronization_listener

    if "result" in config:
        outputs = {"result": (config["result"]["path"], algorithm.result_dataformat())}
    else:
        outputs = {
            name: (details["path"], algorithm.dataformats[algorithm.output_map[name]])
            for name, details in config["outputs"].items()
        }

    start_index, end_index = _sink_range(config, input_list, data_loaders, cache_root)

    for name, (path, dataformat) in outputs.items():
        filename = confined_path(cache_root, path, "output path") + ".data"
        os.makedirs(os.path.dirname(filename), exist_ok=True)
        sink = CachedDataSink()
        if not sink.setup(filename, dataformat, start_index, end_index, "binary"):
            raise OSError(f"Cannot create cache sink '{filename}'")
        data_sinks.append(sink)
        if loop_socket is not None:
            output = RemotelySyncedOutput(
                name, sink, loop_socket, listener, force_start_index=start_index
            )
        else:
            output = Output(name, sink, listener, force_start_index=start_index)
        output_list.add(output)
    return output_list, data_sinks


def discard_outputs(output_list) -> None:
    """Drop every output being written (a failed block publishes nothing)."""
    for output in output_list:
        discard = getattr(output.data_sink, "discard", None)
        if discard is not None:
            discard()
        else:
            output.close()


def run_or_discard(step, output_list):
    """``step()`` (a user ``setup``/``prepare``); falsy or raising: discard the outputs.

    A falsy setup/prepare fails the block (platform-client.md §4), and the
    platform's in-process executor drops the executor without a further call:
    outputs opened at construction must not stay in the cache as temporaries.
    """
    try:
        result = step()
    except BaseException:
        discard_outputs(output_list)
        raise
    if not result:
        discard_outputs(output_list)
    return result
