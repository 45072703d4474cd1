"""Live compliance: register/move/retire recompute the touched villages and grids, matching a full audit."""

from __future__ import annotations

from sqlalchemy import text

from geo.audit import run_audit
from geo.live import refresh_all, village_status
from geo.registry import register_device, retire_device, update_device
from tests.geo.conftest import new_id


def _points(result: dict, code: str) -> int:
    return next(v["points"] for v in result["villages"] if v["village_code"] == code)


def test_register_move_retire_update_the_touched_villages(engine, tiny_county):
    west, east = tiny_county["west"], tiny_county["east"]
    with engine.begin() as c:
        refresh_all(c, tiny_county["county"])
        before_w = village_status(c, west)["points"]
        before_e = village_status(c, east)["points"]
    # a lone pole far from any other camera in the west village
    reg = {"id": new_id(), "lon": 115.9123, "lat": 28.5987, "heading_deg": 10, "focal_mm": 4}
    with engine.connect() as c:
        out = register_device(c, reg, "installer", reload_broker=False)
    assert [v["village_code"] for v in out["compliance"]["villages"]] == [west]
    assert _points(out["compliance"], west) == before_w + 1
    assert out["compliance"]["grids"][0]["grid_id"] == tiny_county["base"]["w_north"]
    with engine.connect() as c:
        moved = update_device(
            c, reg["id"], {"lon": 115.9877, "lat": 28.5988}, "installer", reload_broker=False
        )
    assert {v["village_code"] for v in moved["compliance"]["villages"]} == {west, east}
    assert _points(moved["compliance"], west) == before_w
    assert _points(moved["compliance"], east) == before_e + 1
    with engine.connect() as c:
        gone = retire_device(c, reg["id"], "installer", reload_broker=False)
        cached = village_status(c, east)
    assert _points(gone["compliance"], east) == before_e == cached["points"]
    assert cached["points_required"] == 5 and cached["passed"] == (before_e >= 5)


def test_live_cache_agrees_with_a_full_audit(engine, tiny_county):
    with engine.begin() as c:
        refresh_all(c, tiny_county["county"])
        report = run_audit(c, tiny_county["county"], save=False)
        for code in (tiny_county["west"], tiny_county["east"]):
            cached = village_status(c, code)
            row = next(r for r in report.rollup if r.code == code and r.rule == "village_points")
            assert cached["passed"] == (row.passed == 1)
            fail = [f for f in report.failures if f.rule == "village_points" and f.unit_id == code]
            if fail:
                assert cached["points"] == fail[0].value
        grids = dict(
            c.execute(
                text("SELECT grid_id, reasons FROM grid_compliance WHERE grid_id = ANY(:ids)"),
                {"ids": list(tiny_county["base"].values())},
            ).all()
        )
    # the tiny county's base grids have no workers; e_north also has 900 households (ceiling 450)
    assert grids[tiny_county["base"]["e_north"]] == [
        "0 grid worker(s); needs 1",
        "900 households; at most 450",
    ]
    assert grids[tiny_county["base"]["e_south"]] == ["0 grid worker(s); needs 1"]
