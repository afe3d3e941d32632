"""Write a prefix whose experiment is a chain of N trivial blocks, each copying its input.

    python scripts/make_chain_prefix.py DIR [--blocks 20] [--set test] [--size N]

Copies the bundled prefix's dataformats, database (``synthetic/1``), protocol
template and libraries to ``DIR``, and adds:

* ``algorithms/chain/copy/1``: sequential, one ``example/sample/1`` input, one
  output of the same format; each unit is written back as a dict;
* ``algorithms/chain/count/1``: a sequential analyzer counting the units of
  its input (an experiment needs one);
* ``toolchains/chain/chain<N>/1``: dataset ``data`` (one set of the protocol)
  -> ``copy01`` -> ... -> ``copy<N-1>`` -> analyzer ``count``: N blocks;
* ``experiments/chain/chain/chain<N>/1/chain``, the prefix's default
  experiment (``beat_backend.json``).

``--size`` changes the number of samples of every set of the database's
protocols (default: as bundled, 100 in the ``test`` set of ``default``).
Prints the experiment's name. Used by ``python -m benchmarks --only latency``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(ROOT, "prefix")
#: asset folders copied from the bundled prefix (no algorithm, toolchain or experiment)
COPIED = ("dataformats", "databases", "protocoltemplates", "libraries")
FORMAT = "example/sample/1"

ALGORITHM = {
    "schema_version": 2,
    "api_version": 2,
    "type": "sequential",
    "language": "python",
    "splittable": False,
    "description": "Copies every unit of its input to its output",
    "groups": [
        {
            "name": "main",
            "inputs": {"in": {"type": FORMAT}},
            "outputs": {"out": {"type": FORMAT}},
        }
    ],
}

COUNT = {
    "schema_version": 2,
    "api_version": 2,
    "type": "sequential",
    "language": "python",
    "description": "Counts the units of its input",
    "groups": [{"name": "main", "inputs": {"in": {"type": FORMAT}}}],
    "results": {"count": {"type": "int32", "display": True}},
}

COUNT_CODE = """\
import numpy


class Algorithm:
    def setup(self, parameters):
        self.count = 0
        return True

    def process(self, inputs, data_loaders, output):
        self.count += 1
        if not inputs.hasMoreData():
            output.write({"count": numpy.int32(self.count)})
        return True
"""

CODE = """\
class Algorithm:
    def process(self, inputs, data_loaders, outputs):
        data = inputs["in"].data
        outputs["out"].write({"id": data.id, "features": data.features})
        return True
"""


def _dump(path: str, document: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")


def _resize(prefix: str, size: int) -> None:
    """Every view of ``synthetic/1`` gets ``size`` samples."""
    path = os.path.join(prefix, "databases", "synthetic", "1.json")
    with open(path, encoding="utf-8") as f:
        database = json.load(f)
    for protocol in database["protocols"]:
        for view in protocol["views"].values():
            view["parameters"]["size"] = size
    _dump(path, database)


def _copies(blocks: int) -> list[str]:
    return [f"copy{i:02d}" for i in range(1, blocks)]


def toolchain(blocks: int) -> dict:
    """The toolchain: ``data.sample`` -> copy01 -> ... -> copy<blocks - 1> -> count."""
    names = _copies(blocks)
    sources = ["data.sample"] + [f"{name}.out" for name in names]
    return {
        "schema_version": 2,
        "description": f"A chain of {blocks} blocks, each copying its input",
        "datasets": [{"name": "data", "outputs": ["sample", "label"]}],
        "blocks": [
            {"name": n, "synchronized_channel": "data", "inputs": ["in"], "outputs": ["out"]}
            for n in names
        ],
        "loops": [],
        "analyzers": [{"name": "count", "synchronized_channel": "data", "inputs": ["in"]}],
        "connections": [
            {"from": src, "to": f"{n}.in", "channel": "data"}
            for src, n in zip(sources, names + ["count"])
        ],
        "representation": {"connections": {}, "blocks": {}, "channel_colors": {}},
    }


def experiment(blocks: int, protocol: str, set_name: str) -> dict:
    return {
        "schema_version": 2,
        "description": f"{blocks} copy blocks on synthetic/1 {protocol} {set_name}",
        "datasets": {"data": {"database": "synthetic/1", "protocol": protocol, "set": set_name}},
        "blocks": {
            name: {
                "algorithm": "chain/copy/1",
                "inputs": {"in": "in"},
                "outputs": {"out": "out"},
            }
            for name in _copies(blocks)
        },
        "analyzers": {"count": {"algorithm": "chain/count/1", "inputs": {"in": "in"}}},
        "globals": {"queue": "default", "environment": {"name": "beat_backend", "version": "1"}},
    }


def make_chain_prefix(
    directory: str,
    blocks: int = 20,
    protocol: str = "default",
    set_name: str = "test",
    size: int | None = None,
) -> tuple[str, str]:
    """Write the prefix in ``directory`` (created); returns ``(prefix, experiment name)``."""
    os.makedirs(directory, exist_ok=True)
    for folder in COPIED:
        shutil.copytree(os.path.join(BUNDLED, folder), os.path.join(directory, folder))
    if size is not None:
        _resize(directory, size)
    algorithm = os.path.join(directory, "algorithms", "chain", "copy", "1")
    _dump(algorithm + ".json", ALGORITHM)
    with open(algorithm + ".py", "w", encoding="utf-8") as f:
        f.write(CODE)
    count = os.path.join(directory, "algorithms", "chain", "count", "1")
    _dump(count + ".json", COUNT)
    with open(count + ".py", "w", encoding="utf-8") as f:
        f.write(COUNT_CODE)
    chain = f"chain{blocks}"
    _dump(os.path.join(directory, "toolchains", "chain", chain, "1.json"), toolchain(blocks))
    name = f"chain/chain/{chain}/1/chain"
    _dump(
        os.path.join(directory, "experiments", name + ".json"),
        experiment(blocks, protocol, set_name),
    )
    _dump(os.path.join(directory, "beat_backend.json"), {"default_experiment": name})
    return directory, name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="the prefix to write (must not exist)")
    parser.add_argument(
        "--blocks", type=int, default=20, help="blocks in the chain, analyzer included (20)"
    )
    parser.add_argument("--protocol", default="default", help="protocol of synthetic/1")
    parser.add_argument("--set", dest="set_name", default="test", help="set of the protocol")
    parser.add_argument("--size", type=int, help="samples per set (default: as bundled)")
    args = parser.parse_args(argv)
    if os.path.exists(args.directory):
        parser.error(f"{args.directory} exists")
    _, name = make_chain_prefix(
        args.directory, args.blocks, args.protocol, args.set_name, args.size
    )
    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
