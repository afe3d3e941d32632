"""I/O statistics of a block (processes-and-messages.md §6).

Only the inputs of the :class:`InputList` and the outputs are counted:
data-loader reads are not (reference behaviour).
"""

from __future__ import annotations

import numbers


def _statistics(obj) -> tuple:
    """``obj.statistics()``, or ``(0, 0)`` for a sink/source without counters."""
    method = getattr(obj, "statistics", None)
    return method() if method is not None else (0, 0)


def _file_hash(configuration: dict, output_name: str) -> str:
    if "result" in configuration:
        path = configuration["result"]["path"]
    else:
        path = configuration["outputs"][output_name]["path"]
    return path.replace("/", "")


def io_statistics(configuration: dict, input_list=None, output_list=None) -> dict:
    """Summarise the I/O of the inputs (read side) and outputs (write side).

    Returns ``{"volume", "blocks", "time", "network", "files"}`` in that
    order; one ``files`` entry per output whose ``hash`` is the configured
    output path (``result`` path for analyzers) without its ``/``.
    """
    bytes_read = 0
    blocks_read = 0
    read_duration = 0.0
    if input_list is not None:
        for input_ in input_list:
            size, duration = _statistics(input_.data_source)
            bytes_read += size
            read_duration += duration
            blocks_read += input_.nb_data_blocks_read

    bytes_written = 0
    blocks_written = 0
    write_duration = 0.0
    files = []
    if output_list is not None:
        for output in output_list:
            size, duration = _statistics(output.data_sink)
            bytes_written += size
            write_duration += duration
            blocks_written += output.nb_data_blocks_written
            files.append(
                {
                    "hash": _file_hash(configuration, output.name),
                    "size": size,
                    "blocks": output.nb_data_blocks_written,
                }
            )

    return {
        "volume": {"read": bytes_read, "write": bytes_written},
        "blocks": {"read": blocks_read, "write": blocks_written},
        "time": {"read": read_duration, "write": write_duration},
        "network": {"wait_time": 0.0},
        "files": files,
    }


def update(statistics: dict, additional_statistics: dict) -> None:
    """Add ``additional_statistics`` into ``statistics`` in place.

    Every numeric ``statistics[key][sub]`` (``key`` other than ``files``)
    gets ``additional_statistics[key][sub]`` added; no key is created. The
    ``files`` entries of the additional statistics are appended (the list is
    created if needed).
    """
    for key, values in statistics.items():
        if key == "files" or not isinstance(values, dict):
            continue
        extra = additional_statistics.get(key)
        if not isinstance(extra, dict):
            continue
        for sub, value in values.items():
            if sub not in extra:
                continue
            if isinstance(value, numbers.Number) and not isinstance(value, bool):
                values[sub] = value + extra[sub]
    if "files" in additional_statistics:
        statistics.setdefault("files", []).extend(additional_statistics["files"])
