"""Bulk registration: same FOV and location as the single path, idempotent, bad rows reported."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import text

import geo.bulk
from geo.bulk import register_many
from geo.registry import RegistryError, register_device
from tests.geo.conftest import new_id


def _regs(n: int) -> list[dict]:
    return [
        {
            "id": new_id(),
            "lon": 115.901 + 0.0009 * i,
            "lat": 28.51 + 0.0008 * i,
            "heading_deg": (37 * i) % 360,
            "focal_mm": 2.8 + (i % 3) * 1.2,
            "sensor_format": "1/2.8",
            "resolution_w": 1920,
            "resolution_h": 1080,
        }
        for i in range(n)
    ]


def test_bulk_matches_single_registration(engine, tiny_county):
    regs = _regs(60)
    single = dict(regs[0], id=new_id())
    with engine.connect() as c:
        out = register_many(c, regs, "generator", reload_broker=False)
        register_device(c, single, "installer", reload_broker=False)
        rows = c.execute(
            text(
                "SELECT a.region_code = b.region_code AND a.grid_id = b.grid_id AS same_place, "
                "ST_Equals(a.fov, b.fov) AS same_fov, a.hfov_deg = b.hfov_deg AS same_hfov "
                "FROM devices a, devices b WHERE a.id = :a AND b.id = :b"
            ),
            {"a": regs[0]["id"], "b": single["id"]},
        ).one()
        regions = dict(
            c.execute(
                text("SELECT region_code, count(*) FROM devices WHERE id = ANY(:ids) GROUP BY 1"),
                {"ids": [r["id"] for r in regs]},
            ).all()
        )
        again = register_many(c, regs, "generator", reload_broker=False)
        n_rows = c.execute(
            text("SELECT count(*) FROM devices WHERE id = ANY(:ids)"),
            {"ids": [r["id"] for r in regs]},
        ).scalar()
    assert out["inserted"] == 60 and out["updated"] == 0
    assert rows.same_place and rows.same_fov and rows.same_hfov
    # points march east from 115.901 in 0.0009 steps: those past 115.95 are in the east village
    east = sum(1 for r in regs if r["lon"] > 115.95)
    assert regions.get(tiny_county["east"], 0) == east
    assert regions.get(tiny_county["west"], 0) == 60 - east
    assert again["inserted"] == 0 and again["updated"] == 60 and n_rows == 60


def test_bulk_reports_or_raises_on_bad_rows(engine, tiny_county):
    regs = _regs(5)
    regs[2]["mount_height_m"] = -3
    regs[3]["id"] = regs[1]["id"]
    with engine.connect() as c:
        with pytest.raises(RegistryError) as info:
            register_many(c, regs, "generator", reload_broker=False)
        assert "row 2" in str(info.value) and info.value.field == "mount_height_m"
    with engine.connect() as c:
        out = register_many(c, regs, "generator", reload_broker=False, skip_invalid=True)
    assert out["inserted"] == 3
    assert [(r["index"], r["field"]) for r in out["rejected"]] == [(2, "mount_height_m"), (3, "id")]


def test_small_batches_store_what_one_batch_stores(engine, tiny_county):
    """Chunks are validated in a thread while the chunk before is stored: with chunks of 3 rows
    the rows stored, the counts and the refused rows' indexes are those of one chunk, and a
    duplicate id in a later chunk is still found."""
    regs = _regs(20)
    regs[4]["mount_height_m"] = -3
    regs[13]["id"] = regs[2]["id"]  # a later chunk repeats an id of the first
    regs[17]["village_code"] = "360121999999"  # not an imported village
    stored = []
    for batch in (3, 2_000):
        for r in regs:
            r["lon"] += 1e-6  # each run a change, so rows are written again
        with engine.connect() as c:
            out = register_many(
                c, regs, "generator", reload_broker=False, skip_invalid=True, batch=batch
            )
            stored.append(
                c.execute(
                    text(
                        "SELECT id, region_code, ST_AsEWKB(fov) FROM devices "
                        "WHERE id = ANY(:ids) ORDER BY id"
                    ),
                    {"ids": [r["id"] for r in regs]},
                ).all()
            )
        rejected = [(r["index"], r["field"]) for r in out["rejected"]]
        assert rejected == [(4, "mount_height_m"), (13, "id"), (17, "village_code")], batch
        assert out["inserted"] + out["updated"] == 17
    assert len(stored[0]) == 17
    assert [r[:2] for r in stored[0]] == [r[:2] for r in stored[1]]
    with engine.connect() as c, pytest.raises(RegistryError) as info:
        register_many(c, regs, "generator", reload_broker=False, batch=3)
    assert "row 4" in str(info.value)


def test_a_chunk_looked_up_as_new_whose_ids_were_stored_meanwhile_is_upserted(
    engine, tiny_county, monkeypatch
):
    """A chunk none of whose ids was stored goes in by plain INSERTs; if another transaction
    stored one of them in between, the chunk is upserted after all (nothing lost, no error),
    and the GIL switch interval the pipeline lowers is given back."""
    regs = _regs(6)
    before = sys.getswitchinterval()
    with engine.connect() as c:
        register_many(c, regs[:2], "generator", reload_broker=False)
        # every chunk is reported new, as if rows 0 and 1 were stored after the look-up
        monkeypatch.setattr(geo.bulk, "_stored", lambda conn, rows, registrations: ({}, set()))
        regs[0]["lon"] += 0.001
        out = register_many(c, regs, "generator", reload_broker=False, batch=3)
        rows = c.execute(
            text(
                "SELECT d.id, ST_X(d.position) AS lon, r.registration->>'lon' AS given "
                "FROM devices d JOIN device_registrations r ON r.device_id = d.id "
                "WHERE d.id = ANY(:ids) ORDER BY d.id"
            ),
            {"ids": [r["id"] for r in regs]},
        ).all()
    assert (out["inserted"], out["updated"], out["rejected"]) == (4, 2, [])
    assert len(rows) == 6
    first = next(r for r in rows if r.id == regs[0]["id"])
    assert first.lon == pytest.approx(regs[0]["lon"]) and float(first.given) == regs[0]["lon"]
    assert sys.getswitchinterval() == before


def test_stored_finds_the_stored_ids_of_rows_and_the_registrations_of_active_ones(
    engine, tiny_county
):
    """The look-up before an import: every stored id among the rows (spaces stripped, dicts or
    models), the registration of the active ones; an id with a comma is looked up as its
    pieces, and one that is no id at all finds nothing."""
    from geo.registry import retire_device, validate_registration

    regs = _regs(3)
    a, b, gone = (r["id"] for r in regs)
    with engine.connect() as c, c.begin() as tx:
        register_many(c, regs, "generator", reload_broker=False)
        retire_device(c, gone, "generator", reload_broker=False)
        rows = [
            {"id": f" {a} "},
            validate_registration(regs[1]),
            {"id": gone},
            {"id": f"{new_id()},{b}"},
            {"id": "not-an-id"},
            {"id": new_id()},
        ]
        stored, known = geo.bulk._stored(c, rows, True)
        ids_only = geo.bulk._stored(c, rows, False)
        tx.rollback()
    assert known == {a, b, gone} and ids_only == ({}, known)
    assert set(stored) == {a, b} and stored[a]["lon"] == regs[0]["lon"]


def test_region_parts_follow_boundary_changes(engine, tiny_county):
    """Points are located among region_parts, which a trigger keeps equal to the boundaries."""
    from geo.registry import locate

    code = "360199000000"  # a made-up county away from the tiny county
    circle = "ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(117.5, 29.5), 4326), 0.2, 256))"
    inside, outside = (117.55, 29.45), (117.95, 29.95)

    def parts(c):
        return c.execute(
            text(
                "SELECT count(p.code) AS n, coalesce(abs(ST_Area(ST_Union(p.geom)) - ST_Area(r.geom)), 0) "
                "AS diff FROM regions r LEFT JOIN region_parts p ON p.code = r.code "
                "WHERE r.code = :c GROUP BY r.geom"
            ),
            {"c": code},
        ).one()

    with engine.connect() as c:
        tx = c.begin()
        c.execute(
            text(
                "INSERT INTO regions (code, level, name, parent_code, geom) "
                f"VALUES (:c, 3, '测试县', '360100000000', {circle})"
            ),
            {"c": code},
        )
        n, diff = parts(c)
        assert n > 4 and diff < 1e-9  # cut into pieces that add up to the boundary
        assert locate(c, *inside)[0] == code and locate(c, *outside)[0] is None
        regs = [dict(_regs(1)[0], lon=inside[0], lat=inside[1])]
        register_many(c, regs, "generator", reload_broker=False, refresh_compliance=False)
        assert (
            c.execute(
                text("SELECT region_code FROM devices WHERE id = :i"), {"i": regs[0]["id"]}
            ).scalar()
            == code
        )
        c.execute(
            text(
                "UPDATE regions SET geom = ST_Multi(ST_Translate(geom, 0.4, 0.4)) WHERE code = :c"
            ),
            {"c": code},
        )
        assert locate(c, *inside)[0] is None and locate(c, *outside)[0] == code
        c.execute(text("UPDATE regions SET retired_at = now() WHERE code = :c"), {"c": code})
        assert parts(c).n == 0 and locate(c, *outside)[0] is None
        c.execute(text("UPDATE regions SET retired_at = NULL WHERE code = :c"), {"c": code})
        assert locate(c, *outside)[0] == code
        c.execute(text("DELETE FROM devices WHERE id = :i"), {"i": regs[0]["id"]})
        c.execute(
            text("DELETE FROM device_registrations WHERE device_id = :i"), {"i": regs[0]["id"]}
        )
        c.execute(text("DELETE FROM regions WHERE code = :c"), {"c": code})
        assert (
            c.execute(
                text("SELECT count(*) FROM region_parts WHERE code = :c"), {"c": code}
            ).scalar()
            == 0
        )
        tx.rollback()


def test_chunks_take_the_size_and_the_rest():
    """Blocks of rows looked up at once (the chunks stored start small: _ramp, below)."""
    assert [len(c) for c in geo.bulk._chunks(range(10), 4)] == [4, 4, 2]
    assert [len(c) for c in geo.bulk._chunks(range(5), 3)] == [3, 2]
    assert [c for c in geo.bulk._chunks([], 3)] == []
    assert sum(geo.bulk._chunks(range(7), 2), []) == list(range(7))


def test_chunk_sizes_double_from_the_first_up_to_the_batch_across_blocks():
    """After the small first chunk each is twice the one before (prepared in about the time the
    database stores that one) up to the batch size; the sizes carry on from block to block."""
    from itertools import islice

    assert list(islice(geo.bulk._ramp(500, 2_000), 5)) == [500, 1_000, 2_000, 2_000, 2_000]
    assert list(islice(geo.bulk._ramp(500, 7), 3)) == [7, 7, 7]
    sizes = geo.bulk._ramp(2, 8)
    blocks = [list(range(10)), list(range(10, 19))]
    chunks = [c for b in blocks for c in geo.bulk._split(b, sizes)]
    assert [len(c) for c in chunks] == [2, 4, 4, 8, 1]
    assert sum(chunks, []) == list(range(19))
    assert list(geo.bulk._split([], sizes)) == []


def test_paused_gc_pauses_the_collector_and_restores_its_state() -> None:
    """Bulk loads pause the cyclic collector and leave it as they found it, even on error."""
    import gc

    from geo.bulk import paused_gc

    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), paused_gc():
        raise ValueError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller's own pause is not ended by a nested one
    finally:
        gc.enable()


def test_fov_ewkb_many_writes_pending_shapes_as_drawn_ones_are_written() -> None:
    """Pending sectors and discs (draw=False) come out as the bytes of the drawn shapes; a
    coverage without a shape is None."""
    from geo.coverage import LensInput, coverage
    from geo.device_rows import ewkb_bytes_many, fov_ewkb_many

    lenses = [
        LensInput(heading_deg=30.0, focal_mm=4.0),
        LensInput(heading_deg=None, focal_mm=4.0),
        LensInput(heading_deg=300.0, focal_mm=12.0),
        LensInput(fisheye=True, focal_mm=1.4),
    ]
    spots = [(115.34 + 0.001 * i, 28.39 + 0.0005 * i) for i in range(len(lenses))]
    drawn = [coverage(lon, lat, lens) for (lon, lat), lens in zip(spots, lenses, strict=True)]
    pending = [
        coverage(lon, lat, lens, draw=False) for (lon, lat), lens in zip(spots, lenses, strict=True)
    ]
    assert sum(c.pending is not None for c in pending) == 3
    got = fov_ewkb_many(pending)
    assert got == ewkb_bytes_many([c.geometry for c in drawn])
    assert got[1] is None and all(b for i, b in enumerate(got) if i != 1)


def test_analyze_needed_after_a_tenth_of_the_counted_rows_changed() -> None:
    """An import analyzes devices when it wrote a tenth of the rows the last ANALYZE counted, or
    moved the live count by as much, or the table was never analyzed."""
    from geo.bulk import analyze_needed

    assert analyze_needed(1, 1, -1, 0)  # never analyzed
    assert analyze_needed(10_000, 10_000, 0, 0)  # emptied, then filled
    assert not analyze_needed(10_000, 10_000, 1_000_000, 1_000_000)  # 1% more
    assert analyze_needed(100_000, 0, 1_000_000, 1_000_000)  # a tenth rewritten
    assert not analyze_needed(99_999, 0, 1_000_000, 1_000_000)
    # small imports since the last ANALYZE that together added a tenth
    assert analyze_needed(10_000, 10_000, 1_000_000, 1_090_000)
    # rows deleted since (live fell by a tenth), a small import now
    assert analyze_needed(1_000, 1_000, 1_000_000, 899_000)


def test_an_import_analyzes_the_columns_queries_compare_and_only_those(engine, tiny_county):
    """The import's ANALYZE samples PLANNER_COLUMNS (all of them devices columns): the
    statistics of a column no query compares, the stream URL, are left as they were."""
    from gridwatch.schema import devices

    assert set(geo.bulk.PLANNER_COLUMNS) <= {c.name for c in devices.c}
    assert "stream_url" not in geo.bulk.PLANNER_COLUMNS
    regs = [
        dict(r, stream_url=f"rtsp://10.9.{i // 250}.{i % 250}/s")
        for i, r in enumerate(_regs(1_200))
    ]
    stats = (
        "SELECT attname, n_distinct FROM pg_stats WHERE tablename = 'devices' "
        "AND attname IN ('stream_url', 'region_code') ORDER BY attname"
    )
    with engine.connect() as c, c.begin() as tx:
        before = dict(c.execute(text(stats)).all())
        timings: dict[str, float] = {}
        out = register_many(c, regs, "generator", reload_broker=False, timings=timings)
        after = dict(c.execute(text(stats)).all())
        tx.rollback()  # the statistics too
    assert out["inserted"] == 1_200 and "analyze" in timings
    assert after.get("stream_url") == before.get("stream_url")
    assert "region_code" in after


def test_before_store_is_called_once_before_any_row_is_stored(engine, tiny_county):
    """The import's CRS check runs on the database while the first chunk is prepared: called
    once, with none of the batch stored yet (also for an empty batch); raising stores nothing."""
    regs, refused = _regs(7), _regs(3)
    count = "SELECT count(*) FROM devices WHERE id = ANY(:ids)"
    seen: list[int] = []
    empty: list[int] = []

    def refuse() -> None:
        raise ValueError("refused")

    with engine.connect() as c, c.begin() as tx:

        def check() -> None:
            seen.append(c.execute(text(count), {"ids": [r["id"] for r in regs]}).scalar_one())

        register_many(c, regs, "generator", reload_broker=False, batch=3, before_store=check)
        stored = c.execute(text(count), {"ids": [r["id"] for r in regs]}).scalar_one()
        register_many(c, [], "generator", reload_broker=False, before_store=lambda: empty.append(1))
        with pytest.raises(ValueError, match="refused"):
            register_many(c, refused, "generator", reload_broker=False, before_store=refuse)
        left = c.execute(text(count), {"ids": [r["id"] for r in refused]}).scalar_one()
        tx.rollback()
    assert seen == [0] and stored == 7 and empty == [1] and left == 0
