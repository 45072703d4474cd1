"""A minimal Mapbox Vector Tile reader for tests: layers, features, properties (no geometry decoding)."""

from __future__ import annotations

import struct


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _value(buf: bytes):
    for number, _wire, v in _fields(buf):
        if number == 1:
            return v.decode()
        if number == 2:
            return struct.unpack("<f", v)[0]
        if number == 3:
            return struct.unpack("<d", v)[0]
        if number in (4, 5):
            return v
        if number == 6:
            return (v >> 1) ^ -(v & 1)
        if number == 7:
            return bool(v)
    return None


def _packed(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        v, i = _varint(buf, i)
        out.append(v)
    return out


def decode(tile: bytes) -> dict[str, list[dict]]:
    """{layer name: [feature properties (+ '_type' 1 point, 2 line, 3 polygon)]}."""
    layers: dict[str, list[dict]] = {}
    for number, _w, layer in _fields(tile):
        if number != 3:
            continue
        name, keys, values, feats = "", [], [], []
        for n, _w2, v in _fields(layer):
            if n == 1:
                name = v.decode()
            elif n == 2:
                feats.append(v)
            elif n == 3:
                keys.append(v.decode())
            elif n == 4:
                values.append(_value(v))
        out = []
        for f in feats:
            props: dict = {}
            for n, _w3, v in _fields(f):
                if n == 2:
                    tags = _packed(v)
                    for k, val in zip(tags[::2], tags[1::2], strict=True):
                        props[keys[k]] = values[val]
                elif n == 3:
                    props["_type"] = v
            out.append(props)
        layers.setdefault(name, []).extend(out)
    return layers
