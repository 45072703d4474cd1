"""A county hub feeds a city hub by logical replication: rows arrive with their origin, ids never
collide, and a cut link loses and doubles nothing. Each hub has its own PostGIS cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from federation.replication import RANGE_BITS, FederationError, join, set_enabled, status
from tests.federation.hubs import Hub, diff, in_sync, plan, wait_for

SCOPE_A, SCOPE_B = "360121", "360122"


TALLY_AGREES = (
    "SELECT (SELECT array_agg(x ORDER BY x) FROM (SELECT region_code, state, severity, "
    "sum(n)::bigint FROM alarm_tally GROUP BY 1, 2, 3 HAVING sum(n) <> 0) x) "
    "IS NOT DISTINCT FROM (SELECT array_agg(y ORDER BY y) FROM (SELECT "
    "coalesce(region_code, '')::text, state, severity, count(*) FROM alarms GROUP BY 1, 2, 3) y)"
)


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Hub]]:
    started: dict[str, Hub] = {}
    try:
        started.update(
            Hub.start_all({name: tmp_path_factory.mktemp(name) for name in ("city", "county_a")})
        )
        yield started
    finally:
        for hub in started.values():
            hub.stop()


def seed_county(hub: Hub, scope: str, device_ids: list[str], alarms: int) -> None:
    """Regions (the county's, and its city's parent which is not the county's to publish),
    devices, presence, alarms with a trail and a linked camera, camera health."""
    hub.sql(
        "INSERT INTO regions (code, level, name, parent_code) VALUES "
        "('360100000000', 2, 'city', NULL), (%s, 3, 'county', '360100000000') "
        "ON CONFLICT DO NOTHING",
        (scope + "000000",),
    )
    for dev in device_ids:
        hub.sql(
            "INSERT INTO devices (id, type_code, kind, region_code, position, status, last_seen) "
            "VALUES (%s, '132', 'camera', %s, ST_Point(115.9, 28.5, 4326), 'online', now())",
            (dev, scope + "000000"),
        )
        hub.sql("INSERT INTO device_presence (device_id, started_at) VALUES (%s, now())", (dev,))
        hub.sql(
            "INSERT INTO camera_health (device_id, ts, intact) VALUES (%s, now(), true)", (dev,)
        )
    add_alarms(hub, device_ids[0], alarms, prefix="seed")


def add_alarms(hub: Hub, device: str, n: int, prefix: str) -> None:
    hub.sql(
        """
        WITH a AS (
            INSERT INTO alarms (device_id, msg_id, kind, severity, raised_at, last_raised_at)
            SELECT %s, %s || '-' || g, 'intrusion', 2, now(), now() FROM generate_series(1, %s) g
            RETURNING id, device_id
        ), e AS (
            INSERT INTO alarm_events (alarm_id, state, actor) SELECT id, 'new', 'device' FROM a
        )
        INSERT INTO alarm_cameras (alarm_id, device_id, rank, relation)
        SELECT id, device_id, 1, 'covers' FROM a
        """,
        (device, prefix, n),
    )


def test_county_rows_reach_the_city_with_origin_and_survive_a_cut(hubs) -> None:
    city, county = hubs["city"], hubs["county_a"]
    devs = [f"{SCOPE_A}00001320000{i:03d}" for i in range(3)]
    seed_county(county, SCOPE_A, devs, alarms=5)
    # The city has rows of its own (origin 'local' until it is named 'city' by the first join).
    city.sql(
        "INSERT INTO regions (code, level, name) VALUES ('360100000000', 2, 'city');"
        "INSERT INTO devices (id, type_code, kind) VALUES ('36010000001320000001', '132', 'camera')"
    )
    city.sql(
        "INSERT INTO alarms (device_id, msg_id, kind, severity, raised_at, last_raised_at) "
        "VALUES ('36010000001320000001', 'c1', 'intrusion', 1, now(), now())"
    )

    # The command line, as a county operator runs it (GRIDWATCH_* of the county hub).
    from gridwatch.cli import app

    with county.current():
        got = CliRunner().invoke(
            app, ["federation", "join", "--upstream", city.url, "--hub-id", "county_a", "--json"]
        )
    assert got.exit_code == 0, got.output
    joined = json.loads(got.output)
    assert joined["hub_no"] == 1 and joined["renumbered"]["alarms"] == 5
    base = 1 << RANGE_BITS

    # The county's ids moved into its range, its children followed (ON UPDATE CASCADE).
    assert county.sql("SELECT min(id) >= %s FROM alarms", (base,)) == [(True,)]
    assert county.sql("SELECT count(*) FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id") == [
        (5,)
    ]
    # New rows come from the range too, and are labelled with the county's id.
    add_alarms(county, devs[1], 2, prefix="after-join")
    assert county.sql(
        "SELECT count(*) FROM alarms WHERE id < %s OR origin <> 'county_a'", (base,)
    ) == [(0,)]

    assert wait_for(lambda: in_sync(city, county, "county_a")), diff(city, county, "county_a")
    # The county publishes its own scope only; the city kept its own rows, now labelled 'city'.
    assert city.sql("SELECT origin FROM regions WHERE code = '360100000000'") == [("city",)]
    assert city.sql("SELECT count(*) FROM alarms WHERE origin = 'city' AND id < %s", (base,)) == [
        (1,)
    ]
    assert city.sql("SELECT count(*) FROM devices") == [(4,)]
    # What the device summary counts (device_tally, kept by ENABLE ALWAYS row triggers) has the
    # county's devices too: the initial copy and the apply worker run as a replica.
    assert city.sql("SELECT count(*), count(position) FROM device_tally") == [(4, 3)]
    # So do the alarm list's counts (alarm_tally, by replica row triggers; migration 0016).
    assert city.sql(TALLY_AGREES) == [(True,)]

    st = status(city.url)
    (member,) = st.members
    assert (member.hub_id, member.state, member.tables_ready, member.tables) == (
        "county_a",
        "streaming",
        7,
        7,
    )
    assert member.lag_bytes is not None and member.apply_errors == 0
    assert status(county.url).publishing[0].active

    # Cut the link: the county goes on (new alarms, an acknowledgement, a device going offline,
    # a deleted health row), then the link comes back. Nothing lost, nothing doubled.
    set_enabled(city.url, "county_a", False)
    assert wait_for(lambda: status(city.url, probe=False).members[0].state == "paused")
    add_alarms(county, devs[2], 50, prefix="during-cut")
    county.sql(
        "UPDATE alarms SET state = 'acknowledged', acknowledged_by = 'li.wei', "
        "acknowledged_at = now() WHERE msg_id = 'seed-1'"
    )
    county.sql("UPDATE devices SET status = 'offline' WHERE id = %s", (devs[0],))
    county.sql(
        "UPDATE device_presence SET ended_at = now(), end_reason = 'missed_heartbeats' "
        "WHERE device_id = %s",
        (devs[0],),
    )
    county.sql("DELETE FROM camera_health WHERE device_id = %s", (devs[1],))
    assert city.sql("SELECT count(*) FROM alarms WHERE msg_id LIKE 'during-cut-%%'") == [(0,)]
    set_enabled(city.url, "county_a", True)
    assert wait_for(lambda: in_sync(city, county, "county_a")), diff(city, county, "county_a")
    assert city.sql(
        "SELECT count(*), count(DISTINCT msg_id) FROM alarms WHERE origin = 'county_a'"
    ) == [(57, 57)]
    assert city.sql("SELECT acknowledged_by FROM alarms WHERE msg_id = 'seed-1'") == [("li.wei",)]
    assert city.sql("SELECT status FROM device_tally WHERE id = %s", (devs[0],)) == [("offline",)]
    assert city.sql(TALLY_AGREES) == [(True,)]  # the acknowledged one moved, once

    # Joining again changes nothing (no second renumbering, same number).
    again = join(plan(county, city, "county_a", SCOPE_A))
    assert again.hub_no == 1 and not any(again.renumbered.values())
    assert wait_for(lambda: in_sync(city, county, "county_a")), diff(city, county, "county_a")


def test_a_second_county_with_a_colliding_device_id_is_refused(
    hubs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    city = hubs["city"]
    wait_for(lambda: city.sql("SELECT count(*) FROM federation_members") == [(1,)])
    county_b = Hub.start("county_b", tmp_path_factory.mktemp("county_b"))
    hubs["county_b"] = county_b  # stopped with the others
    taken = city.sql("SELECT id FROM devices WHERE origin = 'county_a' ORDER BY id LIMIT 1")[0][0]
    own = [f"{SCOPE_B}00001320000{i:03d}" for i in range(2)]
    seed_county(county_b, SCOPE_B, [*own, taken], alarms=3)
    with pytest.raises(FederationError, match=f"{taken}.*from county_a"):
        join(plan(county_b, city, "county_b", SCOPE_B))
    # A scope overlapping another county's is refused too.
    with pytest.raises(FederationError, match="overlaps county_a"):
        join(plan(county_b, city, "county_b", "3601"))

    county_b.sql("DELETE FROM camera_health WHERE device_id = %s", (taken,))
    county_b.sql("DELETE FROM device_presence WHERE device_id = %s", (taken,))
    county_b.sql("DELETE FROM devices WHERE id = %s", (taken,))
    done = join(plan(county_b, city, "county_b", SCOPE_B))
    assert done.hub_no == 2
    assert wait_for(lambda: in_sync(city, county_b, "county_b")), diff(city, county_b, "county_b")
    # Both counties' alarm ids started at 1 before joining; at the city they are apart.
    assert city.sql(
        "SELECT origin, count(*), min(id) >> %s, max(id) >> %s FROM alarms GROUP BY origin "
        "ORDER BY origin",
        (RANGE_BITS, RANGE_BITS),
    ) == [("city", 1, 0, 0), ("county_a", 57, 1, 1), ("county_b", 3, 2, 2)]
    assert wait_for(lambda: in_sync(city, hubs["county_a"], "county_a")), diff(
        city, hubs["county_a"], "county_a"
    )


def test_live_events_go_up_and_alarm_commands_come_down_the_bridge(hubs) -> None:
    """Each hub gets its own Mosquitto; the county's bridge (its own account at the city) carries
    its event bus up under gw/fed/county_a/ and the city's alarm commands down; the relays put
    the events into the city's bus and apply the commands by the county's lifecycle rules."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from federation.bridge import set_up_bridge
    from federation.relay import AlarmCommand, Relay, send_command, take_event
    from federation.replication import libpq_url
    from ingest.broker_acl import DynsecAdmin, local_broker

    city, county = hubs["city"], hubs["county_a"]
    for hub in (city, county):
        local_broker(hub.settings).start()
    set_up_bridge(county.settings, city.settings, "county_a")
    assert (county.home / "mqtt" / "bridge.d" / "federation.conf").stat().st_mode & 0o077 == 0
    relays = [Relay(hub.settings, client_id=f"relay-{hub.name}") for hub in (city, county)]
    threads = [threading.Thread(target=r.run, daemon=True) for r in relays]
    for t in threads:
        t.start()
    try:
        assert all(r.ready.wait(20) for r in relays)
        # Up: an event on the county's bus (as its ingest worker relays it) reaches the city's.
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="county-ingest-probe")
        pub.username_pw_set(*county.settings.hub_credentials("ingest"))
        pub.connect(*county.settings.mqtt_endpoint())
        pub.loop_start()
        alarm_id = county.sql("SELECT id FROM alarms WHERE msg_id = 'seed-2'")[0][0]
        event = {
            "id": 77,
            "at": "2026-12-02T10:00:00+00:00",
            "kind": "alarm.new",
            "region_code": SCOPE_A + "000000",
            "payload": {"id": alarm_id, "kind": "intrusion"},
        }

        def arrived() -> list[tuple]:
            pub.publish("gw/v1/hub/events", json.dumps(event), qos=1)
            return city.sql(
                "SELECT payload->>'origin', (payload->>'id')::bigint FROM hub_events "
                "WHERE payload->>'origin_event_id' = '77'"
            )

        got = wait_for(arrived, timeout=30, every=1.0)
        assert got and got[0] == ("county_a", alarm_id)

        # The same event delivered again (the bridge's QoS 1 after a reconnect, a relay stopped
        # between its commit and its PUBACK) is on the city's bus once; the bridge keeps the
        # order, so once event 78 is there the repeats before it were taken and dropped.
        for _ in range(2):
            pub.publish("gw/v1/hub/events", json.dumps(event), qos=1)
        pub.publish("gw/v1/hub/events", json.dumps({**event, "id": 78}), qos=1)
        assert wait_for(
            lambda: city.sql("SELECT 1 FROM hub_events WHERE origin_event_id = 78"), timeout=30
        )
        assert relays[0].repeats >= 2
        assert city.sql(
            "SELECT count(*), count(*) FILTER (WHERE payload->>'origin' = 'county_a') "
            "FROM hub_events WHERE origin = 'county_a' AND origin_event_id = 77"
        ) == [(1, 1)]
        # Another county's event with the same id there is another event.
        with psycopg.connect(libpq_url(city.url), autocommit=True) as conn:
            assert take_event(conn, "county_b", json.dumps(event).encode()) is True
            assert take_event(conn, "county_b", json.dumps(event).encode()) is False
        pub.loop_stop()
        pub.disconnect()

        # The bridge's account may publish only under its own prefix, never a command down.
        with DynsecAdmin(city.settings) as admin:
            role = admin.run([{"command": "getRole", "rolename": "fed-county_a"}])
        acls = role[0]["data"]["role"]["acls"]
        assert {
            "acltype": "publishClientSend",
            "topic": "gw/fed/county_a/down/#",
            "allow": False,
        } in [{k: a[k] for k in ("acltype", "topic", "allow")} for a in acls]

        # Down: the city acknowledges a county alarm; the county applies it, replication brings
        # the result (with who did it) back up.
        send_command(
            city.settings,
            "county_a",
            AlarmCommand(alarm_id=alarm_id, state="acknowledged", by="wang"),
        )
        assert wait_for(
            lambda: (
                city.sql("SELECT state, acknowledged_by FROM alarms WHERE id = %s", (alarm_id,))
                == [("acknowledged", "city:wang")]
            ),
            timeout=30,
        )
        assert county.sql(
            "SELECT actor FROM alarm_events WHERE alarm_id = %s AND state = 'acknowledged'",
            (alarm_id,),
        ) == [("city:wang",)]

        # Both levels at once: the county acknowledged first; the city's later acknowledgement
        # is refused at the county (its state decides), a following dispatch is applied.
        other = county.sql("SELECT id FROM alarms WHERE msg_id = 'seed-3'")[0][0]
        county.sql(
            "UPDATE alarms SET state = 'acknowledged', acknowledged_by = 'li.na', "
            "acknowledged_at = now() WHERE id = %s",
            (other,),
        )
        refused = relays[1].refused
        send_command(
            city.settings, "county_a", AlarmCommand(alarm_id=other, state="acknowledged", by="wang")
        )
        send_command(
            city.settings, "county_a", AlarmCommand(alarm_id=other, state="dispatched", by="wang")
        )
        assert wait_for(
            lambda: (
                city.sql(
                    "SELECT state, acknowledged_by, dispatched_by FROM alarms WHERE id = %s",
                    (other,),
                )
                == [("dispatched", "li.na", "city:wang")]
            ),
            timeout=30,
        )
        assert relays[1].refused == refused + 1
        assert wait_for(lambda: in_sync(city, county, "county_a")), diff(city, county, "county_a")
    finally:
        for r in relays:
            r.stop()
        for t in threads:
            t.join(10)
