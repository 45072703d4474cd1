"""Mapbox vector tiles from PostGIS (ST_AsMVT): clustered devices, coverage sectors, boundaries."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Connection, text

from hardware.kinds import KINDS

EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
CLUSTER_BELOW_Z = 15  # from this zoom on every device is its own feature
SECTORS_FROM_Z = 15
GRIDS_FROM_Z = 12
KEY_SITES_FROM_Z = 11
ROADS_FROM_Z = 11
CLUSTER_CELLS = 8  # cluster cells per tile side (a 256 px tile -> 32 px cells)
MOVING_KINDS = tuple(sorted(k.name for k in KINDS.values() if k.position_s))
LAYERS = ("devices", "context")


class TileError(ValueError):
    """A tile address that does not exist: the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class Tile:
    """A web-mercator tile address z/x/y, validated."""

    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        if not 0 <= self.z <= MAX_ZOOM:
            raise TileError("z", f"{self.z} is outside 0-{MAX_ZOOM}")
        n = 1 << self.z
        if not 0 <= self.x < n:
            raise TileError("x", f"{self.x} is outside 0-{n - 1} at zoom {self.z}")
        if not 0 <= self.y < n:
            raise TileError("y", f"{self.y} is outside 0-{n - 1} at zoom {self.z}")

    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in WGS 84 degrees."""
        n = 1 << self.z

        def lat(yy: int) -> float:
            return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * yy / n))))

        return self.x / n * 360 - 180, lat(self.y + 1), (self.x + 1) / n * 360 - 180, lat(self.y)

    def params(self, pad: bool = True) -> dict:
        w, s, e, n = self.bounds()
        # pad by the MVT buffer so features on the edge draw in both tiles (not for clusters:
        # there every device must be counted in exactly one tile)
        pad_x = (e - w) * BUFFER / EXTENT if pad else 0.0
        pad_y = (n - s) * BUFFER / EXTENT if pad else 0.0
        return {
            "z": self.z,
            "x": self.x,
            "y": self.y,
            "w": w - pad_x,
            "s": s - pad_y,
            "e": e + pad_x,
            "n": n + pad_y,
            "extent": EXTENT,
            "buffer": BUFFER,
        }


ENV = "ST_MakeEnvelope(:w, :s, :e, :n, 4326)"
MERC = "ST_TileEnvelope(:z, :x, :y)"


def _mvt(conn: Connection, sql: str, params: dict) -> bytes:
    value = conn.execute(text(sql), params).scalar()
    return bytes(value) if value else b""


Scope = tuple[str, dict]  # an SQL condition on d.region_code and its parameters ("TRUE", {}) = all


def _device_clusters(conn: Connection, tile: Tile, scope: Scope) -> bytes:
    cond, params = scope[0], dict(scope[1])
    params.update(tile.params(pad=False))
    w, _s, e, _n = tile.bounds()
    params["cell"] = (e - w) / CLUSTER_CELLS
    params["mk"] = list(MOVING_KINDS)
    sql = f"""
    WITH c AS (
      SELECT floor(ST_X(d.position) / :cell)::bigint AS cx, floor(ST_Y(d.position) / :cell)::bigint AS cy,
             count(*) AS n,
             count(*) FILTER (WHERE d.status = 'online') AS online,
             count(*) FILTER (WHERE d.status = 'offline') AS offline,
             avg(ST_X(d.position)) AS ax, avg(ST_Y(d.position)) AS ay,
             min(d.id) AS first_id, min(d.status) AS first_status, min(d.kind) AS first_kind
      FROM devices d
      WHERE d.position && {ENV} AND d.retired_at IS NULL AND {cond}
        AND ST_X(d.position) >= :w AND ST_X(d.position) < :e
        AND ST_Y(d.position) >= :s AND ST_Y(d.position) < :n
        AND NOT (d.kind = ANY(:mk) OR coalesce(d.sub_kind, '') = ANY(:mk))
      GROUP BY 1, 2)
    SELECT ST_AsMVT(t, 'devices', :extent, 'geom') FROM (
      SELECT ST_AsMVTGeom(ST_Transform(ST_SetSRID(ST_MakePoint(ax, ay), 4326), 3857), {MERC}, :extent, :buffer, true) AS geom,
             n::int AS count, online::int AS online, offline::int AS offline, (n - online - offline)::int AS unknown,
             CASE WHEN n = 1 THEN first_id END AS id,
             CASE WHEN n = 1 THEN first_status END AS status,
             CASE WHEN n = 1 THEN first_kind END AS kind,
             true AS cluster
      FROM c) t WHERE geom IS NOT NULL
    """
    return _mvt(conn, sql, params)


def _device_points(conn: Connection, tile: Tile, scope: Scope) -> bytes:
    cond, params = scope[0], dict(scope[1])
    params.update(tile.params())
    params["mk"] = list(MOVING_KINDS)
    sectors = tile.z >= SECTORS_FROM_Z
    sql = f"""
    WITH d AS (
      SELECT d.id, d.name, d.kind, d.sub_kind, d.status, d.heading_deg, d.position, d.fov, d.region_code
      FROM devices d
      WHERE d.position && {ENV} AND d.retired_at IS NULL AND {cond}
        AND NOT (d.kind = ANY(:mk) OR coalesce(d.sub_kind, '') = ANY(:mk))),
    pts AS (
      SELECT ST_AsMVTGeom(ST_Transform(position, 3857), {MERC}, :extent, :buffer, true) AS geom,
             id, coalesce(name, '') AS name, kind, coalesce(sub_kind, '') AS sub_kind, status,
             coalesce(heading_deg, -1)::real AS heading, 1 AS count, false AS cluster
      FROM d)
    SELECT (SELECT ST_AsMVT(pts, 'devices', :extent, 'geom') FROM pts WHERE geom IS NOT NULL)
    """
    if sectors:
        sql += f"""
         || coalesce((SELECT ST_AsMVT(s, 'coverage', :extent, 'geom') FROM (
              SELECT ST_AsMVTGeom(ST_Transform(fov, 3857), {MERC}, :extent, :buffer, true) AS geom, id, status, kind
              FROM d WHERE fov IS NOT NULL) s WHERE geom IS NOT NULL), ''::bytea)
        """
    return _mvt(conn, sql, params)


def device_tile(conn: Connection, tile: Tile, scope: Scope = ("TRUE", {})) -> bytes:
    """The devices layer: clusters below CLUSTER_BELOW_Z, then devices (and their sectors)."""
    if tile.z < CLUSTER_BELOW_Z:
        return _device_clusters(conn, tile, scope)
    return _device_points(conn, tile, scope)


def _region_levels(z: int) -> int:
    if z < 7:
        return 2
    if z < 9:
        return 3
    if z < 11:
        return 4
    return 5


def context_tile(conn: Connection, tile: Tile) -> bytes:
    """Boundaries and places: regions (deeper levels as you zoom in), grids, key sites, roads, geofences."""
    params = tile.params()
    params["maxlevel"] = _region_levels(tile.z)
    w, s, e, n = tile.bounds()
    params["tol"] = (e - w) / 512  # about half a pixel: simplify before clipping
    parts = [
        f"""coalesce((SELECT ST_AsMVT(t, 'regions', :extent, 'geom') FROM (
            SELECT ST_AsMVTGeom(ST_Transform(ST_Boundary(ST_SimplifyPreserveTopology(geom, :tol)), 3857), {MERC}, :extent, :buffer, true) AS geom,
                   code, name, level
            FROM regions WHERE geom && {ENV} AND level <= :maxlevel) t WHERE geom IS NOT NULL), ''::bytea)"""
    ]
    if tile.z >= GRIDS_FROM_Z:
        parts.append(
            f"""coalesce((SELECT ST_AsMVT(t, 'grids', :extent, 'geom') FROM (
            SELECT ST_AsMVTGeom(ST_Transform(ST_Boundary(geom), 3857), {MERC}, :extent, :buffer, true) AS geom,
                   id, code, name, level
            FROM grids WHERE geom && {ENV}) t WHERE geom IS NOT NULL), ''::bytea)"""
        )
    if tile.z >= KEY_SITES_FROM_Z:
        parts.append(
            f"""coalesce((SELECT ST_AsMVT(t, 'key_sites', :extent, 'geom') FROM (
            SELECT ST_AsMVTGeom(ST_Transform(geom, 3857), {MERC}, :extent, :buffer, true) AS geom,
                   id, name, kind
            FROM key_sites WHERE geom && {ENV}) t WHERE geom IS NOT NULL), ''::bytea)"""
        )
    if tile.z >= ROADS_FROM_Z:
        parts.append(
            f"""coalesce((SELECT ST_AsMVT(t, 'roads', :extent, 'geom') FROM (
            SELECT ST_AsMVTGeom(ST_Transform(geom, 3857), {MERC}, :extent, :buffer, true) AS geom,
                   id, coalesce(name, '') AS name, class
            FROM roads WHERE geom && {ENV}) t WHERE geom IS NOT NULL), ''::bytea)"""
        )
    if tile.z >= ROADS_FROM_Z:
        parts.append(
            f"""coalesce((SELECT ST_AsMVT(t, 'railways', :extent, 'geom') FROM (
            SELECT ST_AsMVTGeom(ST_Transform(geom, 3857), {MERC}, :extent, :buffer, true) AS geom,
                   id, coalesce(name, '') AS name
            FROM railways WHERE geom && {ENV}) t WHERE geom IS NOT NULL), ''::bytea)"""
        )
    parts.append(
        f"""coalesce((SELECT ST_AsMVT(t, 'geofences', :extent, 'geom') FROM (
        SELECT ST_AsMVTGeom(ST_Transform(geom, 3857), {MERC}, :extent, :buffer, true) AS geom,
               id, name, kind
        FROM geofences WHERE active AND geom && {ENV}) t WHERE geom IS NOT NULL), ''::bytea)"""
    )
    return _mvt(conn, "SELECT " + " || ".join(parts), params)
