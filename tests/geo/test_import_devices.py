"""Camera inventories (CSV with Chinese headers, XLSX, GeoJSON) and the CRS guards."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from geo.crs_guard import CrsError
from geo.import_devices import import_devices
from geo.importers import import_boundaries
from hardware.crs import wgs84_to_gcj02
from tests.geo.conftest import new_id

pytestmark = pytest.mark.integration


def _csv(path, rows):
    head = "国标编码,名称,类型,经度,纬度,所属村,安装高度,朝向,焦距,分辨率,视频流地址\n"
    path.write_text(head + "\n".join(",".join(map(str, r)) for r in rows) + "\n", "utf-8")
    return path


def test_csv_with_chinese_headers_is_idempotent_and_reports_every_row(
    engine, tiny_county, tmp_path
):
    ids = [new_id() for _ in range(4)]
    rows = [
        [ids[0], "村口1", "ip_camera", 115.91, 28.51, "", 6, 90, 4, "1920x1080", "rtsp://a/1"],
        [ids[1], "村口2", "ip_camera", 115.99, 28.59, tiny_county["west"], 6, 0, 4, "200万", ""],
        [ids[2], "坏的", "ip_camera", "x", 28.5, "", "", "", "", "", ""],
        [ids[3], "错村", "ip_camera", 115.92, 28.52, "360121999999", "", "", "", "", ""],
        ["123", "短码", "ip_camera", 115.92, 28.52, "", "", "", "", "", ""],
        [new_id(), "门禁?", "smart_door", 115.92, 28.52, "", "", "", "", "", ""],
    ]
    path = _csv(tmp_path / "inv.csv", rows)
    with engine.begin() as c:
        dry = import_devices(c, path, dry_run=True)
        assert dry.inserted == 2
        assert (
            c.execute(text("SELECT count(*) FROM devices WHERE id = :i"), {"i": ids[0]}).scalar()
            == 0
        )
    with engine.begin() as c:
        report = import_devices(c, path)
    assert (report.inserted, report.updated, report.unchanged) == (2, 0, 0)
    reasons = {r.line: r.reason for r in report.rejected}
    assert set(reasons) == {4, 5, 6, 7}
    assert "lon" in reasons[4] and "village_code" in reasons[5] and "id" in reasons[6]
    assert "type code says 'ip_camera'" in reasons[7]
    with engine.connect() as c:
        row = c.execute(
            text(
                "SELECT region_code, village_code, resolution_w, focal_mm FROM devices WHERE id = :i"
            ),
            {"i": ids[1]},
        ).one()
    # the village code wins over the polygon it stands in (east): it counts toward west
    assert tuple(row) == (tiny_county["west"], tiny_county["west"], 1920, 4.0)
    with engine.begin() as c:
        again = import_devices(c, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    rows[0][1] = "村口1(改)"
    with engine.begin() as c:
        changed = import_devices(c, _csv(tmp_path / "inv.csv", rows))
    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 1, 1)


def test_xlsx_and_geojson_inventories(engine, tiny_county, tmp_path):
    from openpyxl import Workbook

    a, b = new_id(), new_id()
    wb = Workbook()
    ws = wb.active
    ws.append(["id", "name", "lon", "lat", "village_code", "heading", "height", "focal_mm"])
    ws.append([a, "x1", 115.93, 28.53, tiny_county["west"], 45, 5, 6])
    path = tmp_path / "inv.xlsx"
    wb.save(path)
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"编码": b, "名称": "g1", "朝向": 180},
                "geometry": {"type": "Point", "coordinates": [115.97, 28.53]},
            }
        ],
    }
    gj = tmp_path / "inv.geojson"
    gj.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    with engine.begin() as c:
        assert import_devices(c, path).inserted == 1
        assert import_devices(c, gj).inserted == 1
        got = dict(
            c.execute(
                text("SELECT id, region_code FROM devices WHERE id = ANY(:i)"), {"i": [a, b]}
            ).all()
        )
    assert got == {a: tiny_county["west"], b: tiny_county["east"]}


def test_undeclared_gcj02_points_are_refused_naming_the_crs(engine, tiny_county, tmp_path):
    # 30 cameras 100 m inside the county's east edge: their GCJ-02 coordinates lie ~500 m
    # further east, outside every village; corrected, all are inside
    rows = []
    for i in range(30):
        gx, gy = wgs84_to_gcj02(115.999, 28.51 + 0.002 * i)
        rows.append([new_id(), f"g{i}", "ip_camera", round(gx, 7), round(gy, 7)] + [""] * 6)
    path = _csv(tmp_path / "gcj.csv", rows)
    with engine.begin() as c, pytest.raises(CrsError, match="--crs gcj02"):
        import_devices(c, path)
    with engine.begin() as c:
        report = import_devices(c, path, crs="gcj02", dry_run=True)
    assert report.inserted == 30 and not report.rejected
    # declared, but nowhere near any imported region: refused too
    far = [[new_id(), "far", "ip_camera", 100.0 + 0.01 * i, 30.0] + [""] * 6 for i in range(30)]
    with engine.begin() as c, pytest.raises(CrsError, match="bounds of any imported region"):
        import_devices(c, _csv(tmp_path / "far.csv", far), crs="wgs84")


def test_boundaries_gcj02_without_crs_and_degrees_under_3857_are_refused(
    engine, tiny_county, tmp_path
):
    ring = [(115.90, 28.50), (116.00, 28.50), (116.00, 28.60), (115.90, 28.60), (115.90, 28.50)]
    gcj = [list(wgs84_to_gcj02(x, y)) for x, y in ring]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": tiny_county["county"]},
                "geometry": {"type": "Polygon", "coordinates": [gcj]},
            }
        ],
    }
    path = tmp_path / "county_gcj.geojson"
    path.write_text(json.dumps(doc), "utf-8")
    with engine.begin() as c, pytest.raises(CrsError, match="--crs gcj02"):
        import_boundaries(c, path, "region")
    with engine.begin() as c:  # declared: imported (and converted)
        assert not import_boundaries(c, path, "region", crs="gcj02").rejected
    doc["crs"] = {"type": "name", "properties": {"name": "EPSG:3857"}}
    doc["features"][0]["geometry"]["coordinates"] = [[list(p) for p in ring]]
    path.write_text(json.dumps(doc), "utf-8")
    with engine.begin() as c, pytest.raises(CrsError, match="look like degrees"):
        import_boundaries(c, path, "region")


def test_a_row_reads_numbers_with_units_and_resolutions_as_written() -> None:
    """Plain numbers, numbers with units, empty cells and the resolution forms an inventory
    uses; a bad value is refused naming its column."""
    from geo.import_devices import _registration, _resolution

    cols = {k: k for k in ("id", "lon", "lat", "heading_deg", "mount_height_m", "focal_mm")}
    cols["resolution"] = "res"
    row = {"id": " 36012100001320000000", "lon": "115.9", "lat": " 28.5 ", "heading_deg": "90°"}
    row |= {"mount_height_m": "6m", "focal_mm": " 4 ", "res": "2560 × 1440"}
    assert _registration(row, cols, "wgs84") == {
        "crs": "wgs84",
        "id": "36012100001320000000",
        "lon": 115.9,
        "lat": 28.5,
        "heading_deg": 90.0,
        "mount_height_m": 6.0,
        "focal_mm": 4.0,
        "resolution_w": 2560,
        "resolution_h": 1440,
    }
    short = _registration({**row, "heading_deg": "", "focal_mm": None, "res": "200万"}, cols, "x")
    assert "heading_deg" not in short and "focal_mm" not in short
    assert (short["resolution_w"], short["resolution_h"]) == (1920, 1080)
    assert _resolution("4K") == (3840, 2160) and _resolution("1920*1080") == (1920, 1080)
    assert _resolution("big") is None
    for field, bad in (("focal_mm", "wide"), ("res", "big")):
        with pytest.raises(ValueError, match="focal_mm|resolution"):
            _registration({**row, field: bad}, cols, "wgs84")
