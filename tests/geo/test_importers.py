"""Importers against the real PostGIS: division lists, boundaries (GeoJSON/GeoPackage, CRSs), villages, roads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon, box, mapping
from sqlalchemy import text

from geo.divisions import import_divisions, level_of, parent_candidates, parse_divisions
from geo.gpkg import write_gpkg
from geo.import_roads import import_roads
from geo.import_villages import import_villages
from geo.importers import import_boundaries
from hardware.crs import wgs84_to_gcj02

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "divisions_sample_360121.csv"
# The sample county moved to a code no other test uses (3699xx), names kept.
CITY, COUNTY = "369900000000", "369921000000"
TOWN, VILLAGE_A, VILLAGE_B = "369921101000", "369921101200", "369921101201"


def _sample_text() -> str:
    body = SAMPLE.read_text("utf-8")
    return body.replace("3601", "3699")


@pytest.fixture(scope="module")
def divisions(engine, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("div") / "div.csv"
    path.write_text(_sample_text(), "utf-8")
    with engine.begin() as c:
        report = import_divisions(c, path)
    assert not report.rejected, report.rejected
    # county and township boundaries for the boundary tests: 116.30-116.40 E, 28.40-28.50 N
    with engine.begin() as c:
        c.execute(
            text(
                "UPDATE regions SET geom = ST_Multi(ST_MakeEnvelope(116.3, 28.4, 116.4, 28.5, 4326)) WHERE code IN (:a, :b)"
            ),
            {"a": COUNTY, "b": TOWN},
        )
    return path


def test_level_and_parent_from_code():
    assert level_of("360121101219") == 5 and level_of("360121101000") == 4
    assert (
        level_of("360121000000") == 3
        and level_of("360100000000") == 2
        and level_of("360000000000") == 1
    )
    # a township of a city without counties (Dongguan) falls back to the city
    assert parent_candidates("441900003000") == ["441900000000"]
    assert (
        parent_candidates("360121101219") == ["360121101000"]
        and parent_candidates("360000000000") == []
    )


def test_divisions_import_is_idempotent_and_tolerates_gbk(engine, divisions, tmp_path):
    with engine.begin() as c:
        again = import_divisions(c, divisions)
        levels = dict(
            c.execute(
                text("SELECT level, count(*) FROM regions WHERE code LIKE '3699%' GROUP BY 1")
            ).all()
        )
        parent = c.execute(
            text("SELECT parent_code FROM regions WHERE code = :v"), {"v": VILLAGE_A}
        ).scalar()
    assert (
        again.status == "unchanged"
        and again.unchanged == 75
        and again.inserted == again.updated == 0
    )
    assert again.same_file_as_before
    assert levels == {2: 1, 3: 1, 4: 2, 5: 70}
    assert parent == TOWN
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(_sample_text().encode("gb18030"))
    with engine.begin() as c:
        report = import_divisions(c, gbk)
    assert report.encoding == "gb18030" and report.status == "unchanged"


def test_published_headerless_layout_changes_in_place_and_rejects_bad_rows(
    engine, divisions, tmp_path
):
    lines = [
        "369921101200\t220\t棠墅村委会(改)",
        "369921101201\t220\t黄山村委会",
        "36992110\t220\t短码",
        "369921999001\t220\t孤儿村",
        "369921101299\t999\t新村",
    ]
    path = tmp_path / "published.txt"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    with engine.begin() as c:
        report = import_divisions(c, path)
        name = c.execute(
            text("SELECT name FROM regions WHERE code = :v"), {"v": VILLAGE_A}
        ).scalar()
        new_urc = c.execute(
            text("SELECT urban_rural_code FROM regions WHERE code = '369921101299'")
        ).scalar()
        c.execute(text("UPDATE regions SET name = '棠墅村委会' WHERE code = :v"), {"v": VILLAGE_A})
    assert (report.updated, report.unchanged, report.inserted) == (1, 1, 1)
    assert name == "棠墅村委会(改)"
    assert {(r.line, r.id) for r in report.rejected} == {(3, "36992110"), (4, "369921999001")}
    assert any("999" in f for f in report.findings) and new_urc is None
    reasons = {r.line: r.reason for r in report.rejected}
    assert "12-digit" in reasons[3] and "parent" in reasons[4]


def test_parse_reports_level_and_parent_mismatch():
    data = "code,urban_rural_code,name,level,parent_code\n360121101200,220,棠墅村委会,town,360121100000\n".encode()
    rows, rejected, enc = parse_divisions(data)
    assert not rejected and enc == "utf-8-sig"
    assert rows[0].level == 5 and any("level column" in n for n in rows[0].notes)
    assert rows[0].given_parent == "360121100000"


def _fc(features: list[dict], crs: str | None = None) -> str:
    doc = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    # one feature per line so the reported line numbers can be checked
    body = ",\n".join(json.dumps(f, ensure_ascii=False) for f in features)
    head = json.dumps({k: v for k, v in doc.items() if k != "features"})[:-1]
    return head + (", " if len(doc) > 1 else "") + '"features": [\n' + body + "\n]}\n"


def _gcj(poly: Polygon) -> dict:
    return {
        "type": "Polygon",
        "coordinates": [[list(wgs84_to_gcj02(x, y)) for x, y in poly.exterior.coords]],
    }


def test_region_boundaries_gcj02_geojson_with_repair_and_rejections(engine, divisions, tmp_path):
    west = box(116.30, 28.40, 116.35, 28.50)
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[116.35, 28.40], [116.40, 28.50], [116.40, 28.40], [116.35, 28.50], [116.35, 28.40]]
        ],
    }
    feats = [
        {"type": "Feature", "properties": {"code": VILLAGE_A}, "geometry": _gcj(west)},
        {
            "type": "Feature",
            "properties": {"code": VILLAGE_B},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[list(wgs84_to_gcj02(x, y)) for x, y in bowtie["coordinates"][0]]],
            },
        },
        {"type": "Feature", "properties": {"code": "12"}, "geometry": _gcj(west)},
        {
            "type": "Feature",
            "properties": {"code": "369921101202"},
            "geometry": {"type": "Point", "coordinates": [116.3, 28.4]},
        },
    ]
    path = tmp_path / "villages.geojson"
    path.write_text(_fc(feats), "utf-8")
    with engine.begin() as c:
        report = import_boundaries(c, path, "region", crs="gcj02")
        x0, y0, x1, y1 = c.execute(
            text(
                "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM regions WHERE code = :c"
            ),
            {"c": VILLAGE_A},
        ).one()
        parts = c.execute(
            text("SELECT ST_NumGeometries(geom), ST_IsValid(geom) FROM regions WHERE code = :c"),
            {"c": VILLAGE_B},
        ).one()
    assert (x0, y0, x1, y1) == pytest.approx((116.30, 28.40, 116.35, 28.50), abs=2e-6)
    # two polygons, and a point: the official point of village 369921101202 (lists have points)
    assert report.inserted == 0 and report.updated == 3
    assert len(report.repaired) == 1 and "Self-intersection" in report.repaired[0]
    assert parts == (2, True)
    assert {(r.line, r.id) for r in report.rejected} == {(4, "12")}
    with engine.begin() as c:
        again = import_boundaries(c, path, "region", crs="gcj02")
    assert again.status == "unchanged" and again.unchanged == 3


def test_region_boundaries_geopackage_in_utm(engine, divisions, tmp_path):
    to_utm = Transformer.from_crs(4326, 32650, always_xy=True)
    ring = [to_utm.transform(x, y) for x, y in box(116.30, 28.40, 116.40, 28.45).exterior.coords]
    path = tmp_path / "towns.gpkg"
    write_gpkg(path, "towns", [({"code": TOWN, "name": "向塘镇"}, Polygon(ring))], srs_id=32650)
    with engine.begin() as c:
        report = import_boundaries(c, path, "region")
        area = c.execute(
            text("SELECT ST_Area(geom::geography) FROM regions WHERE code = :c"), {"c": TOWN}
        ).scalar()
    assert report.crs == "EPSG:32650" and report.updated == 1
    expected = Polygon(ring).area  # the same rectangle measured in UTM metres
    assert area == pytest.approx(expected, rel=0.002)


def test_grids_with_workers_findings_and_update_in_place(engine, divisions, tmp_path):
    feats = [
        {
            "type": "Feature",
            "properties": {"code": "G-ST", "level": 1, "region_code": TOWN},
            "geometry": mapping(box(116.30, 28.40, 116.40, 28.50)),
        },
        {
            "type": "Feature",
            "properties": {"code": "G-CM", "parent": "G-ST"},
            "geometry": mapping(box(116.30, 28.40, 116.35, 28.50)),
        },
        {
            "type": "Feature",
            "properties": {
                "code": "G-B1",
                "parent": "G-CM",
                "households": 290,
                "workers": ["张三", "李四"],
            },
            "geometry": mapping(box(116.30, 28.40, 116.35, 28.45)),
        },
        {
            "type": "Feature",
            "properties": {"code": "G-B2", "parent": "G-CM", "households": 310, "workers": 0},
            "geometry": mapping(box(116.30, 28.45, 116.36, 28.50)),
        },
        {
            "type": "Feature",
            "properties": {"code": "G-B3", "parent": "G-NOPE"},
            "geometry": mapping(box(116.30, 28.45, 116.36, 28.50)),
        },
    ]
    path = tmp_path / "grids.geojson"
    path.write_text(_fc(feats), "utf-8")
    with engine.begin() as c:
        report = import_boundaries(c, path, "grid")
        rows = {
            r.code: r
            for r in c.execute(
                text(
                    "SELECT g.code, g.level, g.region_code, p.code AS parent, (SELECT count(*) FROM grid_workers w WHERE w.grid_id = g.id) AS workers "
                    "FROM grids g LEFT JOIN grids p ON p.id = g.parent_id WHERE g.code LIKE 'G-%'"
                )
            )
        }
    assert report.inserted == 4
    assert [(r.line, r.id) for r in report.rejected] == [(6, "G-B3")]
    assert rows["G-B1"].level == 3 and rows["G-B1"].parent == "G-CM" and rows["G-B1"].workers == 2
    assert rows["G-CM"].level == 2 and rows["G-B2"].workers == 0
    assert rows["G-B1"].region_code == VILLAGE_A  # located by position, deepest region
    assert any("G-B2" in f and "outside its parent grid" in f for f in report.findings)
    feats[2]["properties"]["households"] = 300
    path.write_text(_fc(feats[:4]), "utf-8")
    with engine.begin() as c:
        changed = import_boundaries(c, path, "grid")
    assert (changed.updated, changed.unchanged, changed.inserted) == (1, 3, 0)


def test_key_sites_and_villages_with_intersections(engine, divisions, tmp_path):
    sites = [
        {
            "type": "Feature",
            "id": "ks-1",
            "properties": {"name": "向塘站", "kind": "车站"},
            "geometry": mapping(box(116.31, 28.41, 116.312, 28.412)),
        },
        {
            "type": "Feature",
            "id": "ks-2",
            "properties": {"name": "?", "kind": "spaceport"},
            "geometry": mapping(Point(116.31, 28.41)),
        },
    ]
    sp = tmp_path / "sites.geojson"
    sp.write_text(_fc(sites), "utf-8")
    rows = "id,kind,name,natural_village,lon,lat,households\nnv-1,natural_village,下屋,,116.32,28.42,80\nnv-2,natural_village,上屋,,116.355,28.45,60\nix-1,intersection,,nv-1,116.3201,28.4202,\nix-2,intersection,,,116.3552,28.4502,\nix-3,intersection,,,117.5,29.5,\n"
    vp = tmp_path / "villages.csv"
    vp.write_text(rows, "utf-8")
    with engine.begin() as c:
        sr = import_boundaries(c, sp, "keysite")
        vr = import_villages(c, vp)
        site = c.execute(
            text("SELECT kind, region_code FROM key_sites WHERE source_key = 'ks-1'")
        ).one()
        nvs = dict(
            c.execute(
                text(
                    "SELECT local_code, village_code FROM natural_villages WHERE local_code LIKE 'nv-%'"
                )
            ).all()
        )
        ix = dict(
            c.execute(
                text(
                    "SELECT i.source_key, n.local_code FROM intersections i LEFT JOIN natural_villages n ON n.id = i.natural_village_id WHERE i.source_key LIKE 'ix-%'"
                )
            ).all()
        )
    assert sr.inserted == 1 and [r.id for r in sr.rejected] == ["ks-2"]
    assert site.kind == "station" and site.region_code == VILLAGE_A
    assert nvs == {"nv-1": VILLAGE_A, "nv-2": VILLAGE_B}
    assert ix == {"ix-1": "nv-1", "ix-2": "nv-2", "ix-3": None}
    assert any("ix-3" in f for f in vr.findings)
    with engine.begin() as c:
        assert import_villages(c, vp).status == "unchanged"


def test_roads_derive_intersections_and_update_in_place(engine, divisions, tmp_path):
    # a main road east-west, two lanes crossing it, a railway; lanes cross at 116.36 and 116.38
    feats = [
        {
            "type": "Feature",
            "id": "r1",
            "properties": {"highway": "secondary", "name": "昌南大道"},
            "geometry": mapping(LineString([(116.35, 28.47), (116.39, 28.47)])),
        },
        {
            "type": "Feature",
            "id": "r2",
            "properties": {"highway": "track"},
            "geometry": mapping(LineString([(116.36, 28.46), (116.36, 28.48)])),
        },
        {
            "type": "Feature",
            "id": "r3",
            "properties": {"highway": "track"},
            "geometry": mapping(LineString([(116.38, 28.46), (116.38, 28.48)])),
        },
        # the main road goes on as a second OSM way: that joint is not an intersection
        {
            "type": "Feature",
            "id": "r1b",
            "properties": {"highway": "secondary", "name": "昌南大道"},
            "geometry": mapping(LineString([(116.39, 28.47), (116.395, 28.47)])),
        },
        {
            "type": "Feature",
            "id": "rail",
            "properties": {"railway": "rail", "name": "京九铁路"},
            "geometry": mapping(LineString([(116.30, 28.40), (116.40, 28.50)])),
        },
        # a bridge over the main road shares no vertex with it: no intersection at 116.37
        {
            "type": "Feature",
            "id": "br",
            "properties": {"highway": "tertiary", "bridge": "yes"},
            "geometry": mapping(LineString([(116.37, 28.46), (116.37, 28.48)])),
        },
        # a lane ending on the main road (no vertex there): a T, three street ends
        {
            "type": "Feature",
            "id": "r4",
            "properties": {"highway": "track"},
            "geometry": mapping(LineString([(116.355, 28.47), (116.355, 28.48)])),
        },
        {"type": "Feature", "id": "bad", "properties": {}, "geometry": mapping(Point(116.3, 28.4))},
    ]
    path = tmp_path / "roads.geojson"
    path.write_text(_fc(feats), "utf-8")
    with engine.begin() as c:
        report = import_roads(c, path)
        pts = c.execute(
            text(
                "SELECT ST_X(geom), ST_Y(geom), degree, is_main FROM intersections WHERE source_key LIKE 'x:116.3%' ORDER BY 1"
            )
        ).all()
        rails = c.execute(text("SELECT count(*) FROM railways WHERE source_key = 'rail'")).scalar()
    assert report.inserted == 7, report.model_dump(exclude={"sha256", "path"})
    assert [r.id for r in report.rejected] == ["bad"] and rails == 1
    # street ends as osmnx counts them: crossings 4, the T 3; the joint of r1 and r1b (2) is none
    assert [(round(x, 5), round(y, 5), d, m) for x, y, d, m in pts] == [
        (116.355, 28.47, 3, True),
        (116.36, 28.47, 4, True),
        (116.38, 28.47, 4, True),
    ]
    with engine.begin() as c:
        assert import_roads(c, path).status == "unchanged"
    feats[2]["geometry"] = mapping(LineString([(116.385, 28.46), (116.385, 28.48)]))
    path.write_text(_fc(feats), "utf-8")
    with engine.begin() as c:
        moved = import_roads(c, path)
        xs = [
            round(r[0], 5)
            for r in c.execute(
                text(
                    "SELECT ST_X(geom) FROM intersections WHERE source_key LIKE 'x:116.3%' ORDER BY 1"
                )
            )
        ]
    # r3 moved, and r1 with it (its vertex where r3 crosses)
    assert (
        moved.updated == 2
        and moved.derived["intersections_removed"] == 1
        and xs == [116.355, 116.36, 116.385]
    ), moved.summary()


def test_cli_import_json_and_exit_codes(engine, divisions, tmp_path):
    from typer.testing import CliRunner

    from gridwatch.cli import app

    runner = CliRunner()
    # the first run retires the codes earlier tests added under the sample's townships
    first = runner.invoke(app, ["import", "divisions", str(divisions), "--json"])
    assert first.exit_code == 0, first.output
    ok = runner.invoke(app, ["import", "divisions", str(divisions), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["status"] == "unchanged"
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name\n123,x\n", "utf-8")
    res = runner.invoke(app, ["import", "divisions", str(bad), "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["rejected"][0]["line"] == 2
    res = runner.invoke(app, ["import", "boundaries", str(bad), "--kind", "river"])
    assert res.exit_code == 2


def test_boundary_import_relocates_devices(engine, divisions, tmp_path):
    from geo.registry import register_device

    dev = {
        "id": "36012100001320000777",
        "lon": 116.37,
        "lat": 28.48,
        "heading_deg": 0,
        "focal_mm": 4,
    }
    with engine.connect() as c:
        before = register_device(c, dev, "installer", reload_broker=False)
    feats = [
        {
            "type": "Feature",
            "properties": {"code": "369921101203"},
            "geometry": mapping(box(116.36, 28.47, 116.38, 28.49)),
        }
    ]
    path = tmp_path / "v.geojson"
    path.write_text(_fc(feats), "utf-8")
    with engine.begin() as c:
        report = import_boundaries(c, path, "region")
        after = c.execute(
            text("SELECT region_code FROM devices WHERE id = :i"), {"i": dev["id"]}
        ).scalar()
    assert before["region_code"] != "369921101203" and after == "369921101203"
    assert report.derived["devices_relocated"] >= 1
