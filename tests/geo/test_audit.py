"""The audit engine on a hand-built region whose every result can be checked by hand."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from pyproj import Geod
from shapely.geometry import box
from sqlalchemy import text

from geo.audit import AuditError, run_audit
from geo.audit_report import map_shapes, to_csv, to_html, to_json
from geo.gaps import suggest
from geo.registry import register_device
from geo.rulepack import RulePackError, load_rule_pack

CITY, COUNTY, TOWN = "361000000000", "361021000000", "361021100000"
V1, V2, C1 = "361021100201", "361021100202", "361021100001"
AT = datetime.now(UTC).replace(microsecond=0)


def _box(x0, y0, x1, y1) -> str:
    return box(x0, y0, x1, y1).wkt


def _cam(serial: int, lon: float, lat: float, heading: float, **kw) -> dict:
    return {
        "id": f"36102100001320{serial:06d}",
        "lon": lon,
        "lat": lat,
        "heading_deg": heading,
        "focal_mm": 4,
        "sensor_format": "1/2.8",
        "resolution_w": 1920,
        "resolution_h": 1080,
        **kw,
    }


@pytest.fixture(scope="module")
def region(engine):
    """Three level-5 units (two villages, one community) with cameras, grids and key sites."""
    with engine.begin() as c:
        for code, level, name, parent, geom in [
            ("360000000000", 1, "江西省", None, None),
            (CITY, 2, "抚州市", "360000000000", None),
            (COUNTY, 3, "南城县", CITY, _box(114.50, 27.00, 114.53, 27.01)),
            (TOWN, 4, "建昌镇", COUNTY, _box(114.50, 27.00, 114.53, 27.01)),
            (V1, 5, "东村村委会", TOWN, _box(114.50, 27.00, 114.51, 27.01)),
            (V2, 5, "西村村委会", TOWN, _box(114.51, 27.00, 114.52, 27.01)),
            (C1, 5, "城中社区居委会", TOWN, _box(114.52, 27.00, 114.53, 27.01)),
        ]:
            c.execute(
                text(
                    "INSERT INTO regions (code, level, name, parent_code, geom) VALUES "
                    "(:c, :l, :n, :p, ST_Multi(ST_GeomFromText(:g, 4326))) ON CONFLICT DO NOTHING"
                ),
                {"c": code, "l": level, "n": name, "p": parent, "g": geom},
            )
        ids = {}

        def grid(code, level, parent, reg, geom, hh=None, workers=1):
            gid = c.execute(
                text(
                    "INSERT INTO grids (code, name, level, parent_id, region_code, households, geom) VALUES "
                    "(:code, :code, :l, :p, :r, :hh, ST_Multi(ST_GeomFromText(:g, 4326))) RETURNING id"
                ),
                {"code": code, "l": level, "p": ids.get(parent), "r": reg, "hh": hh, "g": geom},
            ).scalar_one()
            ids[code] = gid
            for k in range(workers):
                c.execute(
                    text("INSERT INTO grid_workers (grid_id, name) VALUES (:g, :n)"),
                    {"g": gid, "n": f"w{k}"},
                )

        grid("A-S", 1, None, TOWN, _box(114.50, 27.00, 114.53, 27.01))
        grid("A-CV1", 2, "A-S", V1, _box(114.50, 27.00, 114.51, 27.01))
        grid("A-CV2", 2, "A-S", V2, _box(114.51, 27.00, 114.52, 27.01))
        grid("A-CC1", 2, "A-S", C1, _box(114.52, 27.00, 114.53, 27.01))
        grid("A-B1", 3, "A-CV1", V1, _box(114.50, 27.00, 114.505, 27.01), 300)
        grid("A-B2", 3, "A-CV1", V1, _box(114.505, 27.00, 114.51, 27.01), 280, workers=0)
        grid(
            "A-B3", 3, "A-CV2", V2, _box(114.51, 27.00, 114.515, 27.01), 900
        )  # right half of V2: a gap
        grid("A-B4", 3, "A-CC1", C1, _box(114.52, 27.00, 114.526, 27.01), 310, workers=2)
        grid("A-B5", 3, "A-CC1", C1, _box(114.524, 27.00, 114.53, 27.01), None)  # overlaps B4
        for key, local, vcode, lon, lat in [
            ("NV1", "A-NV1", V1, 114.503, 27.0025),
            ("NV2", "A-NV2", V2, 114.5125, 27.0025),
            ("NV3", "A-NV3", V2, 114.515, 27.008),
        ]:
            c.execute(
                text(
                    "INSERT INTO natural_villages (local_code, name, village_code, geom) VALUES "
                    "(:l, :n, :v, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
                ),
                {"l": local, "n": key, "v": vcode, "x": lon, "y": lat},
            )
        for key, local, lon, lat in [
            ("A-X1", "A-NV1", 114.5021, 27.002),
            ("A-X2", "A-NV1", 114.5041, 27.002),
            ("A-X3", "A-NV2", 114.5121, 27.002),
        ]:
            c.execute(
                text(
                    "INSERT INTO intersections (source_key, natural_village_id, geom) SELECT :k, id, "
                    "ST_SetSRID(ST_MakePoint(:x, :y), 4326) FROM natural_villages WHERE local_code = :l"
                ),
                {"k": key, "l": local, "x": lon, "y": lat},
            )
        sq = box(114.5083, 27.0083, 114.5085, 27.0085)
        for key, name, kind, geom in [
            ("A-exit", "城东出口", "city_exit", "POINT(114.5061 27.002)"),
            ("A-cp", "西检查站", "checkpoint", "POINT(114.519 27.006)"),
            ("A-sq", "东广场", "square", sq.wkt),
        ]:
            c.execute(
                text(
                    "INSERT INTO key_sites (source_key, name, kind, region_code, geom) VALUES "
                    "(:k, :n, :kind, (SELECT code FROM regions WHERE level = 5 AND ST_Covers(geom, ST_PointOnSurface(ST_GeomFromText(:g, 4326)))), ST_GeomFromText(:g, 4326))"
                ),
                {"k": key, "n": name, "kind": kind, "g": geom},
            )
    cams = [
        _cam(1, 114.502, 27.002, 90),  # pole 1, sees X1 10 m east
        _cam(2, 114.50202, 27.002, 270),  # pole 1 too (2 m away): same monitoring point
        _cam(3, 114.504, 27.002, 90),  # pole 2, sees X2
        _cam(4, 114.506, 27.002, 90),  # pole 3, sees the city exit
        _cam(5, 114.508, 27.002, 0, resolution_w=1280, resolution_h=720),  # pole 4, not HD
        _cam(6, 114.50828, 27.00828, 45),  # pole 5, sees the square: offline
        _cam(7, 114.512, 27.002, 90),  # V2 pole, sees X3
        _cam(8, 114.514, 27.005, 0),
        _cam(9, 114.516, 27.008, 0),
        _cam(10, 114.518, 27.002, 0, networked=False),
    ]
    with engine.connect() as c:
        for cam in cams:
            register_device(c, cam, "installer", reload_broker=False)
        register_device(
            c,
            {"id": "36102100001420000001", "lon": 114.525, "lat": 27.005},
            "installer",
            reload_broker=False,
        )
    with engine.begin() as c:
        c.execute(
            text(
                "UPDATE devices SET registered_at = :t, status = CASE WHEN networked THEN 'online' ELSE 'unknown' END "
                "WHERE id LIKE '361021%'"
            ),
            {"t": AT - timedelta(days=30)},
        )
        c.execute(text("UPDATE devices SET status = 'offline' WHERE id = '36102100001320000006'"))
        # presence: every networked camera online all week except camera 6, online for the first half
        c.execute(
            text(
                "INSERT INTO device_presence (device_id, started_at, ended_at, end_reason) "
                "SELECT id, :t0, CASE WHEN id = '36102100001320000006' THEN :mid END, "
                "CASE WHEN id = '36102100001320000006' THEN 'missed_heartbeats' END "
                "FROM devices WHERE id LIKE '361021000013%' AND networked"
            ),
            {"t0": AT - timedelta(days=8), "mid": AT - timedelta(days=3.5)},
        )
        c.execute(
            text(
                "INSERT INTO camera_health (device_id, ts, intact, faults) VALUES "
                "('36102100001320000004', :t, false, '[\"blur\"]'), ('36102100001320000003', :t, true, '[]')"
            ),
            {"t": AT - timedelta(hours=1)},
        )
    return cams


def _audit(engine, **kw):
    with engine.begin() as c:
        report = run_audit(c, COUNTY, at=kw.pop("at", AT), **kw)
        sug = suggest(c, report, load_rule_pack())
        shapes = map_shapes(c, COUNTY)
    return report, sug, shapes


def _row(report, rule, code=COUNTY):
    return next(r for r in report.rollup if r.rule == rule and r.code == code)


def _fail(report, rule, unit):
    return next(f for f in report.failures if f.rule == rule and f.unit_id == unit)


def test_village_and_natural_village_points_by_hand(engine, region):
    report, _, _ = _audit(engine, save=False)
    vp = _row(report, "village_points")
    assert (vp.units, vp.passed) == (2, 1)  # the community C1 is not an administrative village
    assert (
        vp.numerator == 1 and vp.denominator == 9
    )  # offline / networked cameras (6 in V1, 3 in V2)
    assert _fail(report, "village_points", V2).reason == (
        "3 monitoring point(s) from 3 networked camera(s) (0 offline, 1 not networked); needs 5"
    )
    nvp = _row(report, "natural_village_points")
    assert (nvp.units, nvp.passed) == (3, 1)
    reasons = {f.name: f.reason for f in report.failures if f.rule == "natural_village_points"}
    assert reasons == {
        "NV2": "1 monitoring point(s) see its 1 main intersection(s); needs 2",
        "NV3": "no main intersection on record (import roads or intersections)",
    }
    assert _row(report, "xueliang_coverage").rate == 1.0
    assert _row(report, "smart_communities").rate == 1.0


def test_key_sites_rates_and_grids_by_hand(engine, region):
    report, _, _ = _audit(engine, save=False)
    ks = _row(report, "key_public_areas_covered")
    assert (ks.units, ks.passed) == (3, 1)
    sites = {f.name: f.reason for f in report.failures if f.rule == "key_public_areas_covered"}
    assert sites == {
        "西检查站 (checkpoint)": "no online camera sector reaches it",
        "东广场 (square)": "no online camera sector reaches it",
    }  # only the offline camera sees it
    assert _row(report, "networking_rate", V2).rate == pytest.approx(3 / 4)
    assert _row(report, "networking_rate").rate == pytest.approx(9 / 10)
    assert _row(report, "hd_ratio").rate == pytest.approx(9 / 10)
    # V1: five cameras online all week, camera 6 half of it
    assert _row(report, "online_rate", V1).rate == pytest.approx((5 + 0.5) / 6, abs=1e-6)
    assert not _row(report, "online_rate", V1).ok and _row(report, "online_rate", V2).ok
    assert _row(report, "intact_rate_public").rate == pytest.approx(
        0.0
    )  # camera 4 watches the exit: blur
    tiling = {f.unit_id: f.reason for f in report.failures if f.rule == "grid_tiling"}
    assert set(tiling) == {"A-CV2", "A-CC1"}
    gap = next(f for f in report.findings if f.kind == "gap")
    expected = abs(
        Geod(ellps="WGS84").geometry_area_perimeter(box(114.515, 27.0, 114.52, 27.01))[0]
    )
    assert gap.unit_id == "A-CV2" and gap.area_m2 == pytest.approx(expected, rel=0.005)
    assert 114.515 < gap.lon < 114.52
    overlap = next(f for f in report.findings if f.kind == "overlap")
    assert overlap.unit_id == "A-CC1" and "A-B4" in overlap.detail and "A-B5" in overlap.detail
    assert {f.unit_id for f in report.failures if f.rule == "grid_workers"} == {"A-B2"}
    hh = {f.unit_id: f.reason for f in report.failures if f.rule == "grid_households"}
    assert hh == {
        "A-B3": "900 households; guideline 300, at most 450",
        "A-B5": "households not recorded",
    }


def test_rollup_at_every_level_is_consistent(engine, region):
    report, _, _ = _audit(engine, save=False)
    for rule in ("village_points", "natural_village_points", "grid_workers"):
        county, town = _row(report, rule, COUNTY), _row(report, rule, TOWN)
        assert (county.units, county.passed) == (town.units, town.passed)
        villages = [r for r in report.rollup if r.rule == rule and r.level == 5]
        assert sum(r.units for r in villages) == county.units
    assert {r.level for r in report.rollup} == {3, 4, 5}


def test_suggestions_close_the_gaps_greedily(engine, region):
    report, sug, _ = _audit(engine, save=False)
    top = sug.candidates[:2]
    assert {c.kind for c in top} == {"intersection", "key_site"} and all(c.gain == 2 for c in top)
    assert sug.projected["village_points"] == ("1/2 (50.0%)", "2/2 (100.0%)")
    assert sug.projected["natural_village_points"] == ("1/3 (33.3%)", "2/3 (66.7%)")
    # the square lies in (offline) camera 6's sector: a new pole there would add no coverage
    assert sug.projected["key_public_areas_covered"] == ("1/3 (33.3%)", "2/3 (66.7%)")
    assert any("东广场" in s for s in sug.cannot_close), sug.cannot_close
    assert any("NV3" in s for s in sug.cannot_close)
    assert "Greedy maximum coverage" in sug.method
    # no suggestion inside a camera's sector or within 15 m of a monitoring point
    with engine.connect() as c:
        for cand in sug.candidates:
            near = c.execute(
                text(
                    "SELECT count(*) FILTER (WHERE ST_DWithin(position::geography, p::geography, 15)), "
                    "count(*) FILTER (WHERE ST_Covers(fov, p)) FROM devices, "
                    "(SELECT ST_SetSRID(ST_MakePoint(:x, :y), 4326) AS p) q WHERE retired_at IS NULL"
                ),
                {"x": cand.lon, "y": cand.lat},
            ).one()
            assert tuple(near) == (0, 0), cand
    # each says what it adds: which unit, from how many points to how many
    village = next(c for c in sug.candidates if any(a["rule"] == "village_points" for a in c.adds))
    add = next(a for a in village.adds if a["rule"] == "village_points")
    assert (
        add["after"] == add["before"] + 1
        and f"{add['before']} -> {add['after']} of 5" in village.why
    )


def test_audit_in_the_past_and_saved_runs(engine, region):
    before, _, _ = _audit(engine, save=False, at=AT - timedelta(days=60))
    assert _row(before, "village_points").passed == 0  # no camera was registered yet
    report, _, _ = _audit(engine, save=True)
    with engine.connect() as c:
        n = c.execute(
            text("SELECT count(*) FROM audit_results WHERE run_id = :r"), {"r": report.run_id}
        ).scalar()
        f = c.execute(
            text("SELECT count(*) FROM audit_findings WHERE run_id = :r"), {"r": report.run_id}
        ).scalar()
    assert n == sum(r.units for r in report.summary()) and f == len(report.findings)
    with engine.begin() as c, pytest.raises(AuditError):
        run_audit(c, "469999000000")
    with engine.begin() as c, pytest.raises(AuditError):
        run_audit(c, COUNTY, at="yesterday")


def test_reports_json_csv_and_self_contained_html(engine, region):
    report, sug, (level, shapes) = _audit(engine, save=False)
    doc = json.loads(to_json(report, sug))
    assert doc["region_code"] == COUNTY and doc["suggestions"]["candidates"]
    csv_text = to_csv(report, sug)
    assert csv_text.splitlines()[0].startswith("section,rule,code")
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    units = [r for r in rows if r["section"] == "unit"]
    # one row per unit and rule, with status, measured value, threshold and basis columns
    assert len(units) == len(report.units) and {"status", "value", "target", "basis"} <= set(
        rows[0]
    )
    assert sum(1 for r in units if r["status"] == "fail") == len(report.failures)
    assert [r["rule"] for r in rows if r["section"] == "rule"] == [r.id for r in report.rules]
    page = to_html(report, level, shapes, sug)
    assert level == 5 and set(shapes) == {V1, V2, C1}
    assert "<svg" in page and "西检查站" in page
    assert (
        "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
        and "https://" not in page
    )
    assert "<script" not in page


def test_rule_pack_errors_and_custom_thresholds(engine, region, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[[rule]]\nid = "v"\nkind = "village_points"\ntitle = "t"\nsource = "s"\n',
        "utf-8",
    )
    with pytest.raises(RulePackError, match="needs `min`"):
        load_rule_pack(bad)
    custom = tmp_path / "lenient.toml"
    custom.write_text(
        'name = "lenient"\n[params]\npoint_cluster_m = 15\n[[rule]]\nid = "v3"\nkind = "village_points"\n'
        'title = "three points"\nsource = "local"\nmin = 3\n',
        "utf-8",
    )
    report, _, _ = _audit(engine, save=False, pack=load_rule_pack(custom))
    assert [r.rule for r in report.summary()] == ["v3"] and _row(report, "v3").passed == 2


def test_cli_audit_formats(engine, region, tmp_path):
    from typer.testing import CliRunner

    from gridwatch.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["audit", "--region", "361021", "--format", "json", "--no-save"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["region_code"] == COUNTY
    out = tmp_path / "a.html"
    res = runner.invoke(
        app, ["audit", "--region", COUNTY, "--format", "html", "-o", str(out), "--no-save"]
    )
    assert res.exit_code == 0 and out.read_text("utf-8").startswith("<!doctype html>")
    res = runner.invoke(app, ["audit", "--region", COUNTY, "--no-save"])
    assert res.exit_code == 0 and "village_points" in res.stdout
    assert runner.invoke(app, ["audit", "--region", "12x"]).exit_code == 2
    assert runner.invoke(app, ["audit", "--region", COUNTY, "--format", "pdf"]).exit_code == 2


def test_uncommitted_grid_changes_are_seen_by_the_audit(engine, region):
    """The grid rules normally run on a second connection; with writes pending they run on this one."""
    with engine.begin() as c:
        c.execute(text("UPDATE grid_workers SET grid_id = grid_id WHERE false"))  # no-op, no xid
        c.execute(
            text(
                "INSERT INTO grid_workers (grid_id, name) SELECT id, 'new' FROM grids WHERE code = 'A-B2'"
            )
        )
        report = run_audit(c, COUNTY, at=AT, save=False)
        c.rollback()
    assert not [f for f in report.failures if f.rule == "grid_workers"]
    serial, _, _ = _audit(engine, save=False, workers=1)
    parallel, _, _ = _audit(engine, save=False, workers=2)
    key = lambda r: (r.code, r.rule)  # noqa: E731
    assert sorted(map(key, serial.rollup)) == sorted(map(key, parallel.rollup))
    assert {(r.code, r.rule, r.passed) for r in serial.rollup} == {
        (r.code, r.rule, r.passed) for r in parallel.rollup
    }


def test_link_table_and_spatial_join_agree(engine, region):
    """The audit counts through intersection_views (kept by geo/views.py): it holds exactly the
    camera-intersection pairs of the spatial join, and the rule sees the region's two gaps."""
    with engine.connect() as c:
        linked = set(c.execute(text("SELECT intersection_id, device_id FROM intersection_views")))
        spatial = set(
            c.execute(
                text(
                    "SELECT i.id, d.id FROM intersections i JOIN devices d "
                    "ON d.fov && i.geom AND ST_Covers(d.fov, i.geom)"
                )
            )
        )
        report = run_audit(c, COUNTY, at=AT, save=False, workers=1)
    assert linked and linked == spatial
    failures = [f for f in report.failures if f.rule == "natural_village_points"]
    assert len(failures) == 2
