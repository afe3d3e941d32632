"""Dataformat workloads: pack / unpack objects/s beside a raw-numpy baseline.

Small struct ``{int32, float64, string}`` and a 64x64 float32 image. The
baseline does the physical minimum on the same payload: ``tobytes`` for
packing, ``frombuffer(...).copy()`` (images) or ``struct.unpack_from`` +
numpy scalars + a decode (small struct) for unpacking.
"""

from __future__ import annotations

import struct

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
    return rows
