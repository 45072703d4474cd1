"""Importing natural villages (points or polygons) and their main intersections, linked by name or place."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, text

from geo.features import prop
from geo.importers import _code12, _count, _geometry, _hex, _start
from geo.importlog import ImportReport, record_import
from geo.views import relink_intersections

INTERSECTION_KINDS = {"intersection", "main_intersection", "路口", "主要路口", "crossing"}

# --- natural villages and intersections --------------------------------------------------------

_NV_UPSERT = """
INSERT INTO natural_villages AS n (local_code, name, village_code, households, geom, source)
VALUES (:code, :name, :village, :hh, ST_SetSRID(CAST(:g AS geometry), 4326), :source)
ON CONFLICT (local_code) DO UPDATE SET name = EXCLUDED.name, village_code = EXCLUDED.village_code,
  households = EXCLUDED.households, geom = EXCLUDED.geom, updated_at = now()
WHERE (n.name, n.village_code, n.households, n.geom) IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.village_code, EXCLUDED.households, EXCLUDED.geom)
RETURNING (xmax = 0) AS inserted
"""

_IX_UPSERT = """
INSERT INTO intersections AS i (source_key, name, natural_village_id, is_main, degree, geom)
VALUES (:key, :name, :nv, :main, :degree, ST_SetSRID(CAST(:g AS geometry), 4326))
ON CONFLICT (source_key) DO UPDATE SET name = EXCLUDED.name,
  natural_village_id = EXCLUDED.natural_village_id, is_main = EXCLUDED.is_main,
  degree = EXCLUDED.degree, geom = EXCLUDED.geom, updated_at = now()
WHERE (i.name, i.natural_village_id, i.is_main, i.degree, i.geom) IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.natural_village_id, EXCLUDED.is_main, EXCLUDED.degree, EXCLUDED.geom)
RETURNING id, (xmax = 0) AS inserted
"""

# The natural village an intersection belongs to: the polygon containing it, else the nearest
# natural village within `reach` metres.
_NV_FOR_POINT = """
SELECT coalesce(
  (SELECT n.id FROM natural_villages n WHERE ST_Dimension(n.geom) = 2 AND ST_Covers(n.geom, p.g) LIMIT 1),
  (SELECT n.id FROM natural_villages n WHERE ST_DWithin(n.geom::geography, p.g::geography, :reach)
    ORDER BY n.geom <-> p.g LIMIT 1))
FROM (SELECT ST_SetSRID(CAST(:g AS geometry), 4326) AS g) p
"""


def _truthy(value: object, default: bool = True) -> bool:
    if value is None or value == "":
        return default
    return str(value).strip().lower() not in ("0", "false", "no", "n", "否")


def import_villages(
    conn: Connection,
    path: str | Path,
    crs: str | None = None,
    layer: str | None = None,
    actor: str = "import",
    reach_m: float = 500.0,
) -> ImportReport:
    """Import natural villages (points or polygons) and their main intersections (points).

    A feature is an intersection when its kind/type says so (intersection, 路口); otherwise a
    natural village. Villages take their administrative village from `village_code` or by
    containment; intersections name their natural village (`natural_village` = local code or
    name) or are assigned to the containing / nearest one within `reach_m`.
    """
    ff, report = _start("villages", path, crs, layer)
    villages, crossings = [], []
    for f in ff.features:
        kind = str(prop(f.props, "kind", "type", "类型", default="natural_village")).strip().lower()
        (crossings if kind in INTERSECTION_KINDS else villages).append(f)
    for f in villages:
        name = prop(f.props, "name", "名称", "自然村")
        village = _code12(
            prop(f.props, "village_code", "admin_village", "行政村代码", "region_code")
        )
        geom = _geometry(
            f,
            {"point", "polygon"},
            report,
            prop(f.props, "local_code", "id", default=f.fid) or name,
        )
        if geom is None:
            continue
        if name is None:
            report.reject(f.line, f.fid, "natural village has no name")
            continue
        if (
            village is not None
            and not conn.execute(
                text("SELECT 1 FROM regions WHERE code = :c AND level = 5"), {"c": village}
            ).first()
        ):
            report.finding(
                f"line {f.line}: {name}: village_code {village} is not an imported administrative village; located by position"
            )
            village = None
        if village is None:
            village = conn.execute(
                text(
                    "SELECT r.code FROM regions r, (SELECT ST_PointOnSurface(ST_SetSRID(CAST(:g AS geometry), 4326)) AS g) p "
                    "WHERE r.level = 5 AND ST_Covers(r.geom, p.g) LIMIT 1"
                ),
                {"g": _hex(geom)},
            ).scalar()
            if village is None:
                report.finding(
                    f"line {f.line}: natural village {name} is outside every administrative village"
                )
        local = (
            prop(f.props, "local_code", "id", "code", default=f.fid)
            or f"{village or 'none'}-{name}"
        )
        hh = prop(f.props, "households", "户数")
        row = conn.execute(
            text(_NV_UPSERT),
            {
                "code": str(local),
                "name": str(name),
                "village": village,
                "hh": int(float(hh)) if hh is not None else None,
                "g": _hex(geom),
                "source": Path(path).name,
            },
        ).first()
        _count(report, row)
    moved: list[int] = []
    for f in crossings:
        geom = _geometry(f, {"point"}, report, f.fid)
        if geom is None:
            continue
        key = (
            prop(f.props, "id", "source_key", "code", default=f.fid)
            or f"pt:{geom.x:.6f},{geom.y:.6f}"
        )
        ref = prop(f.props, "natural_village", "natural_village_code", "自然村")
        nv = None
        if ref is not None:
            nv = conn.execute(
                text(
                    "SELECT id FROM natural_villages WHERE local_code = :r OR name = :r ORDER BY local_code = :r DESC LIMIT 1"
                ),
                {"r": str(ref)},
            ).scalar()
            if nv is None:
                report.finding(
                    f"line {f.line}: intersection {key} names natural village {ref!r}, which is unknown; assigned by position"
                )
        if nv is None:
            nv = conn.execute(text(_NV_FOR_POINT), {"g": _hex(geom), "reach": reach_m}).scalar()
        if nv is None:
            report.finding(
                f"line {f.line}: intersection {key} is not within {reach_m:g} m of any natural village"
            )
        row = conn.execute(
            text(_IX_UPSERT),
            {
                "key": str(key),
                "name": prop(f.props, "name", "名称"),
                "nv": nv,
                "main": _truthy(prop(f.props, "is_main", "main", "主要")),
                "degree": None,
                "g": _hex(geom),
            },
        ).first()
        _count(report, row)
        if row is not None:
            moved.append(row.id)
    relink_intersections(conn, moved)
    record_import(conn, report, actor)
    return report
