"""The demo county's non-camera devices: alarm sensors, patrol cars, livestock collars, geofences."""

from __future__ import annotations

from sqlalchemy import Engine, text

from geo.bulk import register_many
from hardware.gbid import allocate_ids

# What the demo adds beside simulators.region's cameras, per administrative village or in total.
SENSOR_KINDS = ("infrared_detector", "door_sensor", "smoke_detector", "panic_button")
PATROL_CARS = 12
LIVESTOCK_COLLARS = 8
RAILWAY_BUFFER_M = 40.0


def _points_in_villages(conn, county: str, seed: int) -> list[tuple[str, float, float]]:
    """One random point inside every administrative village of the county (PostGIS, seeded)."""
    rows = conn.execute(
        text(
            """
            SELECT r.code, ST_X(p.geom), ST_Y(p.geom)
            FROM regions r
            CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(r.geom, 1, :seed)) AS p
            WHERE r.level = 5 AND r.code LIKE :prefix AND r.geom IS NOT NULL
            ORDER BY r.code
            """
        ),
        {"prefix": county[:6] + "%", "seed": seed},
    ).all()
    return [(code.strip(), lon, lat) for code, lon, lat in rows]


def _points_on(conn, table: str, county: str, n: int, seed: int) -> list[tuple[float, float]]:
    """n points spread along the roads or railways of the county (PostGIS, seeded order)."""
    rows = conn.execute(
        text(
            f"""
            SELECT ST_X(pt), ST_Y(pt) FROM (
                SELECT ST_LineInterpolatePoint(ST_GeometryN(geom, 1), 0.5) AS pt,
                       md5(id::text || :seed) AS shuffle
                FROM {table}
                WHERE ST_Intersects(geom, (SELECT geom FROM regions WHERE code = :county))
            ) s ORDER BY shuffle LIMIT :n
            """
        ),
        {"seed": str(seed), "n": n, "county": county[:6].ljust(12, "0")},
    ).all()
    return [(lon, lat) for lon, lat in rows]


def ensure_demo_devices(engine: Engine, county: str, seed: int) -> dict:
    """Add the sensors, patrol cars, collars and the railway fence once; a no-op afterwards."""
    with engine.begin() as conn:
        present = conn.execute(
            text(
                "SELECT count(*) FROM devices WHERE id LIKE :p AND kind IN ('alarm_input', 'mobile')"
            ),
            {"p": county[:6] + "%"},
        ).scalar()
        if present:
            return {"created": False, "devices": present}
        regs: list[dict] = []
        existing = conn.execute(
            text("SELECT id FROM devices WHERE id LIKE :p"), {"p": county[:6] + "%"}
        ).scalars()
        existing_ids = [i.strip() for i in existing]
        villages = _points_in_villages(conn, county, seed)
        pools = {
            type_code: iter(allocate_ids(county[:6], type_code, n, existing_ids, industry=1))
            for type_code, n in ((134, len(villages)), (138, PATROL_CARS), (139, LIVESTOCK_COLLARS))
        }

        def new_id(type_code: int) -> str:
            return next(pools[type_code]).code

        for i, (village, lon, lat) in enumerate(villages):
            sub_kind = SENSOR_KINDS[i % len(SENSOR_KINDS)]
            regs.append(
                {
                    "id": new_id(134),
                    "name": f"{village} {sub_kind}",
                    "lon": lon,
                    "lat": lat,
                    "sub_kind": sub_kind,
                    "gb_edition": 2022,
                }
            )
        for n, (lon, lat) in enumerate(_points_on(conn, "roads", county, PATROL_CARS, seed)):
            regs.append(
                {
                    "id": new_id(138),
                    "name": f"巡逻车 patrol car {n + 1}",
                    "lon": lon,
                    "lat": lat,
                    "sub_kind": "patrol_car",
                    "gb_edition": 2022,
                }
            )
        collars: list[str] = []
        rail = _points_on(conn, "railways", county, 1, seed)
        for n in range(LIVESTOCK_COLLARS if rail else 0):
            lon, lat = rail[0]
            collars.append(new_id(139))
            regs.append(
                {
                    "id": collars[-1],
                    "name": f"牲畜项圈 livestock collar {n + 1}",
                    "lon": lon + 0.002 * (n - LIVESTOCK_COLLARS / 2),
                    "lat": lat + 0.003,
                    "sub_kind": "livestock_collar",
                    "gb_edition": 2022,
                }
            )
        totals = register_many(conn, regs, actor="demo")
        if collars:
            from ingest.geofences import create_geofence

            railway = conn.execute(text("SELECT ST_AsText(geom) FROM railways LIMIT 1")).scalar()
            create_geofence(
                conn.connection.driver_connection,
                "铁路保护区 railway protection zone",
                "keep_out",
                railway,
                buffer_m=RAILWAY_BUFFER_M,
                device_ids=collars,
                alarm_kind="livestock_on_railway",
                severity=1,
                region_code=county.ljust(12, "0"),
            )
    return {"created": True, "devices": totals["devices"], "collars": len(collars)}
