"""The audit's SQL: one set-based statement (or a few) per rule kind, over temporary tables of the run."""

from __future__ import annotations

from sqlalchemy import Connection, text

# Every unit of every rule lands in _a_units; located problems with areas in _a_find.
SESSION = (
    "SET LOCAL work_mem = '256MB'",
    "SET LOCAL jit = off",
    "DROP TABLE IF EXISTS _a_cam, _a_pt, _a_vil, _a_vstat, _a_site, _a_sitecam, _a_grid, _a_par, _a_kid, _a_units, _a_find, _a_find_in",
    # the temp tables' statistics only steer hash-or-sort choices: a tenth of the default sample
    "SET LOCAL default_statistics_target = 10",
    """CREATE TEMP TABLE _a_units (
        rule text, unit_kind text, unit_id text, region_code text, name text, passed boolean,
        value double precision, target double precision, num double precision, den double precision,
        reason text, lon double precision, lat double precision, basis text) ON COMMIT DROP""",
    """CREATE TEMP TABLE _a_find (
        rule text, pid text, kind text, unit_id text, region_code text, area_m2 double precision,
        detail text, geom geometry) ON COMMIT DROP""",
)

CAMERA_FILTER = """d.region_code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12)) AND d.kind = ANY(:kinds) AND d.position IS NOT NULL
          AND d.registered_at <= :at AND (d.retired_at IS NULL OR d.retired_at > :at)"""
ONLINE_NOW = "d.status = 'online'"
ONLINE_AT = (
    "EXISTS (SELECT 1 FROM device_presence p WHERE p.device_id = d.id AND p.started_at <= :at "
    "AND (p.ended_at IS NULL OR p.ended_at > :at))"
)


# Where a camera counts, in order: the village code it was registered or imported with, the
# village polygon containing it (stored region_code at level 5), the approximate village area
# (Voronoi cell of village points) containing it within its stored township/county (stored
# area_village_code, found at registration and when village areas are rebuilt), else the stored
# region (a township or county: it then counts toward no village).
def cameras(online_expr: str) -> tuple[str, ...]:
    """The cameras that count at the audit time, with whether each is online then and the
    village each counts toward with the basis (code, polygon, approximate, none)."""
    return (
        f"""CREATE TEMP TABLE _a_cam ON COMMIT DROP AS
        SELECT d.id,
               coalesce(vc.code, CASE WHEN right(d.region_code, 3) <> '000' THEN d.region_code END,
                        d.area_village_code, d.region_code)::text AS region_code,
               CASE WHEN vc.code IS NOT NULL THEN 'code' WHEN right(d.region_code, 3) <> '000' THEN 'polygon'
                    WHEN d.area_village_code IS NOT NULL THEN 'approximate' ELSE 'none' END AS basis,
               d.grid_id, d.networked, d.resolution_w,
               d.resolution_h, d.registered_at, d.position, ({online_expr}) AS online
        FROM devices d
        LEFT JOIN regions vc ON vc.code = d.village_code AND vc.level = 5
        WHERE {CAMERA_FILTER}""",
        "ANALYZE _a_cam",
    )


def temp_table_exists(conn: Connection, table: str) -> bool:
    """True when this session already built the audit's temp table `table` (pg_temp)."""
    return conn.execute(
        text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"pg_temp.{table}"}
    ).scalar_one()


def ensure_villages(conn: Connection, a: dict) -> None:
    """_a_vil: level-5 units under the region; admin = an administrative village, not a community.

    The committee type is in the code itself (NBS 统计用区划代码编制规则: digits 10-12 are
    001-199 for residents' committees 居民委员会, 200-399 for village committees 村民委员会);
    the urban-rural code (城乡分类代码) says how urban the place is, not which committee it has
    (a 村委会 in a town-fringe area is 122), so it is reported, not used. Units numbered outside
    both ranges (400-599: living quarters of state farms and enterprises) go by their name.
    """
    if temp_table_exists(conn, "_a_vil"):
        return
    conn.execute(
        text("""CREATE TEMP TABLE _a_vil ON COMMIT DROP AS
        SELECT r.code::text AS code, r.name, r.geom, coalesce(r.geom, r.point) AS spot,
               coalesce(r.geom, a.geom) AS area,
               CASE WHEN right(r.code, 3) BETWEEN '200' AND '399' THEN true
                    WHEN right(r.code, 3) BETWEEN '001' AND '199' THEN false
                    ELSE NOT (r.name ~ '(居委会|居民委员会|社区|生活区|家委会|家属委员会)$') END AS admin,
               CASE WHEN right(r.code, 3) BETWEEN '200' AND '399'
                    THEN 'code ' || right(r.code, 3) || ' (200-399: village committee 村民委员会)'
                    WHEN right(r.code, 3) BETWEEN '001' AND '199'
                    THEN 'code ' || right(r.code, 3) || ' (001-199: residents'' committee 居民委员会)'
                    ELSE 'name (code ' || right(r.code, 3) || ' is in neither committee range)' END
               || CASE WHEN r.urban_rural_code IS NOT NULL
                    THEN ', urban-rural code ' || r.urban_rural_code ELSE '' END AS class_basis,
               CASE WHEN r.geom IS NOT NULL THEN 'boundary polygon'
                    WHEN a.village_code IS NOT NULL
                    THEN 'approximate area (Voronoi cell of village points, clipped to ' || a.clip || ')'
               END AS loc
        FROM regions r LEFT JOIN village_areas a ON a.village_code = r.code
        WHERE r.level = 5 AND r.code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12))
          AND (r.retired_at IS NULL OR r.retired_at > :at)"""),
        a,
    )
    conn.execute(text("ANALYZE _a_vil"))


def ensure_points(conn: Connection, a: dict) -> None:
    """_a_pt: networked cameras clustered into monitoring points; _a_vstat: per-region counts.

    The partitions are sorted by code point (COLLATE "C"): only their grouping matters, and the
    database's C.UTF-8 collation compared a million codes through strcoll."""
    ensure_villages(conn, a)
    if temp_table_exists(conn, "_a_pt"):
        return
    conn.execute(
        text("""CREATE TEMP TABLE _a_pt ON COMMIT DROP AS
        SELECT id, region_code, online,
               ST_ClusterDBSCAN(ST_Transform(position, :utm), eps := :eps, minpoints := 1)
                   OVER (PARTITION BY region_code COLLATE "C") AS cid
        FROM _a_cam WHERE networked"""),
        a,
    )
    conn.execute(text("ANALYZE _a_pt"))
    # DBSCAN numbers the clusters of each partition 0..k-1: k points = max + 1
    conn.execute(
        text("""CREATE TEMP TABLE _a_vstat ON COMMIT DROP AS
        SELECT c.region_code, c.cameras, c.networked, c.offline, coalesce(p.points, 0) AS points,
               c.by_code, c.by_polygon, c.by_area
        FROM (SELECT region_code, count(*) AS cameras, count(*) FILTER (WHERE networked) AS networked,
                     count(*) FILTER (WHERE networked AND NOT online) AS offline,
                     count(*) FILTER (WHERE basis = 'code') AS by_code,
                     count(*) FILTER (WHERE basis = 'polygon') AS by_polygon,
                     count(*) FILTER (WHERE basis = 'approximate') AS by_area
              FROM _a_cam GROUP BY region_code) c
        LEFT JOIN (SELECT region_code, max(cid) + 1 AS points FROM _a_pt GROUP BY region_code) p
          ON p.region_code = c.region_code""")
    )


def ensure_sites(conn: Connection, a: dict, online_expr: str) -> None:
    """_a_site: key sites under the region; _a_sitecam: counting cameras whose sector reaches each site."""
    if temp_table_exists(conn, "_a_site"):
        return
    conn.execute(
        text("""CREATE TEMP TABLE _a_site ON COMMIT DROP AS
        SELECT k.id, k.name, k.kind, k.region_code::text AS region_code, k.geom, ST_Dimension(k.geom) AS dim
        FROM key_sites k WHERE k.region_code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12))"""),
        a,
    )
    validity = CAMERA_FILTER.replace(
        "d.region_code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12)) AND ", ""
    )
    conn.execute(
        text(f"""CREATE TEMP TABLE _a_sitecam ON COMMIT DROP AS
        SELECT s.id AS site_id, s.kind, d.id AS device_id, d.region_code::text AS region_code,
               ({online_expr}) AS online, d.fov
        FROM _a_site s JOIN devices d ON d.fov && s.geom AND ST_Intersects(d.fov, s.geom)
        WHERE {validity}"""),
        a,
    )
    conn.execute(text("ANALYZE _a_site"))
    conn.execute(text("ANALYZE _a_sitecam"))


def ensure_grids(conn: Connection, a: dict) -> None:
    if temp_table_exists(conn, "_a_grid"):
        return
    conn.execute(
        text("""CREATE TEMP TABLE _a_grid ON COMMIT DROP AS
        SELECT g.id, g.code, g.name, g.level, g.parent_id, g.region_code::text AS region_code,
               g.households, g.geom
        FROM grids g WHERE g.region_code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12))"""),
        a,
    )
    conn.execute(text("CREATE INDEX ON _a_grid (parent_id)"))
    conn.execute(text("CREATE INDEX ON _a_grid (id)"))
    conn.execute(text("ANALYZE _a_grid"))


_APPLIES = """CASE :applies WHEN 'all_villages' THEN true WHEN 'administrative_villages' THEN v.admin
              ELSE NOT v.admin END"""

NO_LOCATION = (
    "no location: register its cameras with a village code or import its boundary or point"
)
# which basis a village's count used: cameras by village code, its polygon or approximate area
_BASIS = """concat_ws('; ', 'unit by ' || v.class_basis,
  'cameras by ' || coalesce(nullif(concat_ws(' + ',
     CASE WHEN coalesce(s.by_code, 0) > 0 THEN format('village code (%s)', s.by_code) END,
     v.loc), ''), 'nothing: no village code, boundary or point'))"""
_NO_LOC = "v.loc IS NULL AND coalesce(s.by_code, 0) = 0"

VILLAGE_POINTS = f"""
INSERT INTO _a_units
SELECT :rule, 'village', v.code, v.code, v.name, ok, pts, :min, coalesce(s.offline, 0), coalesce(s.networked, 0),
  CASE WHEN ok THEN NULL WHEN {_NO_LOC} THEN '{NO_LOCATION}' ELSE format(
    '%s monitoring point(s) from %s networked camera(s) (%s offline, %s not networked); needs %s',
    pts, coalesce(s.networked, 0), coalesce(s.offline, 0),
    coalesce(s.cameras, 0) - coalesce(s.networked, 0), trim_scale(CAST(:min AS numeric))) END,
  CASE WHEN ok THEN NULL ELSE ST_X(ST_PointOnSurface(v.spot)) END,
  CASE WHEN ok THEN NULL ELSE ST_Y(ST_PointOnSurface(v.spot)) END,
  {_BASIS}
FROM _a_vil v LEFT JOIN _a_vstat s ON s.region_code = v.code
CROSS JOIN LATERAL (SELECT coalesce(s.points, 0) AS pts, coalesce(s.points, 0) >= :min AS ok) x
WHERE {_APPLIES}
"""

NATURAL_VILLAGE_POINTS_T = """
WITH nv AS (
  SELECT n.id, n.name, n.village_code::text AS village_code, n.geom
  FROM natural_villages n WHERE n.village_code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12))
), ix AS (
  SELECT i.id, i.natural_village_id AS nv_id, i.geom FROM intersections i
  JOIN nv ON nv.id = i.natural_village_id WHERE i.is_main
), hits AS (
  SELECT DISTINCT ix.nv_id, p.region_code, p.cid FROM ix
  JOIN {link} JOIN _a_pt p ON p.id = v.device_id
), cnt AS (SELECT nv_id, count(*) AS points FROM hits GROUP BY nv_id),
nix AS (SELECT nv_id, count(*) AS n FROM ix GROUP BY nv_id)
INSERT INTO _a_units
SELECT :rule, 'natural_village', nv.id::text, nv.village_code, nv.name, ok, pts, :min, NULL, NULL,
  CASE WHEN ok THEN NULL
       WHEN coalesce(nix.n, 0) = 0 THEN 'no main intersection on record (import roads or intersections)'
       ELSE format('%s monitoring point(s) see its %s main intersection(s); needs %s', pts, nix.n,
                   trim_scale(CAST(:min AS numeric))) END,
  CASE WHEN ok THEN NULL ELSE ST_X(ST_PointOnSurface(nv.geom)) END,
  CASE WHEN ok THEN NULL ELSE ST_Y(ST_PointOnSurface(nv.geom)) END
FROM nv LEFT JOIN cnt ON cnt.nv_id = nv.id LEFT JOIN nix ON nix.nv_id = nv.id
CROSS JOIN LATERAL (SELECT coalesce(cnt.points, 0) AS pts,
                           coalesce(nix.n, 0) > 0 AND coalesce(cnt.points, 0) >= :min AS ok) x
"""

# with the link table geo/views.py keeps current
NATURAL_VILLAGE_POINTS = NATURAL_VILLAGE_POINTS_T.replace(
    "{link}", "intersection_views v ON v.intersection_id = ix.id"
)
VILLAGE_COVERAGE = f"""
INSERT INTO _a_units
SELECT :rule, 'village', v.code, v.code, v.name, ok, coalesce(s.points, 0), 1, ok::int, 1,
  CASE WHEN ok THEN NULL WHEN {_NO_LOC} THEN '{NO_LOCATION}' ELSE 'no networked monitoring point' END,
  CASE WHEN ok THEN NULL ELSE ST_X(ST_PointOnSurface(v.spot)) END,
  CASE WHEN ok THEN NULL ELSE ST_Y(ST_PointOnSurface(v.spot)) END,
  {_BASIS}
FROM _a_vil v LEFT JOIN _a_vstat s ON s.region_code = v.code
CROSS JOIN LATERAL (SELECT coalesce(s.points, 0) >= 1 AS ok) x
WHERE {_APPLIES}
"""

SMART_COMMUNITIES = """
WITH dev AS (
  SELECT region_code::text AS rc, count(*) AS n FROM devices
  WHERE kind = ANY(:device_kinds) AND networked AND region_code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12))
    AND registered_at <= :at AND (retired_at IS NULL OR retired_at > :at)
  GROUP BY 1
)
INSERT INTO _a_units
SELECT :rule, 'community', v.code, v.code, v.name, ok, coalesce(dev.n, 0), 1, ok::int, 1,
  CASE WHEN ok THEN NULL ELSE 'no networked access-control device (smart door, gate, credential reader)' END,
  CASE WHEN ok THEN NULL ELSE ST_X(ST_PointOnSurface(v.spot)) END,
  CASE WHEN ok THEN NULL ELSE ST_Y(ST_PointOnSurface(v.spot)) END,
  'unit by ' || v.class_basis
FROM _a_vil v LEFT JOIN dev ON dev.rc = v.code
CROSS JOIN LATERAL (SELECT coalesce(dev.n, 0) > 0 AS ok) x
WHERE NOT v.admin
"""

KEY_SITES = """
WITH s AS (SELECT * FROM _a_site WHERE kind = ANY(:site_kinds)),
cov AS (
  SELECT sc.site_id, ST_Union(sc.fov) AS u, count(*) AS cams FROM _a_sitecam sc
  JOIN s ON s.id = sc.site_id WHERE sc.online GROUP BY sc.site_id
), share AS (
  SELECT s.id, s.name, s.kind, s.region_code, s.dim, s.geom, coalesce(cov.cams, 0) AS cams,
    CASE WHEN cov.u IS NULL THEN 0.0
         WHEN s.dim = 0 THEN 1.0
         WHEN s.dim = 1 THEN ST_Length(ST_Intersection(s.geom, cov.u)::geography)
                             / nullif(ST_Length(s.geom::geography), 0)
         ELSE ST_Area(ST_Intersection(s.geom, cov.u)) / nullif(ST_Area(s.geom), 0)
    END AS share,
    CASE s.dim WHEN 0 THEN 1.0 WHEN 1 THEN CAST(:line_share AS float8) ELSE CAST(:poly_share AS float8) END AS need
  FROM s LEFT JOIN cov ON cov.site_id = s.id
)
INSERT INTO _a_units
SELECT :rule, 'key_site', id::text, region_code, name || ' (' || kind || ')', ok, round(CAST(share AS numeric), 4),
  need, ok::int, 1,
  CASE WHEN ok THEN NULL
       WHEN cams = 0 THEN 'no online camera sector reaches it'
       ELSE format('%s%% covered by %s online camera(s); needs %s%%', round(100 * share), cams, round(100 * need)) END,
  CASE WHEN ok THEN NULL ELSE ST_X(ST_PointOnSurface(geom)) END,
  CASE WHEN ok THEN NULL ELSE ST_Y(ST_PointOnSurface(geom)) END
FROM share CROSS JOIN LATERAL (SELECT coalesce(share, 0) >= need - 1e-9 AS ok) x
"""

GRID_TILING = (
    """CREATE TEMP TABLE _a_par ON COMMIT DROP AS
       SELECT 'region:' || r.code AS pid, r.code::text AS unit_id, r.code::text AS region_code, r.name,
              r.geom, NULL::bigint AS grid_id, 0 AS level
       FROM regions r WHERE r.code = :region AND r.level <= 4 AND r.geom IS NOT NULL
         AND EXISTS (SELECT 1 FROM _a_grid WHERE level = 1)
       UNION ALL
       SELECT 'grid:' || g.id, g.code, g.region_code, g.name, g.geom, g.id, g.level
       FROM _a_grid g WHERE g.level < 3""",
    """CREATE TEMP TABLE _a_kid ON COMMIT DROP AS
       SELECT p.pid, c.id, c.code, c.geom FROM _a_par p JOIN _a_grid c ON c.parent_id = p.grid_id
       UNION ALL
       SELECT p.pid, c.id, c.code, c.geom FROM _a_par p JOIN _a_grid c ON p.grid_id IS NULL AND c.level = 1
       ORDER BY 1""",
    "CREATE INDEX ON _a_kid (pid)",
    "ANALYZE _a_kid",
    # siblings whose interiors overlap
    """INSERT INTO _a_find
       SELECT :rule, a.pid, 'overlap', p.unit_id, p.region_code, ST_Area(x.g::geography),
              format('grids %s and %s overlap', a.code, b.code), x.g
       FROM _a_kid a JOIN _a_kid b ON a.pid = b.pid AND a.id < b.id AND a.geom && b.geom
       JOIN _a_par p ON p.pid = a.pid
       CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS g) x
       WHERE ST_Relate(a.geom, b.geom, '2********') AND ST_Area(x.g::geography) > :min_area""",
    # children sticking out of their parent
    """INSERT INTO _a_find
       SELECT :rule, k.pid, 'outside', p.unit_id, p.region_code, ST_Area(x.g::geography),
              format('grid %s extends outside %s', k.code, p.unit_id), x.g
       FROM _a_kid k JOIN _a_par p ON p.pid = k.pid
       CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Difference(k.geom, p.geom), 3) AS g) x
       WHERE NOT ST_CoveredBy(k.geom, p.geom) AND ST_Area(x.g::geography) > :min_area""",
    # gaps: only parents whose children's areas do not add up (or that overlap/stick out) are unioned
    """INSERT INTO _a_find
       WITH agg AS (SELECT pid, sum(ST_Area(geom)) AS s FROM _a_kid GROUP BY pid),
       suspect AS MATERIALIZED (
         SELECT p.* FROM _a_par p LEFT JOIN agg ON agg.pid = p.pid
         WHERE agg.s IS NULL OR abs(ST_Area(p.geom) - agg.s) > 1e-9 * ST_Area(p.geom)
            OR EXISTS (SELECT 1 FROM _a_find f WHERE f.pid = p.pid)
       )
       SELECT :rule, s.pid, 'gap', s.unit_id, s.region_code, ST_Area(d.geom::geography),
              format('part of %s is in no child grid', s.unit_id), d.geom
       FROM suspect s
       CROSS JOIN LATERAL (
         SELECT (ST_Dump(ST_CollectionExtract(ST_Difference(s.geom, coalesce(
           (SELECT ST_Union(k.geom) FROM _a_kid k WHERE k.pid = s.pid),
           'GEOMETRYCOLLECTION EMPTY'::geometry)), 3))).geom) d
       WHERE ST_Area(d.geom::geography) > :min_area""",
    """INSERT INTO _a_units
       SELECT :rule, CASE WHEN p.grid_id IS NULL THEN 'region' ELSE 'grid' END, p.unit_id, p.region_code,
              p.name, f.pid IS NULL, coalesce(f.area, 0), 0, NULL, NULL,
              CASE WHEN f.pid IS NULL THEN NULL ELSE concat_ws('; ',
                CASE WHEN f.gaps > 0 THEN format('%s gap(s), %s m²', f.gaps, round(f.gap_area)) END,
                CASE WHEN f.overlaps > 0 THEN format('%s overlap(s), %s m²', f.overlaps, round(f.overlap_area)) END,
                CASE WHEN f.outside > 0 THEN format('%s child grid(s) stick out, %s m²', f.outside, round(f.outside_area)) END) END,
              CASE WHEN f.pid IS NULL THEN NULL ELSE ST_X(ST_PointOnSurface(p.geom)) END,
              CASE WHEN f.pid IS NULL THEN NULL ELSE ST_Y(ST_PointOnSurface(p.geom)) END
       FROM _a_par p LEFT JOIN (
         SELECT pid, sum(area_m2) AS area,
                count(*) FILTER (WHERE kind = 'gap') AS gaps, sum(area_m2) FILTER (WHERE kind = 'gap') AS gap_area,
                count(*) FILTER (WHERE kind = 'overlap') AS overlaps, sum(area_m2) FILTER (WHERE kind = 'overlap') AS overlap_area,
                count(*) FILTER (WHERE kind = 'outside') AS outside, sum(area_m2) FILTER (WHERE kind = 'outside') AS outside_area
         FROM _a_find WHERE rule = :rule GROUP BY pid) f ON f.pid = p.pid""",
)

GRID_WORKERS = """
INSERT INTO _a_units
SELECT :rule, 'grid', g.code, g.region_code, g.name, ok, x.n, :min, NULL, NULL,
  CASE WHEN ok THEN NULL ELSE format('%s grid worker(s); needs %s', x.n, trim_scale(CAST(:min AS numeric))) END,
  CASE WHEN ok THEN NULL ELSE ST_X(ST_PointOnSurface(g.geom)) END,
  CASE WHEN ok THEN NULL ELSE ST_Y(ST_PointOnSurface(g.geom)) END
FROM _a_grid g LEFT JOIN (
  SELECT w.grid_id, count(*) AS n FROM grid_workers w JOIN _a_grid g2 ON g2.id = w.grid_id GROUP BY w.grid_id
) w ON w.grid_id = g.id
CROSS JOIN LATERAL (SELECT coalesce(w.n, 0) AS n, coalesce(w.n, 0) >= :min AS ok) x
WHERE g.level = ANY(:levels)
"""

GRID_HOUSEHOLDS = """
INSERT INTO _a_units
SELECT :rule, 'grid', g.code, g.region_code, g.name, ok, g.households, :max, g.households, 1,
  CASE WHEN ok THEN NULL
       WHEN g.households IS NULL THEN 'households not recorded'
       ELSE format('%s households; guideline %s, at most %s', g.households,
                   coalesce(trim_scale(CAST(:guideline AS numeric))::text, '-'), trim_scale(CAST(:max AS numeric))) END,
  CASE WHEN ok THEN NULL ELSE ST_X(ST_PointOnSurface(g.geom)) END,
  CASE WHEN ok THEN NULL ELSE ST_Y(ST_PointOnSurface(g.geom)) END
FROM _a_grid g CROSS JOIN LATERAL (SELECT coalesce(g.households <= :max, false) AS ok) x
WHERE g.level = ANY(:levels)
"""

_RATE_UNIT = """
INSERT INTO _a_units
SELECT :rule, 'region', t.region_code, t.region_code, r.name, t.num / t.den >= :min_rate - 1e-12,
  t.num / t.den, :min_rate, t.num, t.den,
  CASE WHEN t.num / t.den >= :min_rate - 1e-12 THEN NULL ELSE {reason} END, NULL, NULL
FROM ({inner}) t JOIN regions r ON r.code = t.region_code
WHERE t.den > 0
"""

# The counts go by hash over every camera; the sample of ids (an ordered aggregate, which
# rules out hashing and sorted all of a province's cameras) is taken over the cameras that are
# not networked only.
NETWORKING_RATE = _RATE_UNIT.format(
    inner="""SELECT c.region_code, c.num, c.den, s.sample
             FROM (SELECT region_code, count(*) FILTER (WHERE networked)::float8 AS num, count(*)::float8 AS den
                   FROM _a_cam GROUP BY region_code) c
             LEFT JOIN (SELECT region_code, array_to_string((array_agg(id ORDER BY id))[1:3], ', ') AS sample
                        FROM _a_cam WHERE NOT networked GROUP BY region_code) s ON s.region_code = c.region_code""",
    reason="format('%s of %s cameras not networked (e.g. %s)', (t.den - t.num)::int, t.den::int, t.sample)",
)

ONLINE_RATE_PRESENCE = _RATE_UNIT.format(
    inner="""WITH up AS (
               SELECT c.region_code, sum(extract(epoch FROM least(coalesce(p.ended_at, :at), :at)
                                     - greatest(p.started_at, :t0, c.registered_at))) AS s
               FROM device_presence p JOIN _a_cam c ON c.id = p.device_id
               WHERE c.networked AND p.started_at < :at
                 AND (p.ended_at IS NULL OR p.ended_at > greatest(:t0, c.registered_at))
               GROUP BY c.region_code
             ), tot AS (
               SELECT region_code, sum(extract(epoch FROM :at - greatest(:t0, registered_at))) AS den,
                      count(*) AS cams
               FROM _a_cam WHERE networked GROUP BY region_code
             )
             SELECT tot.region_code, coalesce(up.s, 0) AS num, tot.den, tot.cams
             FROM tot LEFT JOIN up ON up.region_code = tot.region_code""",
    reason="format('online %s%% of the period (%s networked cameras)', round(CAST(100 * t.num / t.den AS numeric), 1), t.cams)",
)


def intact_rate(camera_set: str) -> str:
    """Share of checked cameras whose latest quality diagnosis (at the audit time) is intact."""
    if camera_set == "all":
        cams = "SELECT id, region_code FROM _a_cam WHERE networked"
    else:
        kinds = ":public_kinds" if camera_set == "public_area" else ":industry_kinds"
        cams = f"SELECT DISTINCT sc.device_id AS id, sc.region_code FROM _a_sitecam sc WHERE sc.kind = ANY({kinds})"
    return _RATE_UNIT.format(
        inner=f"""WITH cams AS ({cams}),
               latest AS (SELECT DISTINCT ON (h.device_id) h.device_id, h.intact FROM camera_health h
                          JOIN cams ON cams.id = h.device_id WHERE h.ts <= :at ORDER BY h.device_id, h.ts DESC)
               SELECT c.region_code, count(l.device_id) FILTER (WHERE l.intact)::float8 AS num,
                      count(l.device_id)::float8 AS den, count(*) - count(l.device_id) AS unchecked
               FROM cams c LEFT JOIN latest l ON l.device_id = c.id GROUP BY c.region_code""",
        reason="format('%s of %s checked cameras have a quality fault (%s not checked)', (t.den - t.num)::int, t.den::int, t.unchecked)",
    )


HD_RATIO = _RATE_UNIT.format(
    inner="""SELECT region_code,
               count(*) FILTER (WHERE coalesce(resolution_w, 0) >= :min_w AND coalesce(resolution_h, 0) >= :min_h)::float8 AS num,
               count(*)::float8 AS den, count(*) FILTER (WHERE resolution_w IS NULL) AS unknown
             FROM _a_cam WHERE CAST(:since AS timestamptz) IS NULL OR registered_at >= CAST(:since AS timestamptz)
             GROUP BY region_code""",
    reason="format('%s of %s cameras below %sx%s (%s of unknown resolution)', (t.den - t.num)::int, t.den::int, :min_w, :min_h, t.unknown)",
)

# Every unit counts at its own region and at each ancestor down from the audited region. Each
# level sums the level below it and the units of its own level (township sums from villages,
# county from townships, ...), so the string work is done once per unit, not once per level;
# codes compare by code point (COLLATE "C"), not through the database collation's strcoll.
_LEVEL_UP = """SELECT rpad(left(code, {n}), 12, '0') AS code, rule, sum(units) AS units,
         sum(passed) AS passed, sum(failed) AS failed, sum(num) AS num, sum(den) AS den
  FROM (SELECT code, rule, units, passed, failed, num, den FROM {below}
        UNION ALL
        SELECT code, rule, units, passed, failed, num, den FROM base WHERE own = {n}) x
  GROUP BY 1, 2"""
ROLLUP = f"""
WITH base AS MATERIALIZED (
  SELECT region_code AS code, rule, count(*) AS units, count(*) FILTER (WHERE passed) AS passed,
         count(*) FILTER (WHERE NOT passed) AS failed, sum(num) AS num, sum(den) AS den,
    CASE WHEN right(region_code, 3) <> '000' THEN 12 WHEN substr(region_code, 7, 3) <> '000' THEN 9
         WHEN substr(region_code, 5, 2) <> '00' THEN 6 WHEN substr(region_code, 3, 2) <> '00' THEN 4 ELSE 2 END AS own
  FROM _a_units WHERE region_code IS NOT NULL GROUP BY region_code, rule
), l9 AS MATERIALIZED ({_LEVEL_UP.format(n=9, below="base WHERE own = 12")}
), l6 AS MATERIALIZED ({_LEVEL_UP.format(n=6, below="l9")}
), l4 AS MATERIALIZED ({_LEVEL_UP.format(n=4, below="l6")}
), l2 AS MATERIALIZED ({_LEVEL_UP.format(n=2, below="l4")}
), agg AS (
  SELECT code, rule, units, passed, failed, num AS numerator, den AS denominator FROM l2
  UNION ALL SELECT code, rule, units, passed, failed, num, den FROM l4
  UNION ALL SELECT code, rule, units, passed, failed, num, den FROM l6
  UNION ALL SELECT code, rule, units, passed, failed, num, den FROM l9
  UNION ALL SELECT code, rule, units, passed, failed, num, den FROM base WHERE own = 12
)
SELECT agg.code, r.name, r.level, agg.rule, agg.units::int AS units, agg.passed::int AS passed,
       agg.failed::int AS failed, round(100.0 * agg.passed / nullif(agg.units, 0), 2)::float8 AS pct_passed,
       agg.numerator, agg.denominator,
       CASE WHEN agg.rule = ANY(:rate_rules) THEN agg.numerator / nullif(agg.denominator, 0) END AS rate
FROM agg JOIN regions r ON r.code = agg.code
WHERE agg.code COLLATE "C" BETWEEN CAST(:low AS text) AND CAST(:high AS text)
"""

FAILURES = """
SELECT rule, unit_kind, unit_id, name, region_code, value, target, reason, lon, lat, basis
FROM _a_units WHERE NOT passed ORDER BY rule, region_code, unit_id
"""

UNITS = """
SELECT rule, unit_kind, unit_id, name, region_code, CASE WHEN passed THEN 'pass' ELSE 'fail' END AS status,
       value, target, basis, reason
FROM _a_units ORDER BY rule, region_code, unit_id
"""

RETIRED = """
SELECT code::text AS code, name, level, retired_at FROM regions
WHERE code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12)) AND retired_at IS NOT NULL
  AND retired_at <= :at ORDER BY code
"""

FINDINGS = """
SELECT rule, kind, unit_id, region_code, area_m2, ST_X(ST_PointOnSurface(geom)) AS lon,
       ST_Y(ST_PointOnSurface(geom)) AS lat, detail, ST_AsGeoJSON(geom, 7) AS geometry
FROM _a_find ORDER BY area_m2 DESC
"""

SAVE_RESULTS = """
INSERT INTO audit_results (run_id, rule, unit_kind, unit_id, region_code, passed, value, target, reason, basis)
SELECT :run, rule, unit_kind, unit_id, region_code, passed, value, target, reason, basis FROM _a_units
ON CONFLICT DO NOTHING
"""

SAVE_FINDINGS = """
INSERT INTO audit_findings (run_id, rule, kind, unit_id, area_m2, detail, geom)
SELECT :run, rule, kind, unit_id, area_m2, jsonb_build_object('detail', detail, 'region_code', region_code), geom
FROM _a_find
"""
