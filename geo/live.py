"""Live compliance: recompute only the villages, natural villages and grids a device change touches."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Connection, text

from geo.rulepack import RulePack, load_rule_pack


@lru_cache(maxsize=1)
def _default_pack() -> RulePack:
    return load_rule_pack()


def _thresholds(pack: RulePack | None) -> dict:
    pack = pack or _default_pack()
    by_kind = {r.kind: r for r in pack.rules}
    v, nv = by_kind.get("village_points"), by_kind.get("natural_village_points")
    workers, hh = by_kind.get("grid_workers"), by_kind.get("grid_households")
    return {
        "eps": pack.params.point_cluster_m,
        "kinds": pack.params.camera_kinds,
        "v_min": int(v.min) if v and v.min is not None else 5,
        "nv_min": int(nv.min) if nv and nv.min is not None else 2,
        "w_min": int(workers.min) if workers and workers.min is not None else 1,
        "hh_max": float(hh.max) if hh and hh.max is not None else 450.0,
    }


# Villages given by code: monitoring points (DBSCAN clusters of networked cameras), natural
# villages whose main intersections are seen by enough points; upserted into the cache tables.
_VILLAGES_SQL = """
WITH cams AS (
  SELECT d.id, d.region_code::text AS rc, d.status, ST_Transform(d.position, :utm) AS pm
  FROM devices d
  WHERE d.region_code = ANY(CAST(:codes AS char(12)[])) AND d.kind = ANY(:kinds) AND d.networked AND d.retired_at IS NULL AND d.position IS NOT NULL
), pts AS (
  SELECT id, rc, status, rc || ':' || ST_ClusterDBSCAN(pm, eps := :eps, minpoints := 1) OVER (PARTITION BY rc) AS pid
  FROM cams
), vs AS (
  SELECT rc, count(*) AS cams, count(DISTINCT pid) AS points, count(*) FILTER (WHERE status <> 'online') AS offline
  FROM pts GROUP BY rc
), nvl AS (
  SELECT n.id, n.village_code::text AS vc FROM natural_villages n
  WHERE n.village_code = ANY(CAST(:codes AS char(12)[]))
), ix AS (
  SELECT i.id, i.natural_village_id AS nv, i.geom FROM intersections i JOIN nvl ON nvl.id = i.natural_village_id
  WHERE i.is_main
), hits AS (
  SELECT ix.nv, count(DISTINCT p.pid) AS points FROM ix
  JOIN devices d ON d.fov && ix.geom AND ST_Covers(d.fov, ix.geom)
  JOIN pts p ON p.id = d.id GROUP BY ix.nv
), nix AS (SELECT nv, count(*) AS n FROM ix GROUP BY nv
), nv AS (
  SELECT nvl.id, nvl.vc, coalesce(nix.n, 0) AS ix, coalesce(hits.points, 0) AS points
  FROM nvl LEFT JOIN nix ON nix.nv = nvl.id LEFT JOIN hits ON hits.nv = nvl.id
), nv_up AS (
  INSERT INTO natural_village_compliance AS t
    (natural_village_id, village_code, main_intersections, points, points_required, passed, updated_at)
  SELECT id, vc, ix, points, :nv_min, ix > 0 AND points >= :nv_min, now() FROM nv
  ON CONFLICT (natural_village_id) DO UPDATE SET village_code = EXCLUDED.village_code,
    main_intersections = EXCLUDED.main_intersections, points = EXCLUDED.points,
    points_required = EXCLUDED.points_required, passed = EXCLUDED.passed, updated_at = now()
  RETURNING natural_village_id
), nvs AS (
  SELECT vc, count(*) AS n, count(*) FILTER (WHERE ix > 0 AND points >= :nv_min) AS ok FROM nv GROUP BY vc
)
INSERT INTO village_compliance AS t
  (village_code, cameras, points, offline, points_required, passed, natural_villages, natural_villages_ok, updated_at)
SELECT r.code, coalesce(vs.cams, 0), coalesce(vs.points, 0), coalesce(vs.offline, 0), :v_min,
       coalesce(vs.points, 0) >= :v_min, coalesce(nvs.n, 0), coalesce(nvs.ok, 0), now()
FROM regions r
LEFT JOIN vs ON vs.rc = r.code LEFT JOIN nvs ON nvs.vc = r.code
WHERE r.code = ANY(CAST(:codes AS char(12)[])) AND r.level = 5
ON CONFLICT (village_code) DO UPDATE SET cameras = EXCLUDED.cameras, points = EXCLUDED.points,
  offline = EXCLUDED.offline, points_required = EXCLUDED.points_required, passed = EXCLUDED.passed,
  natural_villages = EXCLUDED.natural_villages, natural_villages_ok = EXCLUDED.natural_villages_ok,
  updated_at = now()
RETURNING village_code, cameras, points, offline, points_required, passed, natural_villages, natural_villages_ok
"""

_GRIDS_SQL = """
WITH g AS (
  SELECT g.id, g.households,
    (SELECT count(*) FROM grid_workers w WHERE w.grid_id = g.id) AS workers,
    (SELECT count(*) FROM devices d WHERE d.grid_id = g.id AND d.kind = ANY(:kinds) AND d.retired_at IS NULL) AS cams
  FROM grids g WHERE g.id = ANY(CAST(:ids AS bigint[]))
)
INSERT INTO grid_compliance AS t (grid_id, cameras, workers, households, passed, reasons, updated_at)
SELECT id, cams, workers, households, workers >= :w_min AND coalesce(households <= :hh_max, false),
  array_remove(ARRAY[
    CASE WHEN workers < :w_min THEN format('%s grid worker(s); needs %s', workers, :w_min) END,
    CASE WHEN households IS NULL THEN 'households not recorded'
         WHEN households > :hh_max THEN format('%s households; at most %s', households, :hh_max) END], NULL),
  now()
FROM g
ON CONFLICT (grid_id) DO UPDATE SET cameras = EXCLUDED.cameras, workers = EXCLUDED.workers,
  households = EXCLUDED.households, passed = EXCLUDED.passed, reasons = EXCLUDED.reasons, updated_at = now()
RETURNING grid_id, cameras, workers, households, passed, reasons
"""

_AT_POINTS = """
SELECT
  ARRAY(SELECT DISTINCT r.code::text FROM regions r, unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) p(x, y)
        WHERE r.level = 5 AND r.geom && ST_SetSRID(ST_MakePoint(p.x, p.y), 4326)
          AND ST_Covers(r.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))) AS villages,
  ARRAY(SELECT DISTINCT g.id FROM grids g, unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) p(x, y)
        WHERE g.level = 3 AND g.geom && ST_SetSRID(ST_MakePoint(p.x, p.y), 4326)
          AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))) AS grids
"""


def utm_of(conn: Connection, table: str, column: str, codes: list[str] | None = None) -> int:
    """The UTM zone (EPSG) of the middle of `table.column` (optionally of devices in `codes`),
    for metre computations chosen for the place; EPSG:32650 when there is nothing to go by."""
    from hardware.crs import utm_srid

    where = "WHERE region_code = ANY(CAST(:codes AS char(12)[]))" if codes is not None else ""
    row = conn.execute(
        text(
            f"SELECT ST_X(c) AS x, ST_Y(c) AS y FROM (SELECT ST_Centroid(ST_Extent({column})::geometry) AS c "
            f"FROM {table} {where}) s"
        ),
        {"codes": codes or []},
    ).first()
    return 32650 if row is None or row.x is None else utm_srid(row.x, row.y)


def refresh(
    conn: Connection, village_codes: list[str], grid_ids: list[int], pack: RulePack | None = None
) -> dict:
    """Recompute and store compliance of the given villages (with their natural villages) and grids."""
    t = _thresholds(pack)
    villages = (
        [
            dict(r)
            for r in conn.execute(
                text(_VILLAGES_SQL),
                {
                    **t,
                    "codes": village_codes,
                    "utm": utm_of(conn, "devices", "position", village_codes),
                },
            ).mappings()
        ]
        if village_codes
        else []
    )
    grids = (
        [dict(r) for r in conn.execute(text(_GRIDS_SQL), {**t, "ids": grid_ids}).mappings()]
        if grid_ids
        else []
    )
    return {"villages": villages, "grids": grids}


def refresh_points(
    conn: Connection, points: list[tuple[float, float]], pack: RulePack | None = None
) -> dict:
    """Recompute the villages and base grids containing any of the WGS 84 points (old and new place)."""
    if not points:
        return {"villages": [], "grids": []}
    row = conn.execute(
        text(_AT_POINTS),
        {"lons": [float(p[0]) for p in points], "lats": [float(p[1]) for p in points]},
    ).one()
    return refresh(conn, list(row.villages), list(row.grids), pack)


def refresh_all(
    conn: Connection, region_code: str | None = None, pack: RulePack | None = None
) -> dict[str, int]:
    """Recompute every village and base grid (under a region, if given); returns counts."""
    from geo.audit import code_range

    low, high = (
        ("000000000000", "999999999999") if region_code is None else code_range(region_code)[1:]
    )
    codes = [
        r[0]
        for r in conn.execute(
            text(
                "SELECT code FROM regions WHERE level = 5 AND code BETWEEN CAST(:l AS char(12)) AND CAST(:h AS char(12))"
            ),
            {"l": low, "h": high},
        )
    ]
    ids = [
        r[0]
        for r in conn.execute(
            text(
                "SELECT id FROM grids WHERE level = 3 AND (region_code BETWEEN CAST(:l AS char(12)) AND CAST(:h AS char(12)) OR :all)"
            ),
            {"l": low, "h": high, "all": region_code is None},
        )
    ]
    out = refresh(conn, codes, ids, pack)
    return {"villages": len(out["villages"]), "grids": len(out["grids"])}


def village_status(conn: Connection, village_code: str) -> dict | None:
    """The cached compliance of one administrative village (None when never computed)."""
    row = (
        conn.execute(
            text("SELECT * FROM village_compliance WHERE village_code = :c"), {"c": village_code}
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None
