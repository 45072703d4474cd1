"""Device registry against the real PostGIS: validation, decoding, location, FOV, audit trail."""

from __future__ import annotations

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import text

from geo.registry import (
    DeviceRegistration,
    RegistryError,
    device_geojson,
    locate,
    register_device,
    retire_device,
    update_device,
    validate_registration,
)
from hardware.crs import wgs84_to_gcj02
from tests.geo.conftest import new_id


def cam(**kw) -> dict:
    base = {
        "id": new_id(),
        "name": "pole cam",
        "lon": 115.92,
        "lat": 28.52,
        "heading_deg": 90,
        "focal_mm": 4,
        "sensor_format": '1/2.8"',
        "resolution_w": 1920,
        "resolution_h": 1080,
        "mount_height_m": 6,
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("mount_height_m", 900, "0-500 m"),
        ("lat", 95, "-89 to 89"),
        ("heading_deg", -5, "0-360"),
        ("resource_class", 4, "1, 2 or 3"),
        ("sensor_format", "1/9.9", "1/2.8"),
        ("id", "3601210000132000001", "20 ASCII digits"),
        ("crs", "utm", "wgs84, gcj02 or bd09"),
    ],
)
def test_validation_names_field_and_allowed_range(field, value, allowed):
    with pytest.raises(RegistryError) as info:
        validate_registration(cam(**{field: value}))
    assert info.value.field == field
    assert allowed in str(info.value)
    assert isinstance(info.value, ValueError)


def test_decoding_an_id_names_that_id_in_errors_and_reads_its_own_digits():
    """decode reads digits 1-14 once per head (cached): a second id of the same head decodes the
    same, and an id refused for its division or type names itself, not the cached head."""
    from geo.registry import decode

    a = decode(validate_registration(cam(id="36012100001320000011")))
    b = decode(validate_registration(cam(id="36012100001320999999")))
    assert (a.type_code, a.network_code, a.kind.name) == ("132", 0, b.kind.name)
    assert b.reg.id == "36012100001320999999"
    other = decode(validate_registration(cam(id="36012100001310000011")))
    assert other.type_code == "131" and other.kind.name != a.kind.name
    for bad in ("99012100001320000011", "36012100001000000011"):
        with pytest.raises(RegistryError) as info:
            decode(validate_registration(cam(id=bad)))
        assert info.value.field == "id"
        assert bad in str(info.value), str(info.value)


def test_focal_max_below_focal_is_rejected():
    with pytest.raises(RegistryError) as info:
        validate_registration(cam(focal_mm=12, focal_max_mm=2.8))
    assert info.value.field == "focal_max_mm"


def test_register_locates_computes_fov_and_audits(engine, tiny_county):
    reg = cam()
    with engine.connect() as c:
        out = register_device(c, reg, "installer1", reload_broker=False)
    assert out["kind"] == "ip_camera" and out["type_code"] == "132"
    assert out["region_code"] == tiny_county["west"]
    assert out["grid_id"] == tiny_county["base"]["w_south"]
    # 4 mm on a 5.568 mm wide sensor: HFOV = 2 atan(5.568/8) = 69.7 degrees
    assert out["hfov_deg"] == pytest.approx(69.66, abs=0.05)
    # observe (62.5 px/m): 1920*4/(5.568*62.5) = 22.07 m
    assert out["range_m"] == pytest.approx(22.07, abs=0.05)
    with engine.connect() as c:
        row = c.execute(
            text(
                "SELECT kind, region_code, grid_id, ST_AsText(fov) AS fov, registered_by, "
                "ST_Covers(fov, ST_Project(position::geography, 15, radians(90))::geometry) AS east, "
                "ST_Covers(fov, ST_Project(position::geography, 15, radians(270))::geometry) AS west "
                "FROM devices WHERE id = :id"
            ),
            {"id": reg["id"]},
        ).one()
        log = c.execute(
            text("SELECT actor, action, at FROM audit_log WHERE entity_id = :id"), {"id": reg["id"]}
        ).all()
    assert row.east and not row.west  # the sector looks east (heading 90)
    assert row.registered_by == "installer1"
    assert [(a.actor, a.action) for a in log] == [("installer1", "device.register")]


def test_gcj02_position_is_converted(engine, tiny_county):
    lon, lat = 115.93, 28.53
    glon, glat = wgs84_to_gcj02(lon, lat)
    reg = cam(lon=glon, lat=glat, crs="gcj02")
    with engine.connect() as c:
        out = register_device(c, reg, "installer1", reload_broker=False)
        x, y = c.execute(
            text("SELECT ST_X(position), ST_Y(position) FROM devices WHERE id = :id"),
            {"id": reg["id"]},
        ).one()
    assert (glon, glat) != pytest.approx((lon, lat), abs=1e-4)  # the offset is real
    assert (x, y) == pytest.approx((lon, lat), abs=1e-5)
    assert out["region_code"] == tiny_county["west"]


def test_outside_every_region_is_stored_with_a_finding(engine, tiny_county):
    reg = cam(lon=110.0, lat=20.0)
    with engine.connect() as c:
        out = register_device(c, reg, "installer1", reload_broker=False)
    assert out["region_code"] is None and out["grid_id"] is None
    assert any("outside every imported region" in f for f in out["findings"])


def test_duplicate_register_is_an_error_update_moves_retire_then_reregister(engine, tiny_county):
    reg = cam()
    with engine.connect() as c:
        register_device(c, reg, "a", reload_broker=False)
        with pytest.raises(RegistryError) as info:
            register_device(c, reg, "a", reload_broker=False)
        assert info.value.field == "id"
        moved = update_device(c, reg["id"], {"lon": 115.97, "lat": 28.58}, "b", reload_broker=False)
        assert moved["action"] == "device.move"
        assert moved["region_code"] == tiny_county["east"]
        assert moved["grid_id"] == tiny_county["base"]["e_north"]
        # the lens survives a move (kept from the registration), FOV recomputed at the new place
        fov = c.execute(
            text("SELECT ST_AsText(fov), focal_mm FROM devices WHERE id = :id"), {"id": reg["id"]}
        ).one()
        assert fov[1] == 4
        retired = retire_device(c, reg["id"], "c", reload_broker=False)
        assert retired["region_code"] == tiny_county["east"]
        with pytest.raises(RegistryError):
            retire_device(c, reg["id"], "c", reload_broker=False)
        with pytest.raises(RegistryError):
            update_device(c, reg["id"], {"name": "x"}, "c", reload_broker=False)
        again = register_device(c, reg, "d", reload_broker=False)
        assert again["action"] == "device.reregister"
        actions = [
            r[0]
            for r in c.execute(
                text("SELECT action FROM audit_log WHERE entity_id = :id ORDER BY id"),
                {"id": reg["id"]},
            )
        ]
    assert actions == ["device.register", "device.move", "device.retire", "device.reregister"]


def test_update_rejects_unknown_fields_and_bad_values(engine, tiny_county):
    reg = cam()
    with engine.connect() as c:
        register_device(c, reg, "a", reload_broker=False)
        with pytest.raises(RegistryError) as info:
            update_device(c, reg["id"], {"colour": "red"}, "a", reload_broker=False)
        assert info.value.field == "colour"
        with pytest.raises(RegistryError) as info:
            update_device(c, reg["id"], {"heading_deg": 400}, "a", reload_broker=False)
        assert info.value.field == "heading_deg"


def test_ptz_union_of_presets_and_fisheye_disc(engine, tiny_county):
    ptz = cam(
        ptz=True,
        focal_mm=4.8,
        focal_max_mm=120,
        heading_deg=None,
        presets=[{"heading_deg": 0, "focal_mm": 4.8}, {"heading_deg": 180, "focal_mm": 20}],
    )
    fish = cam(id=new_id(), fisheye=True, focal_mm=1.4, heading_deg=None)
    with engine.connect() as c:
        p = register_device(c, ptz, "a", reload_broker=False)
        f = register_device(c, fish, "a", reload_broker=False)
    north_south = shape(p["fov_geojson"])
    assert north_south.geom_type == "MultiPolygon"  # two opposite narrow presets do not touch
    assert p["range_m"] > 80  # the 20 mm preset reaches much further than the wide end
    disc = shape(f["fov_geojson"])
    assert f["hfov_deg"] == 360
    assert disc.contains(Point(fish["lon"], fish["lat"]))


def test_sensor_without_fov_gets_no_sector(engine, tiny_county):
    reg = {"id": new_id(type_code=134), "lon": 115.96, "lat": 28.51, "sub_kind": "smoke_detector"}
    with engine.connect() as c:
        out = register_device(c, reg, "a", reload_broker=False)
    assert out["kind"] == "alarm_input" and out["fov_geojson"] is None
    bad = {**reg, "id": new_id(type_code=134), "sub_kind": "door"}
    with engine.connect() as c, pytest.raises(RegistryError) as info:
        register_device(c, bad, "a", reload_broker=False)
    assert info.value.field == "sub_kind"


def test_network_code_must_match_id_digit(tiny_county, engine):
    reg = cam(id=new_id(network=5), network_code=3)
    with engine.connect() as c, pytest.raises(RegistryError) as info:
        register_device(c, reg, "a", reload_broker=False)
    assert info.value.field == "network_code"


def test_locate_and_geojson(engine, tiny_county):
    reg = cam(lon=115.99, lat=28.51)
    with engine.connect() as c:
        assert locate(c, 115.99, 28.51) == (tiny_county["east"], tiny_county["base"]["e_south"])
        assert locate(c, 100.0, 10.0) == (None, None)
        register_device(c, reg, "a", reload_broker=False)
        fc = device_geojson(c, region_code=tiny_county["east"], device_ids=[reg["id"]])
    layers = sorted(f["properties"]["layer"] for f in fc["features"])
    assert layers == ["device", "fov"]
    point = next(f for f in fc["features"] if f["properties"]["layer"] == "device")
    assert point["geometry"]["coordinates"] == pytest.approx([115.99, 28.51])


def test_caller_transaction_rolls_back_everything(engine, tiny_county):
    reg = cam()
    with engine.connect() as c:
        tx = c.begin()
        register_device(c, reg, "a", reload_broker=False)
        tx.rollback()
        assert (
            c.execute(
                text("SELECT count(*) FROM devices WHERE id = :id"), {"id": reg["id"]}
            ).scalar()
            == 0
        )
    assert DeviceRegistration.model_validate(reg).id == reg["id"]


def _connect(broker, user: str, password: str) -> int:
    """CONNACK reason of a real MQTT connection attempt (0 = accepted)."""
    import threading

    import paho.mqtt.client as mqtt

    done = threading.Event()
    result: dict = {}

    def on_connect(client, userdata, flags, reason_code, properties=None):
        result["rc"] = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
    client.username_pw_set(user, password)
    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    done.wait(5)
    client.loop_stop()
    client.disconnect()
    return result.get("rc", -1)


def test_registration_lets_the_device_onto_the_broker(engine, tiny_county, mqtt_broker):
    import threading
    import time

    from gridwatch.settings import get_settings
    from ingest.broker_acl import current_device_password
    from ingest.provision import run_provisioner

    if not get_settings().local_mqtt:
        pytest.skip(
            "the broker is external (GRIDWATCH_MQTT_URL): gridwatch does not manage its users"
        )
    reg = cam()
    password = current_device_password(reg["id"])
    assert _connect(mqtt_broker, reg["id"], password) != 0  # unknown before registration
    # the broker follows the registry's NOTIFY events (what the ingest worker runs)
    stop = threading.Event()
    threading.Thread(target=run_provisioner, args=(stop,), daemon=True).start()
    time.sleep(1.0)
    with engine.connect() as c:
        register_device(c, reg, "installer1")
    deadline = time.monotonic() + 5
    while _connect(mqtt_broker, reg["id"], password) != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _connect(mqtt_broker, reg["id"], password) == 0
    with engine.connect() as c:
        retire_device(c, reg["id"], "installer1")
    deadline = time.monotonic() + 5
    while _connect(mqtt_broker, reg["id"], password) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _connect(mqtt_broker, reg["id"], password) != 0
    stop.set()
