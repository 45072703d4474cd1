"""Gap suggestions: ranked new monitoring points that close failing villages, intersections and key sites."""

from __future__ import annotations

import heapq
import math
from collections import defaultdict

from pydantic import BaseModel, Field
from sqlalchemy import Connection, text

from geo.audit import AuditReport, code_range
from geo.audit_sql import temp_table_exists
from geo.rulepack import RulePack

METHOD = (
    "Greedy maximum coverage: candidates are uncovered main intersections of failing natural "
    "villages and villages, failing key sites, then uncovered natural-village centres and spots "
    "inside failing villages. Each round picks the candidate that closes the most still-unmet "
    "requirement units (one monitoring point owed to an administrative village, one owed to a "
    "natural village at its main intersections, one uncovered key site); ties go to main "
    "intersections and key sites first. Greedy is within 1-1/e of the optimum for maximum "
    "coverage, not guaranteed optimal. A built point is assumed to be a pole whose camera sector "
    "covers the spot (a PTZ at the centre of a key site)."
)
_KIND_ORDER = {"intersection": 0, "key_site": 0, "natural_village": 1, "village": 2}


class Candidate(BaseModel):
    """One suggested new monitoring point."""

    rank: int
    lon: float
    lat: float
    kind: str
    label: str
    region_code: str | None
    why: str
    closes_rules: list[str]
    gain: int
    adds: list[dict] = Field(default_factory=list)


class Suggestions(BaseModel):
    """The ranked list, the method, and the compliance the region would reach with all of them."""

    method: str = METHOD
    candidates: list[Candidate] = Field(default_factory=list)
    projected: dict[str, tuple[str, str]] = Field(default_factory=dict)
    cannot_close: list[str] = Field(default_factory=list)


_CANDIDATES = """
WITH fail_nv AS (
  SELECT CAST(unit_id AS bigint) AS nv_id FROM _a_units WHERE rule = :nv_rule AND NOT passed
), fail_v AS (
  SELECT unit_id AS code FROM _a_units WHERE rule = :v_rule AND NOT passed
), ix AS (
  SELECT i.id, i.natural_village_id AS nv_id, n.name AS nv_name, n.village_code::text AS village_code, i.geom
  FROM intersections i JOIN natural_villages n ON n.id = i.natural_village_id
  WHERE i.is_main AND n.village_code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12))
    AND (i.natural_village_id IN (SELECT nv_id FROM fail_nv) OR n.village_code IN (SELECT code FROM fail_v))
)
SELECT 'intersection' AS kind, 'ix:' || ix.id || ':' || ST_AsText(g.pos) AS key, ix.nv_id::text AS nv, ix.village_code AS village,
       NULL::text AS site, ST_X(g.pos) AS lon, ST_Y(g.pos) AS lat,
       CASE WHEN cov.pos IS NULL THEN 'main intersection of ' || ix.nv_name
            ELSE 'second point at a main intersection of ' || ix.nv_name END AS label
FROM ix
LEFT JOIN LATERAL (
  SELECT d.position AS pos FROM devices d JOIN _a_pt p ON p.id = d.id
  WHERE d.fov && ix.geom AND ST_Covers(d.fov, ix.geom) ORDER BY d.position <-> ix.geom LIMIT 1
) cov ON true
-- uncovered: at the intersection and 16 m north of it (two distinct points); covered: poles
-- 20 m from it in eight directions (those inside a sector or near a camera are dropped below)
CROSS JOIN LATERAL (
  SELECT ix.geom AS pos WHERE cov.pos IS NULL
  UNION ALL SELECT ST_Project(ix.geom::geography, 16, 0)::geometry WHERE cov.pos IS NULL
  UNION ALL SELECT ST_Project(ix.geom::geography, 20, radians(45 * k))::geometry
  FROM generate_series(0, 7) k WHERE cov.pos IS NOT NULL
) g
UNION ALL
SELECT 'key_site', 'site:' || s.id, NULL, (SELECT v.code FROM _a_vil v WHERE ST_Covers(v.area, c.g) LIMIT 1),
       u.unit_id, ST_X(c.g), ST_Y(c.g), u.name
FROM _a_units u JOIN _a_site s ON s.id::text = u.unit_id AND u.unit_kind = 'key_site'
CROSS JOIN LATERAL (SELECT ST_PointOnSurface(s.geom) AS g) c
WHERE NOT u.passed AND u.rule = ANY(:site_rules)
UNION ALL
SELECT 'natural_village', 'nv:' || n.id, NULL, n.village_code::text, NULL,
       ST_X(c.g), ST_Y(c.g), 'centre of natural village ' || n.name
FROM natural_villages n CROSS JOIN LATERAL (SELECT ST_PointOnSurface(n.geom) AS g) c
WHERE n.village_code IN (SELECT code FROM fail_v)
  AND NOT EXISTS (SELECT 1 FROM _a_cam k WHERE ST_DWithin(k.position::geography, c.g::geography, :eps))
UNION ALL
SELECT 'village', 'v:' || v.code || ':' || g.path[1], NULL, v.code, NULL, ST_X(g.geom), ST_Y(g.geom),
       'spot in ' || v.name
FROM _a_vil v CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(v.area, 24, 1)) g
WHERE v.code IN (SELECT code FROM fail_v) AND v.area IS NOT NULL
"""

# A suggestion adds coverage only where no counting camera sees the spot already and no
# monitoring point stands within point_cluster_m (it would merge into that point).
_ADDS_COVERAGE = """
SELECT c.* FROM ({candidates}) c
CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326) AS g) p
WHERE NOT EXISTS (SELECT 1 FROM devices d JOIN _a_cam k ON k.id = d.id
                  WHERE d.fov && p.g AND ST_Covers(d.fov, p.g))
  AND NOT EXISTS (SELECT 1 FROM _a_cam k WHERE k.position && ST_Expand(p.g, 0.001)
                  AND ST_DWithin(k.position::geography, p.g::geography, :eps))
"""


def suggest(conn: Connection, report: AuditReport, pack: RulePack) -> Suggestions:
    """Suggestions for the audit just run on `conn` (same transaction: it reads the run's tables)."""
    rules = {r.kind: r for r in pack.rules}
    v_rule = rules.get("village_points")
    nv_rule = rules.get("natural_village_points")
    site_rules = [r.id for r in pack.rules if r.kind == "key_sites"]
    out = Suggestions()
    if v_rule is None and nv_rule is None and not site_rules:
        out.cannot_close.append("the rule pack has no village, natural-village or key-site rule")
        return out
    _, low, high = code_range(report.region_code)
    # unmet demand per unit
    demand: dict[tuple[str, str], int] = {}
    failures = [
        f
        for f in report.failures
        if f.rule in {getattr(v_rule, "id", None), getattr(nv_rule, "id", None), *site_rules}
    ]
    for f in failures:
        if nv_rule is not None and f.rule == nv_rule.id:
            if "no main intersection" in (f.reason or ""):
                out.cannot_close.append(
                    f"natural village {f.name} ({f.unit_id}): no main intersection on record"
                )
                continue
            demand[("nv", f.unit_id)] = int((f.target or 0) - (f.value or 0))
        elif v_rule is not None and f.rule == v_rule.id:
            demand[("v", f.unit_id)] = int((f.target or 0) - (f.value or 0))
        else:
            demand[("site", f.unit_id)] = 1
    if not demand:
        out.projected = _projected(report, v_rule, nv_rule, site_rules, {})
        return out
    if not temp_table_exists(conn, "_a_pt"):
        out.cannot_close.append("run the audit with the village rules enabled to get suggestions")
        return out
    conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS _a_site (id bigint, name text, kind text, region_code text, geom geometry, dim int) ON COMMIT DROP"
        )
    )
    rows = (
        conn.execute(
            text(_ADDS_COVERAGE.format(candidates=_CANDIDATES)),
            {
                "low": low,
                "high": high,
                "v_rule": getattr(v_rule, "id", ""),
                "nv_rule": getattr(nv_rule, "id", ""),
                "site_rules": site_rules,
                "eps": pack.params.point_cluster_m,
            },
        )
        .mappings()
        .all()
    )
    cands = []
    for r in rows:
        units = []
        if r["village"] and ("v", r["village"]) in demand:
            units.append(("v", r["village"]))
        if r["nv"] and ("nv", r["nv"]) in demand:
            units.append(("nv", r["nv"]))
        if r["site"] and ("site", r["site"]) in demand:
            units.append(("site", r["site"]))
        if units:
            cands.append((dict(r), units))
    chosen = _greedy(cands, demand, pack.params.point_cluster_m)
    kind_of = {getattr(v_rule, "id", None): "v", getattr(nv_rule, "id", None): "nv"}
    # unit ids of different kinds can be equal (natural village 3, key site 3): key by kind too
    names = {(kind_of.get(f.rule, "site"), f.unit_id): f.name for f in failures}
    rule_of = {
        "v": getattr(v_rule, "id", ""),
        "nv": getattr(nv_rule, "id", ""),
        "site": "key sites",
    }
    site_rule_of = {f.unit_id: f.rule for f in failures if f.rule in site_rules}
    contributed: dict[tuple[str, str], int] = defaultdict(int)
    value = {(f.rule, f.unit_id): (f.value or 0, f.target or 0) for f in failures}
    for rank, (r, closes) in enumerate(chosen, start=1):
        adds = []
        for k, uid in closes:
            rid = site_rule_of.get(uid, rule_of[k]) if k == "site" else rule_of[k]
            now, target = value.get((rid, uid), (0, 1))
            before = int(now) + contributed[(k, uid)]
            contributed[(k, uid)] += 1
            adds.append(
                {
                    "rule": rid,
                    "unit": uid,
                    "name": names.get((k, uid), uid),
                    "before": before,
                    "after": before + 1,
                    "target": target,
                }
            )
        why = "; ".join(_adds_text(k, a) for (k, _), a in zip(closes, adds, strict=True))
        out.candidates.append(
            Candidate(
                rank=rank,
                lon=r["lon"],
                lat=r["lat"],
                kind=r["kind"],
                label=r["label"],
                region_code=r["village"],
                why=why,
                closes_rules=sorted(
                    {
                        site_rule_of.get(uid, rule_of[k]) if k == "site" else rule_of[k]
                        for k, uid in closes
                    }
                ),
                gain=len(closes),
                adds=adds,
            )
        )
    for (k, uid), need in demand.items():
        if contributed[(k, uid)] < need:
            out.cannot_close.append(
                f"{rule_of[k]} {names.get((k, uid), uid)} ({uid}): {need - contributed[(k, uid)]} more "
                "point(s) needed than spots that add coverage (not in a camera's sector, not within "
                "the point distance of a monitoring point)"
            )
    out.projected = _projected(report, v_rule, nv_rule, site_rules, contributed)
    return out


def _adds_text(kind: str, a: dict) -> str:
    """What one suggestion adds to one unit, from how many points to how many."""
    if kind == "site":
        return f"covers key site {a['name']} (uncovered now)"
    what = "village" if kind == "v" else "the main intersections of natural village"
    return f"{what} {a['name']}: {a['before']} -> {a['after']} of {a['target']:g} monitoring points"


def _near(a: dict, b: dict, metres: float) -> bool:
    """Whether two WGS 84 spots are within `metres` (equirectangular, fine at these scales)."""
    dx = (a["lon"] - b["lon"]) * 111_320.0 * math.cos(math.radians(a["lat"]))
    dy = (a["lat"] - b["lat"]) * 110_540.0
    return dx * dx + dy * dy < metres * metres


def _greedy(
    cands: list[tuple[dict, list[tuple[str, str]]]],
    demand: dict[tuple[str, str], int],
    min_gap_m: float = 15.0,
) -> list[tuple[dict, list]]:
    """Lazy greedy maximum coverage over candidate -> demand units, with kind order as tie-break;
    a candidate within `min_gap_m` of one already chosen would be the same point and is skipped."""
    remaining = dict(demand)
    heap = [
        (-len(units), _KIND_ORDER.get(c["kind"], 9), c["key"], i)
        for i, (c, units) in enumerate(cands)
    ]
    heapq.heapify(heap)
    chosen = []
    while heap:
        neg, order, key, i = heapq.heappop(heap)
        c, units = cands[i]
        live = [u for u in units if remaining.get(u, 0) > 0]
        if not live:
            continue
        if len(live) < -neg:  # stale gain: push back with the current one
            heapq.heappush(heap, (-len(live), order, key, i))
            continue
        if any(_near(c, prev, min_gap_m) for prev, _ in chosen):
            continue
        for u in live:
            remaining[u] -= 1
        chosen.append((c, live))
    return chosen


def _fmt(passed: int, units: int) -> str:
    return f"{passed}/{units} ({100 * passed / units:.1f}%)" if units else "-"


def _projected(
    report: AuditReport, v_rule, nv_rule, site_rules: list[str], contributed: dict
) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    summary = {r.rule: r for r in report.summary()}
    fails = defaultdict(list)
    for f in report.failures:
        fails[f.rule].append(f)
    for rule, key in ((v_rule, "v"), (nv_rule, "nv")):
        if rule is None or rule.id not in summary:
            continue
        s = summary[rule.id]
        fixed = sum(
            1
            for f in fails[rule.id]
            if (f.value or 0) + contributed.get((key, f.unit_id), 0) >= (f.target or 0)
            and "no main intersection" not in (f.reason or "")
        )
        out[rule.id] = (_fmt(s.passed, s.units), _fmt(s.passed + fixed, s.units))
    for rid in site_rules:
        if rid in summary:
            s = summary[rid]
            fixed = sum(1 for f in fails[rid] if contributed.get(("site", f.unit_id), 0) >= 1)
            out[rid] = (_fmt(s.passed, s.units), _fmt(s.passed + fixed, s.units))
    return out
