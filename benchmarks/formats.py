"""Dataformat workloads: pack / unpack objects/s beside a raw-numpy baseline.

Small struct ``{int32, float64, string}`` and a 64x64 float32 image. The
baseline does the physical minimum on the same payload: ``tobytes`` for
packing, ``frombuffer(...).copy()`` (images) or ``struct.unpack_from`` +
numpy scalars + a decode (small struct) for unpacking.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile

import numpy

from beat_backend.dataformat import DataFormat

from ._harness import Row, rate


def _small():
    df = DataFormat(".", {"a": "int32", "b": "float64", "c": "string"})
    return df.type, df.type(a=7, b=2.5, c="hello world")


def _image():
    df = DataFormat(".", {"img": [64, 64, "float32"]})
    arr = numpy.random.default_rng(0).random((64, 64), dtype=numpy.float32)
    return df.type, df.type(img=arr)


def run(quick: bool = False) -> list[Row]:
    repeat = 5
    rows = []
    n_small = 20_000 if quick else 200_000
    n_img = 10_000 if quick else 100_000

    T, obj = _small()
    data = obj.pack()
    st = struct.Struct("<idQ")
    raw_str = b"hello world"

    def pack_small():
        for _ in range(n_small):
            obj.pack()
        return n_small

    def raw_pack_small():
        i32, f64 = numpy.int32(7), numpy.float64(2.5)
        for _ in range(n_small):
            s = raw_str.decode().encode("utf-8")
            b"".join((st.pack(i32, f64, len(s)), s))
        return n_small

    def unpack_small():
        fb = T._from_buffer
        for _ in range(n_small):
            fb(data, 0)
        return n_small

    def unpack_small_api():
        for _ in range(n_small):
            T().unpack(data)
        return n_small

    def raw_unpack_small():
        i32, f64 = numpy.int32, numpy.float64
        for _ in range(n_small):
            a, b, n = st.unpack_from(data, 0)
            (i32(a), f64(b), str(data[16 : 16 + n], "utf-8"))
        return n_small

    base_pack = rate(raw_pack_small, repeat)
    base_unpack = rate(raw_unpack_small, repeat)
    r = rate(pack_small, repeat)
    rows.append(Row("pack small struct", "objects/s", r, base_pack, ">= 500k/s", r >= 500_000))
    r = rate(unpack_small, repeat)
    rows.append(
        Row("unpack small struct (decoder)", "objects/s", r, base_unpack, ">= 500k/s", r >= 500_000)
    )
    r = rate(unpack_small_api, repeat)
    rows.append(
        Row(
            "unpack small struct (T().unpack)",
            "objects/s",
            r,
            base_unpack,
            ">= 500k/s",
            r >= 500_000,
        )
    )

    T, obj = _image()
    data = obj.pack()
    arr = obj.img

    def pack_img():
        for _ in range(n_img):
            obj.pack()
        return n_img

    def raw_pack_img():
        hdr = struct.pack("<QQ", 64, 64)
        for _ in range(n_img):
            b"".join((hdr, arr.tobytes()))
        return n_img

    def unpack_img():
        fb = T._from_buffer
        for _ in range(n_img):
            fb(data, 0)
        return n_img

    def unpack_img_api():
        for _ in range(n_img):
            T().unpack(data)
        return n_img

    def raw_unpack_img():
        for _ in range(n_img):
            numpy.frombuffer(data, numpy.float32, 4096, 16).reshape(64, 64).copy()
        return n_img

    base_pack = rate(raw_pack_img, repeat)
    base_unpack = rate(raw_unpack_img, repeat)
    r = rate(pack_img, repeat)
    rows.append(
        Row("pack 64x64 float32 image", "objects/s", r, base_pack, ">= 200k/s", r >= 200_000)
    )
    r = rate(unpack_img, repeat)
    rows.append(
        Row(
            "unpack 64x64 float32 image (decoder)",
            "objects/s",
            r,
            base_unpack,
            ">= 200k/s",
            r >= 200_000,
        )
    )
    r = rate(unpack_img_api, repeat)
    rows.append(
        Row(
            "unpack 64x64 float32 image (T().unpack)",
            "objects/s",
            r,
            base_unpack,
            ">= 200k/s",
            r >= 200_000,
        )
    )
    rows.extend(_asset_rows(quick, repeat))
    return rows


#: a format referencing two others (three declaration files)
_DECLARATIONS = {
    "user/point/1": {"x": "float64", "y": "float64"},
    "user/label/1": {"text": "string", "id": "int32"},
    "user/sample/1": {
        "p": "user/point/1",
        "l": "user/label/1",
        "img": [64, 64, "float32"],
        "tags": [0, "string"],
    },
}


def _asset_rows(quick: bool, repeat: int) -> list[Row]:
    """Dataformat load, hash and class build; baselines: reading / hashing the same files."""
    n = 200 if quick else 1_000
    root = tempfile.mkdtemp(prefix="beat_bench_formats_")
    try:
        paths = []
        for name, decl in _DECLARATIONS.items():
            path = os.path.join(root, "dataformats", name + ".json")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(decl, f, indent=4)
            paths.append(path)

        def load():
            for _ in range(n):
                assert DataFormat(root, "user/sample/1").valid
            return n

        def raw_load():
            for _ in range(n):
                for path in paths:
                    with open(path, "rb") as f:
                        json.loads(f.read())
            return n

        def hash_():
            df = DataFormat(root, "user/sample/1")
            for _ in range(n):
                df.hash()
            return n

        def raw_hash():
            with open(paths[-1], "rb") as f:
                data = f.read()
            for _ in range(n):
                hashlib.sha256(json.dumps(json.loads(data), sort_keys=True).encode()).hexdigest()
            return n

        fresh = iter(range(10**9))

        def build_new():
            # a structure never seen: its codec is compiled, then the class made
            for _ in range(n // 4):
                i = next(fresh)
                assert DataFormat(".", {f"a{i}": "int32", "b": [0, "float64"], "c": "string"}).type
            return n // 4

        def build_known():
            # the same structure again: the compiled codec is shared
            for _ in range(n):
                assert DataFormat(".", {"a": "int32", "b": [0, "float64"], "c": "string"}).type
            return n

        rows = []
        base = rate(raw_load, repeat)
        r = rate(load, repeat)
        rows.append(
            Row(
                "dataformat load (3 files, references resolved)",
                "loads/s",
                r,
                base,
                "",
                note="baseline: open + json.loads of the 3 files",
            )
        )
        base = rate(raw_hash, repeat)
        r = rate(hash_, repeat)
        rows.append(
            Row(
                "dataformat hash",
                "hashes/s",
                r,
                base,
                "",
                note="baseline: json.loads + sorted json.dumps + SHA-256 of the file",
            )
        )
        r = rate(build_new, repeat)
        rows.append(Row("class build, new structure (codec compiled)", "classes/s", r))
        r = rate(build_known, repeat)
        rows.append(Row("class build, known structure (codec shared)", "classes/s", r))
        return rows
    finally:
        shutil.rmtree(root, ignore_errors=True)
