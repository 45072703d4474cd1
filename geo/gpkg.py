"""GeoPackage reading and writing with sqlite3 and the GPKG binary geometry header (no GDAL)."""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import shapely
from shapely.geometry.base import BaseGeometry

# Envelope sizes (bytes) by the header's envelope indicator (flags bits 1-3).
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


class GpkgError(ValueError):
    """A file that is not a usable GeoPackage, or a geometry blob that cannot be read."""


@dataclass(frozen=True)
class Layer:
    """One feature table: its geometry column and spatial reference."""

    table: str
    geometry_column: str
    srs_id: int
    organization: str | None
    organization_code: int | None
    definition: str | None

    @property
    def crs(self) -> str:
        """The layer CRS as 'EPSG:n' when it is one, else the WKT definition."""
        if self.organization and self.organization.upper() == "EPSG" and self.organization_code:
            return f"EPSG:{self.organization_code}"
        if self.srs_id in (4326, 4490):
            return f"EPSG:{self.srs_id}"
        return self.definition or f"EPSG:{self.srs_id}"


def parse_geometry_blob(blob: bytes) -> tuple[BaseGeometry | None, int]:
    """(geometry, srs_id) of a GeoPackage geometry blob; None geometry for the empty flag."""
    if blob is None:
        return None, 0
    if len(blob) < 8 or blob[:2] != b"GP":
        raise GpkgError("geometry blob does not start with the GPKG magic 'GP'")
    flags = blob[3]
    order = "<" if flags & 0x01 else ">"
    envelope = (flags >> 1) & 0x07
    if envelope not in _ENVELOPE_BYTES:
        raise GpkgError(f"geometry blob has an invalid envelope indicator {envelope}")
    (srs_id,) = struct.unpack(order + "i", blob[4:8])
    if flags & 0x10:  # empty geometry
        return None, srs_id
    wkb = blob[8 + _ENVELOPE_BYTES[envelope] :]
    try:
        return shapely.from_wkb(wkb), srs_id
    except Exception as exc:  # shapely raises GEOSException for bad WKB
        raise GpkgError(f"geometry WKB cannot be read: {exc}") from None


def make_geometry_blob(geom: BaseGeometry, srs_id: int = 4326) -> bytes:
    """A GeoPackage geometry blob: header (little-endian, no envelope) + WKB."""
    flags = 0x01 | (0x10 if geom.is_empty else 0)
    return (
        b"GP" + bytes([0, flags]) + struct.pack("<i", srs_id) + shapely.to_wkb(geom, byte_order=1)
    )


def layers(path: str | Path) -> list[Layer]:
    """The feature layers of a GeoPackage."""
    try:
        con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise GpkgError(f"{path}: cannot open as SQLite: {exc}") from None
    try:
        rows = con.execute(
            "SELECT g.table_name, g.column_name, g.srs_id, s.organization, "
            "s.organization_coordsys_id, s.definition FROM gpkg_geometry_columns g "
            "JOIN gpkg_contents c ON c.table_name = g.table_name "
            "LEFT JOIN gpkg_spatial_ref_sys s ON s.srs_id = g.srs_id "
            "WHERE c.data_type = 'features' ORDER BY g.table_name"
        ).fetchall()
    except sqlite3.Error as exc:
        raise GpkgError(f"{path}: not a GeoPackage (no gpkg_geometry_columns): {exc}") from None
    finally:
        con.close()
    return [Layer(*r) for r in rows]


def read_layer(
    path: str | Path, layer: str | None = None
) -> tuple[Layer, Iterator[tuple[int, dict, bytes | None]]]:
    """(layer, rows) where each row is (feature id, attributes, geometry blob)."""
    found = layers(path)
    if not found:
        raise GpkgError(f"{path}: the GeoPackage has no feature layers")
    if layer is None:
        chosen = found[0]
    else:
        matches = [x for x in found if x.table == layer]
        if not matches:
            raise GpkgError(
                f"{path}: no layer {layer!r} (layers: {', '.join(x.table for x in found)})"
            )
        chosen = matches[0]

    def rows() -> Iterator[tuple[int, dict, bytes | None]]:
        con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            pk = None
            for info in con.execute(f'PRAGMA table_info("{chosen.table}")'):
                if info["pk"]:
                    pk = info["name"]
            for n, row in enumerate(con.execute(f'SELECT * FROM "{chosen.table}"'), start=1):
                attrs = {k: row[k] for k in row.keys() if k not in (chosen.geometry_column, pk)}
                fid = row[pk] if pk else n
                yield fid, attrs, row[chosen.geometry_column]
        finally:
            con.close()

    return chosen, rows()


def write_gpkg(
    path: str | Path,
    table: str,
    features: list[tuple[dict, BaseGeometry]],
    srs_id: int = 4326,
    geometry_type: str = "GEOMETRY",
) -> None:
    """Write a minimal GeoPackage with one feature layer (for exports and tests)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        con.execute(
            "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, "
            "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, "
            "definition TEXT NOT NULL, description TEXT)"
        )
        con.execute(
            "INSERT INTO gpkg_spatial_ref_sys VALUES ('WGS 84', 4326, 'EPSG', 4326, 'EPSG:4326', NULL)"
        )
        if srs_id != 4326:
            con.execute(
                "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, 'EPSG', ?, ?, NULL)",
                (f"EPSG:{srs_id}", srs_id, srs_id, f"EPSG:{srs_id}"),
            )
        con.execute(
            "CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT NOT NULL, "
            "identifier TEXT, description TEXT DEFAULT '', last_change DATETIME, min_x DOUBLE, "
            "min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER)"
        )
        con.execute(
            "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
            "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, "
            "m TINYINT NOT NULL)"
        )
        keys: dict[str, str] = {}
        for props, _ in features:
            for k, v in props.items():
                kind = (
                    "INTEGER"
                    if isinstance(v, bool | int)
                    else "REAL"
                    if isinstance(v, float)
                    else "TEXT"
                )
                if keys.get(k, kind) != kind:
                    kind = "TEXT"
                keys[k] = kind
        cols = ", ".join(f'"{k}" {t}' for k, t in keys.items())
        con.execute(
            f'CREATE TABLE "{table}" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom BLOB'
            + (f", {cols}" if cols else "")
            + ")"
        )
        con.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES (?, 'features', ?, ?)",
            (table, table, srs_id),
        )
        con.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)",
            (table, geometry_type, srs_id),
        )
        names = ", ".join(["geom", *(f'"{k}"' for k in keys)])
        marks = ", ".join("?" * (len(keys) + 1))
        for props, geom in features:
            values = [make_geometry_blob(geom, srs_id), *(_cell(props.get(k)) for k in keys)]
            con.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', values)
        con.commit()
    finally:
        con.close()


def _cell(value: object) -> object:
    if value is None or isinstance(value, int | float | str):
        return value
    return str(value)
