"""Importers for boundaries (regions, grids, key sites), natural villages with intersections, and roads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

from geo.divisions import level_of, parent_candidates
from geo.features import Feature, FeatureFile, check_geometry, prop, read_features
from geo.importlog import ImportReport, file_sha256, record_import

KEY_SITE_KINDS: dict[str, str] = {
    # canonical kind: DESIGN §6 key sites and key industries' important parts
    "station": "station",
    "车站": "station",
    "火车站": "station",
    "汽车站": "station",
    "客运站": "station",
    "square": "square",
    "广场": "square",
    "dock": "dock",
    "码头": "dock",
    "渡口": "dock",
    "city_exit": "city_exit",
    "出城口": "city_exit",
    "出入城口": "city_exit",
    "checkpoint": "checkpoint",
    "检查站": "checkpoint",
    "卡口": "checkpoint",
    "main_road": "main_road",
    "主干道": "main_road",
    "主要道路": "main_road",
    "school": "school",
    "学校": "school",
    "hospital": "hospital",
    "医院": "hospital",
    "bank": "bank",
    "银行": "bank",
    "market": "market",
    "市场": "market",
    "商场": "market",
    "government": "government",
    "政府": "government",
    "机关": "government",
    "power": "power",
    "电力": "power",
    "变电站": "power",
    "water": "water",
    "水厂": "water",
    "水库": "water",
    "gas_station": "gas_station",
    "加油站": "gas_station",
    "smart_community": "smart_community",
    "智能安防小区": "smart_community",
    "小区": "smart_community",
}
NV_KINDS = {"natural_village", "village", "自然村", "nv"}


def _code12(value: object) -> str | None:
    """A 12-digit division code from 6/9/12 digits; Tianditu's `gb` codes carry the ISO 3166
    country number 156 in front (156360121 = county 360121), which is dropped."""
    if value is None:
        return None
    s = re.sub(r"\D", "", str(value).split(".")[0])
    if s.startswith("156") and len(s) in (9, 12, 15):
        s = s[3:]
    if len(s) in (6, 9):
        s = s.ljust(12, "0")
    return s if len(s) == 12 else None


def _hex(geom) -> str:
    return shapely.to_wkb(geom, hex=True)


def _start(
    kind: str, path: str | Path, crs: str | None, layer: str | None
) -> tuple[FeatureFile, ImportReport]:
    ff = read_features(path, crs, layer)
    report = ImportReport(kind=kind, path=str(path), sha256=file_sha256(ff.data), crs=ff.crs)
    for line, fid, reason in ff.rejected:
        report.reject(line, fid, reason)
    report.total = len(ff.features) + len(ff.rejected)
    return ff, report


def _geometry(f: Feature, dims: set[str], report: ImportReport, ident: object) -> object | None:
    geom, note, reason = check_geometry(f.geom, dims)
    if reason:
        report.reject(f.line, ident, f"geometry {reason}")
        return None
    if note:
        report.repaired.append(f"line {f.line} ({ident}): {note}")
    return geom


_REGION_AT = """
(SELECT r.code FROM regions r WHERE r.geom && g AND ST_Covers(r.geom, g) AND r.retired_at IS NULL
  ORDER BY r.level DESC, r.code LIMIT 1)
"""


def region_at(conn: Connection, geom) -> str | None:
    """The deepest region containing a point on the geometry's surface."""
    return conn.execute(
        text(
            f"SELECT {_REGION_AT} FROM (SELECT ST_PointOnSurface(ST_SetSRID(CAST(:g AS geometry), 4326)) AS g) s"
        ),
        {"g": _hex(geom)},
    ).scalar()


_REGION_KEYS = ("code", "region_code", "adcode", "区划代码", "统计用区划代码", "gb")

# --- regions -----------------------------------------------------------------------------------


def _code_given(f: Feature) -> object:
    """The division code as a boundary feature gives it (code, adcode, 区划代码, ... or its id)."""
    return prop(
        f.props, "code", "region_code", "adcode", "区划代码", "统计用区划代码", "gb", default=f.fid
    )


def _import_regions(conn: Connection, ff: FeatureFile, report: ImportReport) -> None:
    codes: list[str] = []
    for f in ff.features:
        raw = _code_given(f)
        code = _code12(raw)
        if code is None:
            report.reject(
                f.line, raw, "no 12-digit division code (property code / region_code / adcode)"
            )
            continue
        if f.geom is not None and f.geom.geom_type == "Point":
            _region_point(conn, f, code, report)
            codes.append(code)
            continue
        geom = _geometry(f, {"polygon"}, report, code)
        if geom is None:
            continue
        exists = conn.execute(
            text("SELECT level FROM regions WHERE code = :c"), {"c": code}
        ).first()
        if exists is None:
            name = prop(f.props, "name", "名称", "NAME")
            parents = parent_candidates(code)
            known = {
                r[0]
                for r in conn.execute(
                    text("SELECT code FROM regions WHERE code = ANY(:c)"), {"c": parents}
                )
            }
            parent = next((p for p in parents if p in known), None)
            if name is None or (parent is None and level_of(code) > 1):
                report.reject(
                    f.line,
                    code,
                    "region is not in the division list and the feature lacks a name or a known parent; import divisions first",
                )
                continue
            conn.execute(
                text(
                    "INSERT INTO regions (code, level, name, parent_code, geom) VALUES "
                    "(:c, :l, :n, :p, ST_Multi(ST_SetSRID(CAST(:g AS geometry), 4326)))"
                ),
                {"c": code, "l": level_of(code), "n": str(name), "p": parent, "g": _hex(geom)},
            )
            report.inserted += 1
        else:
            if _set_shape(
                conn, code, "geom", "ST_Multi(ST_SetSRID(CAST(:g AS geometry), 4326))", geom
            ):
                report.updated += 1
            else:
                report.unchanged += 1
        codes.append(code)
    for row in conn.execute(
        text(
            "SELECT c.code, p.code AS parent, ST_Area(ST_Difference(c.geom, p.geom)::geography) AS out_m2, "
            "ST_Area(c.geom::geography) AS area_m2 FROM regions c JOIN regions p ON p.code = c.parent_code "
            "WHERE c.code = ANY(:codes) AND p.geom IS NOT NULL AND NOT ST_CoveredBy(c.geom, p.geom)"
        ),
        {"codes": codes},
    ):
        if row.out_m2 > 0.01 * row.area_m2:
            report.finding(
                f"region {row.code} extends {row.out_m2:,.0f} m² outside its parent {row.parent}"
            )


def _set_shape(
    conn: Connection, code: str, column: str, value_sql: str, geom: BaseGeometry
) -> bool:
    """Set the region's `column` (geom or point) to `value_sql` of the geometry (bound as :g)
    when it differs from what is stored; whether it changed."""
    changed = conn.execute(
        text(
            f"UPDATE regions SET {column} = {value_sql}, updated_at = now() "
            f"WHERE code = :c AND {column} IS DISTINCT FROM {value_sql} RETURNING 1"
        ),
        {"c": code, "g": _hex(geom)},
    ).first()
    return changed is not None


def _region_point(conn: Connection, f: Feature, code: str, report: ImportReport) -> None:
    """A point feature is the unit's official point (village lists have points, not polygons)."""
    geom = _geometry(f, {"point"}, report, code)
    if geom is None:
        return
    if _set_shape(conn, code, "point", "ST_SetSRID(CAST(:g AS geometry), 4326)", geom):
        report.updated += 1
    elif conn.execute(text("SELECT 1 FROM regions WHERE code = :c"), {"c": code}).first():
        report.unchanged += 1
    else:
        report.reject(
            f.line, code, "a point for a code not in the division list; import divisions first"
        )


# --- grids -------------------------------------------------------------------------------------


def _workers(value: object) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        return [f"网格员{i + 1}" for i in range(int(value))]
    return [s.strip() for s in re.split(r"[;,，；、]", str(value)) if s.strip()]


_GRID_UPSERT = """
INSERT INTO grids AS g (code, name, level, parent_id, region_code, households, geom)
VALUES (:code, :name, :level, :parent, :region, :hh, ST_Multi(ST_SetSRID(CAST(:g AS geometry), 4326)))
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level,
  parent_id = EXCLUDED.parent_id, region_code = EXCLUDED.region_code,
  households = EXCLUDED.households, geom = EXCLUDED.geom, updated_at = now()
WHERE (g.name, g.level, g.parent_id, g.region_code, g.households, g.geom)
  IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.level, EXCLUDED.parent_id, EXCLUDED.region_code,
                    EXCLUDED.households, EXCLUDED.geom)
RETURNING id, (xmax = 0) AS inserted
"""


def _import_grids(conn: Connection, ff: FeatureFile, report: ImportReport) -> None:
    pending = []
    for f in ff.features:
        code = prop(f.props, "code", "grid_code", "网格编码", default=f.fid)
        if code is None:
            report.reject(f.line, None, "grid has no code (property code)")
            continue
        geom = _geometry(f, {"polygon"}, report, code)
        if geom is None:
            continue
        pending.append((f, str(code), geom))
    done: set[str] = set()
    touched: list[str] = []
    while pending:
        progress = []
        for item in pending:
            f, code, geom = item
            parent_code = prop(f.props, "parent", "parent_code", "上级网格")
            parent = None
            if parent_code is not None:
                if str(parent_code) in {c for _, c, _ in pending if c not in done} - {code}:
                    continue  # its parent is later in this file: next pass
                parent = conn.execute(
                    text("SELECT id, level FROM grids WHERE code = :c"), {"c": str(parent_code)}
                ).first()
                if parent is None:
                    report.reject(
                        f.line,
                        code,
                        f"parent grid {parent_code} is neither in this file nor in the database",
                    )
                    progress.append(item)
                    continue
            level_raw = prop(f.props, "level", "网格层级")
            level = (
                int(level_raw)
                if level_raw is not None and str(level_raw).isdigit()
                else (parent.level + 1 if parent else 1)
            )
            progress.append(item)
            if not 1 <= level <= 3 or (parent is not None and level != parent.level + 1):
                report.reject(
                    f.line,
                    code,
                    f"level {level_raw} is not one below its parent's ({parent.level if parent else '-'}); levels are 1 street, 2 community, 3 base",
                )
                continue
            region = _code12(prop(f.props, "region_code", "region", "区划代码"))
            if (
                region is not None
                and not conn.execute(
                    text("SELECT 1 FROM regions WHERE code = :c"), {"c": region}
                ).first()
            ):
                report.finding(
                    f"line {f.line}: grid {code} names region {region}, which is not imported; located by position instead"
                )
                region = None
            if region is None:
                region = region_at(conn, geom)
            hh = prop(f.props, "households", "户数")
            row = conn.execute(
                text(_GRID_UPSERT),
                {
                    "code": code,
                    "name": str(prop(f.props, "name", "名称", default=code)),
                    "level": level,
                    "parent": parent.id if parent else None,
                    "region": region,
                    "hh": int(float(hh)) if hh is not None else None,
                    "g": _hex(geom),
                },
            ).first()
            grid_id = (
                row.id
                if row
                else conn.execute(
                    text("SELECT id FROM grids WHERE code = :c"), {"c": code}
                ).scalar_one()
            )
            workers_changed = _sync_workers(
                conn, grid_id, _workers(prop(f.props, "workers", "grid_workers", "网格员"))
            )
            if row is not None and row.inserted:
                report.inserted += 1
            elif row is not None or workers_changed:
                report.updated += 1
            else:
                report.unchanged += 1
            done.add(code)
            touched.append(code)
        if not progress:
            for f, code, _ in pending:
                report.reject(f.line, code, "parent grid forms a cycle or is missing")
            break
        pending = [p for p in pending if p not in progress]
    _grid_findings(conn, touched, report)


def _sync_workers(conn: Connection, grid_id: int, names: list[str] | None) -> bool:
    if names is None:
        return False
    current = sorted(
        r[0]
        for r in conn.execute(
            text("SELECT name FROM grid_workers WHERE grid_id = :g"), {"g": grid_id}
        )
    )
    if current == sorted(names):
        return False
    conn.execute(text("DELETE FROM grid_workers WHERE grid_id = :g"), {"g": grid_id})
    for n in names:
        conn.execute(
            text("INSERT INTO grid_workers (grid_id, name) VALUES (:g, :n)"), {"g": grid_id, "n": n}
        )
    return True


def _grid_findings(conn: Connection, codes: list[str], report: ImportReport) -> None:
    sql = """
    SELECT g.code, 'region ' || r.code AS outer_name,
           ST_Area(ST_Difference(g.geom, r.geom)::geography) AS out_m2, ST_Area(g.geom::geography) AS area_m2
    FROM grids g JOIN regions r ON r.code = g.region_code
    WHERE g.code = ANY(:codes) AND r.geom IS NOT NULL AND NOT ST_CoveredBy(g.geom, r.geom)
    UNION ALL
    SELECT g.code, 'parent grid ' || p.code,
           ST_Area(ST_Difference(g.geom, p.geom)::geography), ST_Area(g.geom::geography)
    FROM grids g JOIN grids p ON p.id = g.parent_id
    WHERE g.code = ANY(:codes) AND NOT ST_CoveredBy(g.geom, p.geom)
    """
    for row in conn.execute(text(sql), {"codes": codes}):
        if row.out_m2 > 0.01 * row.area_m2:
            report.finding(
                f"grid {row.code} lies {row.out_m2:,.0f} m² outside its {row.outer_name}"
            )
    for row in conn.execute(
        text("SELECT code FROM grids WHERE code = ANY(:codes) AND region_code IS NULL"),
        {"codes": codes},
    ):
        report.finding(f"grid {row.code} is outside every imported region")


# --- key sites ---------------------------------------------------------------------------------


def key_site_kind(value: object) -> str | None:
    """Canonical key-site kind of an English or Chinese label, or None."""
    if value is None:
        return None
    return KEY_SITE_KINDS.get(str(value).strip().lower()) or KEY_SITE_KINDS.get(str(value).strip())


_SITE_UPSERT = """
INSERT INTO key_sites AS k (source_key, name, kind, region_code, geom)
VALUES (:key, :name, :kind, :region, ST_SetSRID(CAST(:g AS geometry), 4326))
ON CONFLICT (source_key) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
  region_code = EXCLUDED.region_code, geom = EXCLUDED.geom, updated_at = now()
WHERE (k.name, k.kind, k.region_code, k.geom) IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.region_code, EXCLUDED.geom)
RETURNING (xmax = 0) AS inserted
"""


def _import_key_sites(conn: Connection, ff: FeatureFile, report: ImportReport) -> None:
    for f in ff.features:
        raw_kind = prop(f.props, "kind", "type", "类型", "category")
        kind = key_site_kind(raw_kind)
        name = prop(f.props, "name", "名称")
        key = prop(f.props, "id", "code", "source_key", default=f.fid)
        if key is None:
            key = f"{kind}:{name}"
        if kind is None:
            report.reject(
                f.line,
                key,
                f"kind {raw_kind!r} is not a key-site kind (allowed: {', '.join(sorted(set(KEY_SITE_KINDS.values())))})",
            )
            continue
        geom = _geometry(f, {"point", "line", "polygon"}, report, key)
        if geom is None:
            continue
        region = _code12(prop(f.props, "region_code", "区划代码")) or region_at(conn, geom)
        if region is None:
            report.finding(f"line {f.line}: key site {key} is outside every imported region")
        elif not conn.execute(text("SELECT 1 FROM regions WHERE code = :c"), {"c": region}).first():
            region = region_at(conn, geom)
        row = conn.execute(
            text(_SITE_UPSERT),
            {
                "key": str(key),
                "name": str(name or f"{kind} {key}"),
                "kind": kind,
                "region": region,
                "g": _hex(geom),
            },
        ).first()
        _count(report, row)


_RELOCATE = """
WITH changed AS (SELECT {geom_table}.geom FROM {geom_table} WHERE {key} = ANY(:keys)),
cand AS (
  SELECT d.id, d.position FROM devices d
  WHERE d.retired_at IS NULL AND d.position IS NOT NULL
    AND (d.{col} IS NULL OR EXISTS (SELECT 1 FROM changed c WHERE c.geom && d.position))
), located AS (
  SELECT cand.id, ({pick}) AS new_value FROM cand
)
UPDATE devices d SET {col} = located.new_value, updated_at = now()
FROM located WHERE located.id = d.id AND d.{col} IS DISTINCT FROM located.new_value
"""
_PICK_REGION = (
    "SELECT r.code FROM regions r WHERE r.geom && cand.position AND ST_Covers(r.geom, cand.position) "
    "AND r.retired_at IS NULL "
    "ORDER BY r.level DESC, r.code LIMIT 1"
)
_PICK_GRID = (
    "SELECT g.id FROM grids g WHERE g.level = 3 AND g.geom && cand.position "
    "AND ST_Covers(g.geom, cand.position) ORDER BY g.id LIMIT 1"
)


def relocate_devices(
    conn: Connection, region_codes: list[str] = (), grid_codes: list[str] = ()
) -> int:
    """Re-derive region_code / grid_id of devices near changed boundaries; returns rows changed."""
    n = 0
    if region_codes:
        sql = _RELOCATE.format(
            geom_table="regions", key="code", col="region_code", pick=_PICK_REGION
        )
        n += conn.execute(text(sql), {"keys": list(region_codes)}).rowcount
    if grid_codes:
        sql = _RELOCATE.format(geom_table="grids", key="code", col="grid_id", pick=_PICK_GRID)
        n += conn.execute(text(sql), {"keys": list(grid_codes)}).rowcount
    return n


def import_boundaries(
    conn: Connection,
    path: str | Path,
    kind: str,
    crs: str | None = None,
    layer: str | None = None,
    actor: str = "import",
) -> ImportReport:
    """Import region, grid or key-site features (GeoJSON / GeoPackage) in any declared CRS."""
    handlers = {"region": _import_regions, "grid": _import_grids, "keysite": _import_key_sites}
    if kind not in handlers:
        raise ValueError(f"kind: {kind!r} is not one of region, grid, keysite")
    ff, report = _start(f"boundaries:{kind}", path, crs, layer)
    if kind == "region":
        from geo.crs_guard import check_region_shift

        codes = [
            (_code12(prop(f.props, *_REGION_KEYS, default=f.fid)), f.geom) for f in ff.features
        ]
        check_region_shift(
            conn, [(c, g) for c, g in codes if c and g is not None], ff.crs, ff.declared
        )
    handlers[kind](conn, ff, report)
    if kind in ("region", "grid") and (report.inserted or report.updated):
        keys = [
            _code12(_code_given(f))
            if kind == "region"
            else str(prop(f.props, "code", "grid_code", "网格编码", default=f.fid))
            for f in ff.features
        ]
        keys = [k for k in keys if k]
        moved = relocate_devices(
            conn, keys if kind == "region" else [], keys if kind == "grid" else []
        )
        if moved:
            report.derived["devices_relocated"] = moved
        if kind == "region":
            from geo.village_areas import rebuild

            areas = rebuild(conn, keys)
            if areas:
                report.derived["approximate_village_areas"] = areas
    record_import(conn, report, actor)
    return report


def _count(report: ImportReport, row) -> None:
    if row is None:
        report.unchanged += 1
    elif row.inserted:
        report.inserted += 1
    else:
        report.updated += 1


def report_json(report: ImportReport) -> str:
    return json.dumps(report.summary(), ensure_ascii=False, indent=2)
