"""The audit builds its 100,000s of report rows without model_construct's per-field loop: the
models must be the same as model_construct's, and anything unusual falls back to it."""

from __future__ import annotations

from geo.audit import Failure, RollupRow, UnitResult, _construct

UNIT = {
    "rule": "village_points",
    "unit_kind": "village",
    "unit_id": "360121100200",
    "name": "莲塘村委会",
    "region_code": "360121100200",
    "status": "fail",
    "value": 2.0,
    "target": 5.0,
    "basis": "unit by code 200",
    "reason": "2 monitoring point(s)",
}


def test_same_models_as_model_construct() -> None:
    keys = list(UNIT)
    fast = _construct(UnitResult, keys, [tuple(UNIT.values())])[0]
    slow = UnitResult.model_construct(**UNIT)
    assert fast == slow and fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set and dict(fast) == dict(slow)
    fast.status = "pass"  # instances do not share state
    assert _construct(UnitResult, keys, [tuple(UNIT.values())])[0].status == "fail"


def test_other_column_orders_fall_back() -> None:
    row = {
        "rule": "r",
        "unit_kind": "village",
        "unit_id": "1",
        "name": None,
        "region_code": None,
        "value": None,
        "target": None,
        "reason": None,
    }  # Failure without lon, lat, basis (they have defaults)
    out = _construct(Failure, list(reversed(row)), [tuple(reversed(row.values()))])[0]
    assert out == Failure.model_construct(**row) and out.lon is None and out.basis is None
    rollup = dict(
        code="360000000000", name="江西省", level=1, rule="r", units=3, passed=2, failed=1,
        pct_passed=66.67, numerator=None, denominator=None, rate=None, ok=False,
    )  # fmt: skip
    got = _construct(RollupRow, list(rollup), [tuple(rollup.values())])[0]
    assert got == RollupRow.model_construct(**rollup)
