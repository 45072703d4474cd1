"""Read features from GeoJSON, GeoPackage or CSV points in any declared CRS into WGS 84, checking geometry."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity, make_valid

from geo.divisions import decode_text
from geo.gpkg import GpkgError, parse_geometry_blob, read_layer

WGS84_NAMES = {
    "wgs84",
    "epsg:4326",
    "4326",
    "crs84",
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:epsg::4326",
}
CHINA_NAMES = {"gcj02", "gcj-02", "bd09", "bd-09"}
Dim = str  # "point" | "line" | "polygon"
_DIM = {
    "Point": "point",
    "MultiPoint": "point",
    "LineString": "line",
    "MultiLineString": "line",
    "LinearRing": "line",
    "Polygon": "polygon",
    "MultiPolygon": "polygon",
}
_DIM_INDEX = {"point": 1, "line": 2, "polygon": 3}


class FeatureFileError(ValueError):
    """The file as a whole cannot be read (format, CRS, encoding), with the reason."""


@dataclass
class Feature:
    """One feature: where it is in the file, its id and attributes, and its WGS 84 geometry."""

    line: int | None
    fid: str | None
    props: dict
    geom: BaseGeometry | None
    notes: list[str] = field(default_factory=list)


@dataclass
class FeatureFile:
    """All features of a file, the CRS they were read in, and those that could not be read."""

    features: list[Feature]
    crs: str
    rejected: list[tuple[int | None, str | None, str]]
    data: bytes
    declared: bool = False  # the CRS was given (--crs) or declared by the file, not assumed


# --- CRS ---------------------------------------------------------------------------------------


def normalise_crs(crs: str | None) -> str:
    """'wgs84', 'gcj02', 'bd09' or an 'EPSG:n' / other pyproj-readable definition."""
    if crs is None or not str(crs).strip():
        return "wgs84"
    name = str(crs).strip()
    low = name.lower()
    if low in WGS84_NAMES:
        return "wgs84"
    if low in CHINA_NAMES:
        return low.replace("-", "")
    if re.fullmatch(r"\d{4,6}", name):
        return f"EPSG:{name}"
    return name


def transformer(crs: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function mapping an (N, 2) array of x, y in `crs` to lon, lat WGS 84 (None: identity)."""
    crs = normalise_crs(crs)
    if crs == "wgs84":
        return None
    if crs in ("gcj02", "bd09"):
        from hardware.crs import to_wgs84

        def china(xy: np.ndarray) -> np.ndarray:
            return np.array(
                [to_wgs84(float(x), float(y), crs) for x, y in xy], dtype=float
            ).reshape(-1, 2)

        return china
    try:
        source = CRS.from_user_input(crs)
    except CRSError as exc:
        raise FeatureFileError(
            f"crs: {crs!r} is not a CRS pyproj knows ({exc}); use wgs84, gcj02, bd09 or EPSG:n"
        ) from None
    if source.to_epsg() == 4326:
        return None
    tr = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return project


def to_wgs84_geometry(
    geom: BaseGeometry, fn: Callable[[np.ndarray], np.ndarray] | None
) -> BaseGeometry:
    return geom if fn is None else shapely.transform(geom, fn)


# --- geometry checks ---------------------------------------------------------------------------


def check_geometry(
    geom: BaseGeometry | None, dims: set[Dim]
) -> tuple[BaseGeometry | None, str | None, str | None]:
    """(geometry to use, repair note, rejection reason): repairs invalid polygons when safe.

    Safe means make_valid keeps a non-empty geometry of the wanted dimension covering the same
    extent (within 1% of its diagonal); otherwise the feature is rejected with GEOS's reason.
    """
    if geom is None or geom.is_empty:
        return None, None, "has no geometry"
    kind = _DIM.get(geom.geom_type)
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if _DIM.get(g.geom_type) in dims]
        if not parts:
            return None, None, f"is a GeometryCollection without {'/'.join(sorted(dims))} parts"
        geom = shapely.union_all(parts)
        kind = _DIM.get(geom.geom_type)
    if kind not in dims:
        return None, None, f"is a {geom.geom_type}; expected {' or '.join(sorted(dims))}"
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        return None, None, "has non-finite coordinates"
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        return (
            None,
            None,
            "has coordinates outside lon -180..180 / lat -90..90 after conversion (wrong --crs?)",
        )
    if geom.is_valid:
        return geom, None, None
    why = explain_validity(geom)
    fixed = make_valid(geom)
    fixed = shapely.get_parts(fixed)
    fixed = [g for g in fixed if _DIM.get(g.geom_type) == kind]
    if not fixed:
        return None, None, f"is invalid ({why}) and cannot be repaired"
    repaired = shapely.union_all(fixed)
    a, b = np.array(geom.bounds), np.array(repaired.bounds)
    diag = math.hypot(a[2] - a[0], a[3] - a[1]) or 1e-12
    if kind == "polygon" and (repaired.area <= 0 or np.abs(a - b).max() > 0.01 * diag):
        return (
            None,
            None,
            f"is invalid ({why}); a repair would change its extent, so it is rejected",
        )
    return repaired, f"repaired invalid geometry ({why})", None


# --- readers -----------------------------------------------------------------------------------


def _feature_offsets(content: str) -> list[int] | None:
    """Line numbers (1-based) of each element of the top-level "features" array, if findable."""
    match = re.search(r'"features"\s*:\s*\[', content)
    if not match:
        return None
    decoder = json.JSONDecoder()
    pos = match.end()
    lines: list[int] = []
    line = content.count("\n", 0, pos) + 1
    last = pos
    while True:
        while pos < len(content) and content[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(content) or content[pos] == "]":
            return lines
        line += content.count("\n", last, pos)
        last = pos
        lines.append(line)
        try:
            _, pos = decoder.raw_decode(content, pos)
        except json.JSONDecodeError:
            return None


def _read_geojson(
    data: bytes, crs: str | None
) -> tuple[list[tuple[int | None, str | None, dict, BaseGeometry | None, str | None]], str]:
    content, _ = decode_text(data)
    try:
        doc = json.loads(content)
    except json.JSONDecodeError as exc:
        raise FeatureFileError(f"not valid JSON: {exc}") from None
    if doc.get("type") == "Feature":
        feats = [doc]
    elif doc.get("type") == "FeatureCollection":
        feats = doc.get("features") or []
    else:
        raise FeatureFileError("a GeoJSON file must be a FeatureCollection or a Feature")
    declared = None
    member = doc.get("crs")
    if isinstance(member, dict):
        declared = (member.get("properties") or {}).get("name")
    used = crs if crs else declared
    lines = _feature_offsets(content) if doc.get("type") == "FeatureCollection" else [1]
    out = []
    for i, f in enumerate(feats):
        line = lines[i] if lines and i < len(lines) else i + 1
        if not isinstance(f, dict):
            out.append((line, None, {}, None, "is not a GeoJSON Feature object"))
            continue
        props = dict(f.get("properties") or {})
        fid = f.get("id")
        geometry = f.get("geometry")
        try:
            geom = shape(geometry) if geometry else None
            error = None
        except Exception as exc:  # malformed coordinates
            geom, error = None, f"geometry cannot be read: {exc}"
        out.append((line, None if fid is None else str(fid), props, geom, error))
    return out, normalise_crs(used)


def _read_gpkg(path: Path, crs: str | None, layer: str | None):
    try:
        info, rows = read_layer(path, layer)
    except GpkgError as exc:
        raise FeatureFileError(str(exc)) from None
    out = []
    for fid, attrs, blob in rows:
        try:
            geom, _ = parse_geometry_blob(blob)
            error = None
        except GpkgError as exc:
            geom, error = None, str(exc)
        out.append((fid, str(fid), attrs, geom, error))
    return out, normalise_crs(crs if crs else info.crs)


_LON = ("lon", "lng", "longitude", "x", "经度")
_LAT = ("lat", "latitude", "y", "纬度")


def _read_csv(data: bytes, crs: str | None):
    content, _ = decode_text(data)
    reader = csv.DictReader(io.StringIO(content))
    fields = {f.strip().lower(): f for f in (reader.fieldnames or [])}
    lon_key = next((fields[k] for k in _LON if k in fields), None)
    lat_key = next((fields[k] for k in _LAT if k in fields), None)
    if lon_key is None or lat_key is None:
        raise FeatureFileError(
            "a CSV of points needs lon and lat columns (lon/lng/x/经度, lat/y/纬度)"
        )
    out = []
    for row in reader:
        line = reader.line_num
        props = {
            k.strip(): v for k, v in row.items() if k not in (lon_key, lat_key) and k is not None
        }
        try:
            geom = Point(float(row[lon_key]), float(row[lat_key]))
            error = None
        except (TypeError, ValueError):
            geom, error = (
                None,
                f"lon/lat {row.get(lon_key)!r}, {row.get(lat_key)!r} are not numbers",
            )
        fid = props.get("id") or None
        out.append((line, fid, props, geom, error))
    return out, normalise_crs(crs)


def read_features(
    path: str | Path, crs: str | None = None, layer: str | None = None
) -> FeatureFile:
    """Read a .geojson/.json, .gpkg or .csv file; geometries converted to WGS 84.

    `crs` overrides what the file declares (GeoJSON "crs" member, GeoPackage srs_id); without
    either, WGS 84 is assumed. GCJ-02 and BD-09 are converted with hardware.crs, EPSG codes by pyproj.
    """
    path = Path(path)
    if not path.exists():
        raise FeatureFileError(f"{path}: no such file")
    data = path.read_bytes()
    suffix = path.suffix.lower()
    from geo.osm import is_osm_file

    if is_osm_file(path, data[:512]):
        raise FeatureFileError(
            f"{path.name} is an OpenStreetMap file: `gridwatch import roads` reads its streets "
            "and railways; for other features convert it to GeoJSON or GeoPackage first"
        )
    if suffix == ".gpkg" or data[:16] == b"SQLite format 3\x00":
        raw, used = _read_gpkg(path, crs, layer)
    elif suffix == ".csv":
        raw, used = _read_csv(data, crs)
    else:
        raw, used = _read_geojson(data, crs)
    from geo.crs_guard import check_projected_degrees

    check_projected_degrees([r[3] for r in raw if r[3] is not None], used)
    fn = transformer(used)
    features: list[Feature] = []
    rejected: list[tuple[int | None, str | None, str]] = []
    for line, fid, props, geom, error in raw:
        if error:
            rejected.append((line, fid, error))
            continue
        if geom is not None and not geom.is_empty:
            try:
                geom = to_wgs84_geometry(geom, fn)
            except Exception as exc:  # a point outside the projection's domain
                rejected.append((line, fid, f"cannot convert from {used}: {exc}"))
                continue
        features.append(Feature(line, fid, props, geom))
    return FeatureFile(features, used, rejected, data, declared=crs is not None or used != "wgs84")


def prop(props: dict, *names: str, default: object = None) -> object:
    """The first present, non-empty property among `names` (case-insensitive)."""
    lowered = {str(k).lower(): v for k, v in props.items()}
    for name in names:
        v = lowered.get(name.lower())
        if v is not None and v != "":
            return v
    return default


def dims_index(dim: Dim) -> int:
    return _DIM_INDEX[dim]
